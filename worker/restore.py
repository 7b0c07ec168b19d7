"""Restore: prove the object intact, check the target, choose a path that can be undone, restore.

The promise, path by path (README "Restore" says the same to users):
1. Nothing touches the database until the object is read end to end and proven intact
   (worker/verify.py). A corrupt, truncated or foreign object is refused.
2. A target holding user objects (large objects included) is refused unless `force`; with
   `--backup-before-restore` a full backup in the configured format must succeed first.
3. `transaction` path (the default whenever the server's lock table can hold the restore): one
   transaction that commits only on the worker's final word after the last verified byte. A failed,
   signalled or killed restore rolls back; the target is fingerprinted before, and after a failure
   the message says "unchanged (verified)" only when the fingerprint matches.
4. An empty target whose dump cannot fit one transaction, or a parallel custom restore, runs
   without one: the database is marked first, and on failure or signal emptied again and checked
   empty. A worker killed outright leaves the marker; the next restore empties the database first.
5. A forced restore that cannot fit one transaction is refused before it starts, naming
   `max_locks_per_transaction` and the value it needs.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, cast

import psycopg

from . import apply, catalog, contract, crypt, locks, log, naming, parts, pg, retention, target
from .dump import BackupOptions, run_backup
from .errors import Terminated, WorkerError
from .manifest import Manifest
from .s3 import Bucket, utcnow
from .sql import CREATE_MARKER, MARKER_TABLE, compat_prelude
from .verify import Verified, sql_from_object, verify


@dataclass
class RestoreOptions:
    prefix: str
    database: str  # the configured database: whose backups these are
    object: str  # a key, a file name under the prefix, or "latest"
    target_database: str | None = None  # restore into another database
    force: bool = False
    backup_before_restore: bool = False
    dry_run: bool = False
    run_id: str | None = None
    allow_unverified: bool = False
    allow_flagged: bool = False  # `latest` may be a flagged backup (manifest flags: empty, shrank)
    # Restore drills only (a scratch server whose one role is its own): create, NOLOGIN, every role
    # the dump refers to, so owners and grants restore as they are.
    create_roles: bool = False
    create_database: bool = False  # create a missing target database (--create)
    maintenance_db: str | None = None  # where to look for / create it; default: `database`
    jobs: int = 1
    format: str = contract.DEFAULT_FORMAT  # of the backup taken before the restore
    compression_level: int = contract.DEFAULT_COMPRESSION_LEVEL
    compression: str = contract.DEFAULT_COMPRESSION
    wait_timeout: float = contract.DEFAULT_WAIT_TIMEOUT_SECONDS
    lock_timeout: float = contract.DEFAULT_LOCK_TIMEOUT_SECONDS  # per lock; 0: no limit (still reported)
    progress_interval: float = contract.DEFAULT_PROGRESS_INTERVAL_SECONDS
    identities: list[Any] = field(default_factory=list)  # age identities, for encrypted backups
    recipients: list[str] = field(default_factory=list)  # age public keys, for --backup-before-restore


def _ledger_key(prefix: str, run_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:200]
    return naming.state_key(prefix, "restores", f"{safe}.json")


def resolve(bucket: Bucket, opts: RestoreOptions) -> tuple[str, Manifest | None]:
    if opts.object == "latest":
        entry = catalog.latest_complete(bucket, opts.prefix, opts.database, include_flagged=opts.allow_flagged)
        return entry.name.key, entry.manifest
    key = naming.resolve_object(opts.object, opts.prefix)
    info = bucket.head(key)
    if info is None:
        raise WorkerError(
            f"restore object s3://{bucket.loc.bucket}/{key} does not exist",
            hint="run `cnpg-backup-worker list` and pass one of its keys, or 'latest'",
        )
    return key, catalog.load_manifest(bucket, key)


def _check_identity(bucket: Bucket, key: str, manifest: Manifest | None, opts: RestoreOptions) -> tuple[str, str]:
    """The object's format and compression; refuse one that is not a backup of the configured database."""
    source_db = manifest.database if manifest else naming.database_of(key)
    fmt, compression = naming.kind_of(key)
    if manifest:
        fmt, compression = manifest.format, manifest.codec
    if source_db != opts.database and opts.target_database is None:
        raise WorkerError(
            f"s3://{bucket.loc.bucket}/{key} is not a backup of database {opts.database!r}"
            + (f" (it is of {source_db!r})" if source_db else ""),
            hint="pass --target-database to restore another database's backup on purpose",
        )
    if manifest is None:
        parts.refuse_headless(bucket, key)
        if not opts.allow_unverified:
            raise WorkerError(
                f"s3://{bucket.loc.bucket}/{key} has no manifest, so it cannot be proven complete",
                hint="it may be an interrupted backup; for a backup made by the old Helm chart pass "
                f"--allow-unverified (its {compression} stream is still checked end to end)",
            )
        log.warning(f"restoring an object without manifest: only its {compression} integrity can be checked", key=key)
    elif not manifest.complete:
        raise WorkerError(
            f"manifest of s3://{bucket.loc.bucket}/{key} does not say complete", hint="choose another backup"
        )
    elif manifest.flags:
        log.warning(f"restoring a flagged backup: {'; '.join(manifest.flags)}", key=key)
    where = f"s3://{bucket.loc.bucket}/{key}"
    if manifest and manifest.encrypted != naming.is_encrypted(key):
        raise WorkerError(
            f"{where}: its manifest says {'encrypted' if manifest.encrypted else 'not encrypted'}, its name "
            f"says {'encrypted' if naming.is_encrypted(key) else 'not encrypted'}",
            hint="the object was renamed or replaced; choose another backup",
        )
    if manifest.encrypted if manifest else naming.is_encrypted(key):
        crypt.require_identities(opts.identities, where)
    return fmt, compression


@dataclass(frozen=True)
class Plan:
    path: str  # "transaction", "autocommit" or "pg_restore"
    need: int  # locks the restore will hold in one transaction (estimate)
    replacing: int  # user objects in the target that `force` replaces


def _plan(v: Verified, before: target.Fingerprint, cap: locks.Capacity, opts: RestoreOptions, where: str) -> Plan:
    replacing = before.user_objects
    need = locks.need_for_entries(v.entries, v.large_objects)
    if replacing:
        need += locks.need_for_drop(before.objects)
    if v.format == "custom" and opts.jobs > 1 and not replacing:
        return Plan("pg_restore", need, 0)
    if need <= cap.available:
        return Plan("transaction", need, replacing)
    if not replacing:
        log.info(
            "restore needs more locks than one transaction may hold here: restoring without one, "
            "into the empty database",
            need=need,
            available=cap.available,
        )
        return Plan("pg_restore" if v.format == "custom" else "autocommit", need, 0)
    raise WorkerError(
        f"restore into {where} refused before it started: replacing {replacing} objects with this dump needs about "
        f"{need} locks in one transaction, and the server's lock table holds {cap.total} "
        f"(max_locks_per_transaction={cap.max_locks_per_transaction} x {cap.slots} slots, {cap.in_use} in use)",
        hint=f"set max_locks_per_transaction to at least {cap.setting_for(need)} (CloudNativePG: "
        "spec.postgresql.parameters, then the cluster restarts), or restore into an empty database",
    )


def _fingerprint(dbname: str, lock_timeout: float) -> target.Fingerprint:
    with pg.connect(dbname, lock_timeout=lock_timeout) as conn:
        return target.fingerprint(conn)


def _outcome_after_failure(dbname: str, plan: Plan, before: target.Fingerprint, lock_timeout: float) -> tuple[str, str]:
    """(what happened, what to do) — said only after looking at the database again."""
    try:
        pg.wait_ready(60, dbname)
        apply.end_sessions(dbname)
        if plan.path != "transaction":
            with pg.connect(dbname, lock_timeout=lock_timeout) as conn:
                target.empty_database(conn)
        after = _fingerprint(dbname, lock_timeout)
    except (WorkerError, psycopg.Error) as exc:
        state = (
            (
                "it may hold a partial restore, marked by table public."
                + MARKER_TABLE
                + "; the next restore empties it first"
            )
            if plan.path != "transaction"
            else "its state is unknown"
        )
        return (
            f"could not check the database afterwards ({str(exc).splitlines()[0]}): {state}",
            "check the database before you retry",
        )
    diff = before.difference(after)
    if not diff:
        undone = "rolled back" if plan.path == "transaction" else "emptied again"
        return (
            f"{undone}; the database is unchanged (verified: {after.describe()})",
            "fix the cause and run the restore again",
        )
    return (
        f"the database is NOT as it was before: {diff}",
        "another session may have changed it meanwhile; inspect it before you retry",
    )


def _execute(
    plan: Plan, v: Verified, bucket: Bucket, client: pg.Client, dbname: str, info: pg.ServerInfo, opts: RestoreOptions
) -> None:
    monitor = apply.Monitor(dbname, opts.progress_interval)
    monitor.start()
    try:
        if plan.path == "pg_restore" and v.parts:
            parts.restore_parallel(client, dbname, v, max(1, opts.jobs))
            return
        if plan.path == "pg_restore":
            assert v.staged is not None  # only a custom archive takes this path, and verify() staged it
            apply.run_pg_restore(client, dbname, v.staged, max(1, opts.jobs))
            return
        # custom: verify() staged the archive, so `staged` is set
        sql = (
            parts.sql_of(client, v)
            if v.parts
            else apply.pg_restore_sql(client, cast(str, v.staged), v.key)
            if v.format == "custom"
            else sql_from_object(bucket, v)
        )
        apply.run_psql(
            client,
            dbname,
            compat_prelude(sql, info.major, opts.lock_timeout),
            transaction=plan.path == "transaction",
            force=bool(plan.replacing),
            server_major=info.major,
            monitor=monitor,
            lock_timeout=opts.lock_timeout,
        )
    finally:
        monitor.stop()


# Session advisory lock (per database) held for a whole restore: a second restore into the same
# database (the declarative Job next to a one-off) must not empty it under the first. The server
# releases it when the worker's connection ends, even after a SIGKILL.
RESTORE_LOCK_KEY = 0x636E7067


def _restore_into(bucket: Bucket, v: Verified, opts: RestoreOptions, target_db: str) -> int:
    where = pg.target(target_db)
    if target_db != opts.database:  # the configured database exists; another one may not
        maintenance = opts.maintenance_db or opts.database
        pg.wait_ready(opts.wait_timeout, maintenance)
        target.ensure_database(maintenance, target_db, create=opts.create_database)
    pg.wait_ready(opts.wait_timeout, target_db)
    with pg.connect(target_db) as guard:
        row = guard.execute("SELECT pg_try_advisory_lock(%s)", (RESTORE_LOCK_KEY,)).fetchone()
        if not (row and row[0]):
            raise WorkerError(
                f"another restore into {target_db!r} on {where} is running; restore refused",
                hint="wait for it to finish (kubectl get jobs), then run this one again",
            )
        return _restore_locked(bucket, v, opts, target_db, where)


def _restore_locked(bucket: Bucket, v: Verified, opts: RestoreOptions, target_db: str, where: str) -> int:
    with pg.connect(target_db, lock_timeout=opts.lock_timeout) as conn:
        info = pg.server_info(conn)
        before = target.fingerprint(conn)
        if before.has_marker:
            log.warning(
                "the database holds an interrupted restore of this tool (it was empty before it): "
                "emptying it again first",
                database=target_db,
                marker=f"public.{MARKER_TABLE}",
            )
            target.empty_database(conn)
            before = target.fingerprint(conn)
        cap = locks.capacity(conn)
    if before.user_objects and not opts.force:
        raise WorkerError(
            f"database {target_db!r} on {where} is not empty ({before.user_objects} user objects); restore refused",
            hint="set restore.force=true (--force) to replace its contents, ideally with restore.backupBeforeRestore",
        )
    # pg_restore reads zstd/lz4 archives from 16 on (and no older pg_dump writes them)
    at_least = max(v.dump_major, 16 if v.compression in ("zstd", "lz4") else 1)
    client = pg.choose_client(at_least, f"restoring a dump made by pg_dump {v.dump_major or '?'} ({v.compression})")
    if v.format == "custom":
        assert v.staged is not None  # verify() staged the archive
        v.entries, v.large_objects = locks.archive_entries(client.tool("pg_restore"), v.staged, pg.client_env())
    if opts.create_roles:
        target.create_roles(v, client, target_db)
    plan = _plan(v, before, cap, opts, where)
    if opts.backup_before_restore:
        log.info("backup before restore", database=target_db, format=opts.format)
        try:
            run_backup(
                bucket,
                BackupOptions(
                    prefix=opts.prefix,
                    database=target_db,
                    format=opts.format,
                    compression_level=opts.compression_level,
                    compression=opts.compression,
                    recipients=opts.recipients,
                ),
            )
        except WorkerError as exc:
            raise WorkerError(f"backup before restore failed, restore not started: {exc}") from None
    log.info(
        "restore starting",
        key=v.key,
        database=target_db,
        server=info.version,
        psql=client.version,
        path=plan.path,
        replacing_objects=plan.replacing,
        locks_needed=plan.need,
        locks_available=cap.available,
    )
    if plan.path != "transaction":
        with pg.connect(target_db, lock_timeout=opts.lock_timeout) as conn:
            conn.execute(CREATE_MARKER)
            conn.execute(f"INSERT INTO public.{MARKER_TABLE} (object) VALUES (%s)", (v.key,))
    try:
        _execute(plan, v, bucket, client, target_db, info, opts)
    except (WorkerError, Terminated) as exc:
        cause = exc.message if isinstance(exc, WorkerError) else "the worker was told to stop (SIGTERM)"
        what, todo = _outcome_after_failure(target_db, plan, before, opts.lock_timeout)
        raise type(exc)(f"restore into {where} failed: {cause}; {what}", hint=todo) from None
    except Exception as exc:  # a bug or an unforeseen error: the database is still checked
        what, todo = _outcome_after_failure(target_db, plan, before, opts.lock_timeout)
        raise WorkerError(
            f"restore into {where} failed: unexpected {type(exc).__name__}: {exc}; {what}", hint=todo
        ) from exc
    with pg.connect(target_db, lock_timeout=opts.lock_timeout) as conn:
        if plan.path != "transaction":
            conn.execute(f"DROP TABLE public.{MARKER_TABLE}")
        return pg.table_count(conn)


def run_restore(bucket: Bucket, opts: RestoreOptions) -> dict[str, Any]:
    t0 = time.monotonic()
    target_db = opts.target_database or opts.database
    key, manifest = resolve(bucket, opts)
    fmt, compression = _check_identity(bucket, key, manifest, opts)
    ledger = _ledger_key(opts.prefix, opts.run_id) if opts.run_id else None
    if ledger and not opts.dry_run:
        done = bucket.get_json(ledger)
        if done:
            # A re-created Job (namespace rebuilt, Job deleted and re-applied) must neither restore
            # over what was written since nor look like a restore that just happened: it fails.
            raise WorkerError(
                f"restore run {opts.run_id!r} already restored {done.get('key')} into database "
                f"{done.get('database')!r} at {done.get('finished_at')}; not restoring again",
                hint="this restore Job was re-created; to restore again on purpose, request another restore "
                f"(restore.object, restore.targetDatabase) or delete the record s3://{bucket.loc.bucket}/{ledger}",
            )
    # Retention running meanwhile (the next backup's prune) must not delete what this restore reads.
    pending = retention.pending_key(opts.prefix, key)
    if not opts.dry_run:
        bucket.put_bytes(pending, json.dumps({"key": key, "started_at": utcnow().isoformat()}).encode())
    try:
        return _verified_restore(bucket, opts, key, manifest, fmt, compression, target_db, ledger, t0)
    finally:
        if not opts.dry_run:
            try:
                bucket.delete([pending])
            except Exception as exc:  # noqa: BLE001 - a stale record expires by itself in two days
                log.warning("could not remove the pending-restore record", key=pending, error=log.redact(str(exc)))


def _verified_restore(
    bucket: Bucket,
    opts: RestoreOptions,
    key: str,
    manifest: Manifest | None,
    fmt: str,
    compression: str,
    target_db: str,
    ledger: str | None,
    t0: float,
) -> dict[str, Any]:
    stage_dir = os.environ.get("TMPDIR")
    if manifest and manifest.parts:
        parts.check_space(manifest, stage_dir)
    v = verify(bucket, key, manifest, fmt, compression, stage_dir=stage_dir, identities=opts.identities)
    try:
        if manifest and manifest.parts:
            v.parts = parts.verify_parts(bucket, key, manifest, compression, stage_dir, opts.identities)
        if opts.dry_run:
            log.info("dry run: object verified, database not touched", key=key)
            return {"key": key, "verified": True, "bytes": v.object_bytes, "parts": 1 + len(v.parts)}
        tables = _restore_into(bucket, v, opts, target_db)
    finally:
        parts.discard([v, *v.parts])
    el = time.monotonic() - t0
    stored, raw = v.object_bytes + sum(p.object_bytes for p in v.parts), v.raw_bytes + sum(p.raw_bytes for p in v.parts)
    report = {
        "key": key,
        "database": target_db,
        "bytes": stored,  # a parallel backup: every part
        "raw_bytes": raw,
        "tables": tables,
        "duration_s": round(el, 1),
        "finished_at": utcnow().isoformat(),
        "run_id": opts.run_id,
    }
    if ledger:
        bucket.put_bytes(ledger, json.dumps(report).encode())
    log.info(
        "restore complete",
        key=key,
        database=target_db,
        bytes=stored,
        tables=tables,
        duration=log.seconds(el),
        rate=log.rate(raw, el),
    )
    return report
