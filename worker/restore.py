"""Restore: verify the object completely, check the target, then restore in one transaction.

Order matters and is the whole safety story:
1. the object is read end to end (size, SHA-256 against its manifest, gzip CRCs, dump trailer)
   before the database is touched — a corrupt or truncated object is refused with the database
   untouched;
2. a non-empty target is refused unless `force` (and with `--backup-before-restore`, a full backup
   must succeed first);
3. the SQL goes to `psql --single-transaction -v ON_ERROR_STOP=1`, and the stream is checked again
   on the way; on any error psql is killed *before* its input ends, so the transaction never reaches
   COMMIT and the database stays as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass

from . import catalog, log, naming, pg
from .compress import GunzipStream
from .dump import PLAIN_TRAILER, BackupOptions, run_backup
from .errors import WorkerError
from .manifest import Manifest
from .procs import StderrTail, kill, widen_pipe
from .sql import FORCE_PREAMBLE, compat_prelude
from .s3 import Bucket, utcnow

_DUMPED_BY = re.compile(rb"-- Dumped by pg_dump version (\d+)")


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
    jobs: int = 1
    compression_level: int = 2
    wait_timeout: float = 150


@dataclass
class Verified:
    key: str
    format: str
    object_bytes: int
    raw_bytes: int
    sha256: str
    dump_major: int
    manifest: Manifest | None
    staged: str | None = None  # custom format: the verified archive on local disk


def _ledger_key(prefix: str, run_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:200]
    return naming.state_key(prefix, "restores", f"{safe}.json")


def resolve(bucket: Bucket, opts: RestoreOptions) -> tuple[str, Manifest | None]:
    if opts.object == "latest":
        entry = catalog.latest_complete(bucket, opts.prefix, opts.database)
        return entry.name.key, entry.manifest
    key = naming.resolve_object(opts.object, opts.prefix)
    info = bucket.head(key)
    if info is None:
        raise WorkerError(f"restore object s3://{bucket.loc.bucket}/{key} does not exist",
                          hint="run `cnpg-backup-worker list` and pass one of its keys, or 'latest'")
    return key, catalog.load_manifest(bucket, key)


def _check_identity(bucket: Bucket, key: str, manifest: Manifest | None, opts: RestoreOptions) -> str:
    """The object's format; refuse one that is not a backup of the configured database."""
    source_db = manifest.database if manifest else naming.database_of(key)
    fmt = manifest.format if manifest else ("custom" if key.endswith(".dump") else "plain")
    if source_db != opts.database and opts.target_database is None:
        raise WorkerError(
            f"s3://{bucket.loc.bucket}/{key} is not a backup of database {opts.database!r}"
            + (f" (it is of {source_db!r})" if source_db else ""),
            hint="pass --target-database to restore another database's backup on purpose",
        )
    if manifest is None:
        if not opts.allow_unverified:
            raise WorkerError(
                f"s3://{bucket.loc.bucket}/{key} has no manifest, so it cannot be proven complete",
                hint="it may be an interrupted backup; for a backup made by the old Helm chart pass "
                     "--allow-unverified (its gzip stream is still checked end to end)",
            )
        log.warning("restoring an object without manifest: only its gzip integrity can be checked", key=key)
    elif not manifest.complete:
        raise WorkerError(f"manifest of s3://{bucket.loc.bucket}/{key} does not say complete", hint="choose another backup")
    return fmt


def verify(bucket: Bucket, key: str, manifest: Manifest | None, fmt: str, stage_dir: str | None = None) -> Verified:
    """Read the object end to end and prove it intact, touching no database."""
    t0 = time.monotonic()
    head = bucket.head(key)
    if head is None:
        raise WorkerError(f"restore object s3://{bucket.loc.bucket}/{key} disappeared")
    where = f"s3://{bucket.loc.bucket}/{key}"
    if manifest and head.size != manifest.object_bytes:
        raise WorkerError(f"{where} is {head.size} bytes but its manifest says {manifest.object_bytes}",
                          hint="the object is truncated or was replaced; choose another backup")
    if head.size == 0:
        raise WorkerError(f"{where} is empty", hint="choose another backup")
    sha = hashlib.sha256()
    size = 0
    staged = None
    first = b""
    last = b""
    gz = GunzipStream() if fmt == "plain" else None
    fh = None
    try:
        if fmt == "custom":
            try:
                fd, staged = tempfile.mkstemp(prefix="restore-", suffix=".dump", dir=stage_dir)
            except OSError as exc:
                raise WorkerError(f"cannot stage {where} in {stage_dir or tempfile.gettempdir()}: {exc.strerror}",
                                  hint="a custom-format restore needs a writable TMPDIR: the pod's /tmp emptyDir volume") from None
            fh = os.fdopen(fd, "wb")
        for chunk in bucket.stream(key):
            sha.update(chunk)
            size += len(chunk)
            if gz:
                try:
                    out = gz.feed(chunk)
                except Exception as exc:  # noqa: BLE001 - any decoder error means corrupt
                    raise WorkerError(f"{where} is not a valid gzip stream: {exc}",
                                      hint="the object is corrupt; choose another backup") from None
                if len(first) < 4096:
                    first += out[: 4096 - len(first)]
                if out:
                    last = (last + out)[-1024:]
            else:
                if len(first) < 8:
                    first += chunk[:8]
                try:
                    fh.write(chunk)
                except OSError as exc:
                    raise WorkerError(f"cannot stage {where} in {os.path.dirname(staged)}: {exc.strerror}",
                                      hint="give the pod a larger /tmp (emptyDir sizeLimit) or use the plain format") from None
        if fh:
            fh.close()
            fh = None
        if gz:
            try:
                gz.finish()
            except ValueError as exc:
                raise WorkerError(f"{where}: {exc}", hint="the object is truncated; choose another backup") from None
            if PLAIN_TRAILER not in last:
                raise WorkerError(f"{where} does not end with pg_dump's dump-complete trailer",
                                  hint="the dump was cut short when it was taken; choose another backup")
        elif not first.startswith(b"PGDMP"):
            raise WorkerError(f"{where} is not a pg_dump custom-format archive")
        digest = sha.hexdigest()
        if manifest and (digest != manifest.sha256 or size != manifest.object_bytes):
            raise WorkerError(f"{where} fails its checksum (SHA-256 {digest[:12]}…, manifest {manifest.sha256[:12]}…)",
                              hint="the object is corrupt; choose another backup")
        if manifest:
            dump_major = manifest.pg_dump_major
        else:
            m = _DUMPED_BY.search(first)
            dump_major = int(m.group(1)) if m else 0
    except BaseException:
        if fh:
            fh.close()
        if staged and os.path.exists(staged):
            os.unlink(staged)
        raise
    el = time.monotonic() - t0
    raw = gz.raw_bytes if gz else size
    log.info("object verified", key=key, bytes=size, raw=log.human_bytes(raw), sha256=digest,
             duration=f"{el:.1f}s", checked="size,sha256,gzip,trailer" if (gz and manifest) else "gzip,trailer" if gz else "size,sha256,archive")
    return Verified(key, fmt, size, raw, digest, dump_major, manifest, staged)


def _sql_from_object(bucket: Bucket, v: Verified):
    """Yields the plain SQL while re-checking the bytes against what verify() saw."""
    sha = hashlib.sha256()
    size = 0
    gz = GunzipStream()
    for chunk in bucket.stream(v.key):
        sha.update(chunk)
        size += len(chunk)
        yield gz.feed(chunk)
    gz.finish()
    if size != v.object_bytes or sha.hexdigest() != v.sha256:
        raise WorkerError(f"s3://{bucket.loc.bucket}/{v.key} changed while it was being restored",
                          hint="nothing was committed; retry")


def _run_psql(client: pg.Client, dbname: str, chunks, preamble: str | None) -> None:
    env = pg.client_env()
    env["PGDATABASE"] = dbname
    cmd = [client.tool("psql"), "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction",
           "-o", "/dev/null"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    widen_pipe(proc.stdin)
    tail = StderrTail(proc.stderr)
    tail.start()
    input_closed = False
    try:
        try:
            if preamble:
                proc.stdin.write(preamble.encode())
            for data in chunks:
                if data:
                    proc.stdin.write(data)
        except BrokenPipeError:
            pass  # psql stopped reading: it hit an error; its exit code and stderr say which
        if proc.poll() is None:
            # Only now, with every byte verified, does psql see the end of its input and COMMIT.
            input_closed = True
            proc.stdin.close()
        rc = proc.wait()
        tail.join(timeout=10)
        if rc != 0:
            raise WorkerError(f"restore into {pg.target(dbname)} failed and was rolled back: {tail.summary()}",
                              hint="the database is as it was before; fix the cause and run the restore again")
    except BaseException:
        if not input_closed:
            # Killing psql before its input ends means no COMMIT is ever sent: the server rolls back.
            kill(proc)
        raise
    finally:
        if proc.stdin and not proc.stdin.closed:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass


def _restore_custom_parallel(client: pg.Client, dbname: str, v: Verified, jobs: int) -> None:
    env = pg.client_env()
    env["PGDATABASE"] = dbname
    cmd = [client.tool("pg_restore"), "--no-password", "--exit-on-error", f"--jobs={jobs}", "-d", dbname, v.staged]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    tail = StderrTail(proc.stderr)
    tail.start()
    try:
        rc = proc.wait()
    except BaseException:
        kill(proc)
        rc = -1
        raise
    finally:
        tail.join(timeout=10)
        if rc != 0:
            # A parallel restore cannot be one transaction; the target was empty when it started,
            # so emptying it again restores "as it was".
            with pg.connect(dbname) as conn:
                conn.execute(FORCE_PREAMBLE)
    if rc != 0:
        raise WorkerError(f"parallel restore into {pg.target(dbname)} failed and was undone: {tail.summary()}",
                          hint="the database is empty again, as before; fix the cause and run the restore again")


def _pg_restore_sql(client: pg.Client, v: Verified):
    proc = subprocess.Popen([client.tool("pg_restore"), "-f", "-", v.staged], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=pg.client_env())
    widen_pipe(proc.stdout)
    tail = StderrTail(proc.stderr)
    tail.start()
    try:
        while chunk := proc.stdout.read1(1 << 20):
            yield chunk
        if proc.wait() != 0:
            raise WorkerError(f"pg_restore could not read {v.key}: {tail.summary()}")
    finally:
        kill(proc)


def run_restore(bucket: Bucket, opts: RestoreOptions) -> dict:
    t0 = time.monotonic()
    target_db = opts.target_database or opts.database
    key, manifest = resolve(bucket, opts)
    fmt = _check_identity(bucket, key, manifest, opts)
    ledger = _ledger_key(opts.prefix, opts.run_id) if opts.run_id else None
    if ledger and not opts.dry_run:
        done = bucket.get_json(ledger)
        if done:
            log.info("restore already done for this run id; not restoring again", run_id=opts.run_id,
                     key=done.get("key"), finished_at=done.get("finished_at"))
            return {"skipped": True, **done}
    v = verify(bucket, key, manifest, fmt, stage_dir=os.environ.get("TMPDIR"))
    try:
        if opts.dry_run:
            log.info("dry run: object verified, database not touched", key=key)
            return {"key": key, "verified": True, "bytes": v.object_bytes}
        # The object is proven good; only now is the database approached.
        pg.wait_ready(opts.wait_timeout, target_db)
        with pg.connect(target_db) as conn:
            info = pg.server_info(conn)
            objects = pg.user_object_count(conn)
        if objects and not opts.force:
            raise WorkerError(
                f"database {target_db!r} on {pg.target(target_db)} is not empty ({objects} user objects); restore refused",
                hint="set restore.force=true (--force) to replace its contents, ideally with restore.backupBeforeRestore",
            )
        if opts.backup_before_restore:
            log.info("backup before restore", database=target_db)
            try:
                run_backup(bucket, BackupOptions(prefix=opts.prefix, database=target_db,
                                                 compression_level=opts.compression_level))
            except WorkerError as exc:
                raise WorkerError(f"backup before restore failed, restore not started: {exc}") from None
        client = pg.choose_client(max(v.dump_major, 1), f"restoring a dump made by pg_dump {v.dump_major or '?'}")
        log.info("restore starting", key=key, database=target_db, server=info.version, psql=client.version,
                 force=opts.force, replacing_objects=objects)
        if fmt == "custom" and opts.jobs > 1 and objects == 0:
            _restore_custom_parallel(client, target_db, v, opts.jobs)
        else:
            sql = _pg_restore_sql(client, v) if fmt == "custom" else _sql_from_object(bucket, v)
            _run_psql(client, target_db, compat_prelude(sql, info.major), FORCE_PREAMBLE if objects else None)
        with pg.connect(target_db) as conn:
            tables = pg.table_count(conn)
    finally:
        if v.staged and os.path.exists(v.staged):
            os.unlink(v.staged)
    el = time.monotonic() - t0
    report = {"key": key, "database": target_db, "bytes": v.object_bytes, "raw_bytes": v.raw_bytes,
              "tables": tables, "duration_s": round(el, 1), "finished_at": utcnow().isoformat(),
              "run_id": opts.run_id}
    if ledger:
        bucket.put_bytes(ledger, json.dumps(report).encode())
    log.info("restore complete", key=key, database=target_db, bytes=v.object_bytes, tables=tables,
             duration=f"{el:.1f}s", rate=log.rate(v.raw_bytes, el))
    return report
