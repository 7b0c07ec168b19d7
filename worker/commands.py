"""The worker's commands: each takes the parsed flags (worker/cli.py builds them from the contract)
and returns the exit code; failures raise WorkerError, which cli.main prints as one line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from typing import Any

from . import catalog, contract, crypt, fleet, globals_cmds, health, log, pg, pg_dump_options, retention
from .dump import BackupOptions, run_backup
from .errors import UsageError, WorkerError
from .globals import prune as globals_prune
from .manifest import Manifest
from .restore import RestoreOptions, run_restore
from .s3 import Bucket, utcnow
from .s3_client import S3Location


def _bucket(args: argparse.Namespace, *, needs_database: bool = True) -> Bucket:
    if not args.bucket:
        raise UsageError("no S3 bucket given", hint="pass --bucket or set CNPG_BACKUP_S3_BUCKET (s3.bucket)")
    if needs_database and not args.database:
        raise UsageError("no database given", hint="pass --database or set PGDATABASE (cnpg.database)")
    if args.endpoint and not args.endpoint.startswith(("http://", "https://")):
        raise UsageError(f"S3 endpoint {args.endpoint!r} is not an http(s) URL")
    return Bucket(
        S3Location(
            args.bucket,
            args.endpoint,
            args.region,
            getattr(args, "storage_class", None),
            sse=getattr(args, "sse", None),
            kms_key_id=getattr(args, "kms_key_id", None),
        )
    )


def _age(taken_at: datetime) -> str:
    s = (utcnow() - taken_at).total_seconds()
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s / n:.1f}{unit}"
    return f"{s:.0f}s"


def cmd_list(args: argparse.Namespace) -> int:
    bucket = _bucket(args)
    if args.globals:  # the roles' backups, kept apart from the database's (worker/globals.py)
        globals_cmds.print_list(
            globals_cmds.list_rows(bucket, args.prefix), args.json, f"s3://{args.bucket}/{args.prefix}"
        )
        return 0
    entries = catalog.scan(bucket, args.prefix, args.database)
    rows: list[dict[str, Any]] = [
        {
            "key": e.name.key,
            "taken_at": e.name.taken_at.isoformat(),
            "bytes": e.total_size,
            "age": _age(e.name.taken_at),
            "status": e.status(),
            "format": e.name.format,
            "compression": e.compression,
            "flags": e.flags,
            "parts": 1 + len(e.manifest.parts) if e.manifest else 1,  # a parallel backup's objects
        }
        for e in entries
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        if rows:
            print(f"{'taken at (UTC)':<25}  {'size':>10}  {'age':>7}  {'kind':<12} {'status':<26} key")
        for r in rows:
            kind = f"{r['format']}/{r['compression']}" + (f" x{r['parts']}" if r["parts"] > 1 else "")
            print(
                f"{r['taken_at']}  {log.human_bytes(r['bytes']):>10}  {r['age']:>7}  {kind:<12} {r['status']:<26} {r['key']}"
            )
        if not rows:
            print(f"no backups of {args.database!r} under s3://{args.bucket}/{args.prefix}", file=sys.stderr)
        kept_apart = globals_cmds.list_rows(bucket, args.prefix)
        if kept_apart:
            newest = kept_apart[0]
            print(
                f"roles and globals: {len(kept_apart)} backup(s) under .globals/, newest {newest['key']} "
                f"({newest['status']}); `list --globals` lists them"
            )
    return 0


def _check_compression(args: argparse.Namespace) -> None:
    problem = contract.compression_problem(args.format, args.compression, args.compression_level)
    if problem:
        raise UsageError(
            problem,
            hint=f"check --format/--compression/--compression-level ({contract.FORMAT.env}, "
            f"{contract.COMPRESSION.env}, {contract.COMPRESSION_LEVEL.env})",
        )


def pg_dump_args(args: argparse.Namespace) -> tuple[str, ...]:
    """backup.extraArgs: the repeated --pg-dump-arg flags, else the JSON list in the environment;
    every item checked before anything starts (worker/pg_dump_options.py), as synth checked them."""
    setting = contract.DUMP_EXTRA_ARGS
    given: Any = args.pg_dump_args
    source = setting.flag
    if given is None:
        raw = os.environ.get(setting.env, "").strip()
        if not raw:
            return ()
        source = setting.env
        try:
            given = json.loads(raw)
        except ValueError:
            given = None
        if not isinstance(given, list) or not all(isinstance(a, str) for a in given):
            raise UsageError(
                f"{setting.env}: not a JSON list of strings", hint='e.g. ["--no-owner", "--exclude-table=audit_log"]'
            )
    found = pg_dump_options.problems(given, getattr(args, "dump_jobs", 1))
    if found:
        index, message = found[0]
        raise UsageError(f"{source}[{index}]: {message}", hint="fix backup.extraArgs; nothing was dumped")
    return tuple(given)


def cmd_backup(args: argparse.Namespace) -> int:
    _check_compression(args)
    args.pg_dump_args = pg_dump_args(args)
    if args.dump_jobs > 1 and args.format != "custom":
        raise UsageError(
            f"--dump-jobs {args.dump_jobs} needs the custom format, not {args.format!r}",
            hint=f"set backup.format: custom or backup.jobs: 1 ({contract.FORMAT.env}, {contract.DUMP_JOBS.env})",
        )
    bucket = _bucket(args)
    # Everything from here on is a run that monitoring must see, the server being down included.
    with health.recorded_run(bucket, args.prefix, args.database, args.pushgateway) as recorded:
        # The S3 client is made on a thread while PostgreSQL is checked and pg_dump starts
        # (worker/dump.py); started after recorded_run's own imports, so that no module is imported
        # by two threads at once.
        bucket.prepare()
        pg.wait_ready(args.wait_timeout, args.database)
        recorded["manifest"] = _backup(bucket, args)
        if args.with_globals:
            globals_cmds.after_database_backup(bucket, args)
    policy = retention_policy(args)
    if policy.active:
        try:
            retention.prune(bucket, args.prefix, args.database, policy)
            globals_prune(bucket, args.prefix, policy)  # also once globals are off: they still age out
        except WorkerError as exc:
            raise WorkerError(f"backup succeeded but retention failed: {exc}") from None
    return 0


def _backup(bucket: Bucket, args: argparse.Namespace) -> Manifest:
    return run_backup(
        bucket,
        BackupOptions(
            prefix=args.prefix,
            database=args.database,
            format=args.format,
            compression_level=args.compression_level,
            compression=args.compression,
            compression_chosen=not getattr(args, "compression_defaulted", False),
            level_chosen=not getattr(args, "level_defaulted", False),
            lock_wait_timeout=max(0.0, args.lock_wait_timeout),
            flag_shrink_percent=max(0, args.flag_shrink_percent),
            record_row_counts=args.record_row_counts,
            recipients=_recipients(args),
            pg_dump_args=args.pg_dump_args,
            jobs=args.dump_jobs,
        ),
    )


def _recipients(args: argparse.Namespace) -> list[str]:
    return [args.age_recipient] if args.age_recipient else []


def identities(args: argparse.Namespace) -> list[Any]:
    """age identities: `--identity-file`, else the Secret's variable (never a flag: argv is public)."""
    return crypt.identities_from(os.environ.get(contract.AGE_IDENTITY.env), args.identity_file)


def cmd_keygen(args: argparse.Namespace) -> int:
    ident, public = crypt.generate()
    print(f"# public key: {public}")
    print(ident)
    print(f"Public key: {public}", file=sys.stderr)
    return 0


def cmd_drill(args: argparse.Namespace) -> int:
    from .drill import run_drill

    run_drill(_bucket(args), args.prefix, args.database, args.object, args.pushgateway, identities(args))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.all:
        return _fleet_status(args)
    doc = health.status_report(_bucket(args), args.prefix, args.database)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        health.print_status(doc, print)
    return 0


def _fleet_status(args: argparse.Namespace) -> int:
    docs = fleet.fleet_report(_bucket(args, needs_database=False), args.prefix or "")
    if args.json:
        print(json.dumps(docs, indent=2))
    elif docs:
        fleet.print_fleet(docs, print)
    else:
        where = f"s3://{args.bucket}/{args.prefix or ''}"
        print(f"no status objects under {where} (each backup run writes one)", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    max_age = health.parse_duration(args.max_age)
    verdict = health.check(_bucket(args), args.prefix, args.database, max_age, args.min_bytes)
    print(verdict.line)
    return 0 if verdict.ok else 1


def cmd_restore(args: argparse.Namespace) -> int:
    if not args.object:
        raise UsageError("no restore object given", hint="pass --object KEY (restore.object) or --object latest")
    if args.backup_before_restore:
        _check_compression(args)
    bucket = _bucket(args)
    if args.globals:  # roles first, so the dump's owners and grants find them; only ever adds roles
        globals_cmds.apply_before_restore(bucket, args)
    run_restore(
        bucket,
        RestoreOptions(
            prefix=args.prefix,
            database=args.database,
            object=args.object,
            target_database=args.target_database,
            force=args.force,
            backup_before_restore=args.backup_before_restore,
            dry_run=args.dry_run,
            run_id=args.run_id,
            allow_unverified=args.allow_unverified,
            allow_flagged=args.allow_flagged,
            create_database=args.create,
            jobs=max(1, args.jobs),
            format=args.format,
            compression_level=args.compression_level,
            compression=args.compression,
            wait_timeout=args.wait_timeout,
            lock_timeout=max(0.0, args.lock_timeout),
            progress_interval=max(0.5, args.progress_interval),
            identities=identities(args),
            recipients=_recipients(args),
        ),
    )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    bucket = _bucket(args)
    policy = retention_policy(args)
    retention.prune(bucket, args.prefix, args.database, policy, dry_run=args.dry_run)
    globals_prune(bucket, args.prefix, policy, dry_run=args.dry_run)  # the roles' backups, by the same rules
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    pg.wait_ready(args.timeout, args.database)
    return 0


def retention_policy(args: argparse.Namespace) -> retention.Policy:
    return retention.Policy(
        days=max(0, args.retention_days),
        daily=max(0, args.keep_daily),
        weekly=max(0, args.keep_weekly),
        monthly=max(0, args.keep_monthly),
        yearly=max(0, args.keep_yearly),
    )
