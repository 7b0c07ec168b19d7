"""`cnpg-backup-worker`: the program in the pods, also usable from a laptop.

Settings come from flags, else from the environment the manifests set (docs/worker-contract.md).
Every failure ends as one line on stderr and a non-zero exit; a traceback is shown only with -v.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Container
from datetime import datetime
from types import FrameType
from typing import Any, NoReturn, TypeVar

from . import catalog, contract, health, log, pg
from .dump import BackupOptions, run_backup
from .errors import EXIT_FAILURE, Terminated, UsageError, WorkerError
from .manifest import Manifest
from .restore import RestoreOptions, run_restore
from .s3 import Bucket, S3Location, utcnow

_T = TypeVar("_T")


def _env(name: str, default: str | None = None) -> str | None:
    v = os.environ.get(name)
    return v if v not in (None, "") else default


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2: same contract as every other failure
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


def _typed(
    env: str, parse: Callable[[str], _T], what: str, allowed: Container[_T] | None = None
) -> Callable[[str], _T]:
    """An argparse `type` that also names the environment variable a bad value may have come from.

    Defaults are the environment's strings, and argparse runs `type` on a string default only for
    the command being run and only after `--help` had its chance, so `CNPG_BACKUP_FORMAT=tar` fails
    `backup` (exit 2, before anything starts) but not `list` or `--help`. Its `choices` are never
    checked for defaults, hence `allowed` here.
    """

    def convert(text: str) -> _T:
        value: _T | None
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or (allowed is not None and value not in allowed):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} (from the flag or {env})")
        return value

    return convert


def _add(sp: argparse.ArgumentParser, setting: contract.Setting, help: str = "", *, flag: str = "", **kw: Any) -> None:
    """A flag that reads its contract variable (docs/worker-contract.md) and shows it in --help."""
    sp.add_argument(
        flag or setting.flag, default=_env(setting.env, setting.default), help=f"[{setting.env}] {help}".strip(), **kw
    )


def build_parser() -> argparse.ArgumentParser:
    c = contract
    p = _Parser(prog=c.COMMAND, description=__doc__.split("\n")[0])
    _add(p, c.LOG_FORMAT, metavar="{text,json}", type=_typed(c.LOG_FORMAT.env, str, "one of text, json", c.LOG_FORMATS))
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs and tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    wait_type = _typed(c.WAIT_TIMEOUT.env, float, "a number of seconds")
    retention_type = _typed(c.RETENTION_DAYS.env, int, "a number of days")

    def s3_args(sp: argparse.ArgumentParser) -> None:
        _add(sp, c.S3_BUCKET)
        _add(sp, c.S3_PREFIX)
        _add(sp, c.S3_ENDPOINT, "for MinIO/S3-compatible")
        sp.add_argument("--region", default=_env("AWS_REGION", _env("AWS_DEFAULT_REGION")), help="[AWS_REGION]")
        _add(sp, c.S3_STORAGE_CLASS)
        sp.add_argument("--database", default=_env("PGDATABASE"), help="[PGDATABASE] whose backups")

    sp = sub.add_parser("wait", help="wait until PostgreSQL accepts connections")
    _add(sp, c.WAIT_TIMEOUT, flag="--timeout", type=wait_type)
    sp.add_argument("--database", default=_env("PGDATABASE"))

    def format_and_level(sp: argparse.ArgumentParser) -> None:
        _add(
            sp,
            c.FORMAT,
            "of the backup taken",
            metavar="{plain,custom}",
            type=_typed(c.FORMAT.env, str, "one of plain, custom", c.FORMATS),
        )
        _add(
            sp,
            c.COMPRESSION,
            "plain: gzip (.sql.gz) or zstd (.sql.zst); custom: inside the archive, lz4 too",
            metavar="{gzip,zstd,lz4}",
            type=_typed(c.COMPRESSION.env, str, "one of gzip, zstd, lz4", c.COMPRESSIONS),
        )
        _add(
            sp,
            c.COMPRESSION_LEVEL,
            "gzip 1-9, zstd 1-19, lz4 1-12",
            metavar="LEVEL",
            type=_typed(c.COMPRESSION_LEVEL.env, int, "a compression level", range(1, 20)),
        )

    sp = sub.add_parser("backup", help="pg_dump → gzip|zstd → S3, then retention")
    s3_args(sp)
    format_and_level(sp)
    _add(sp, c.RETENTION_DAYS, type=retention_type)
    _add(sp, c.WAIT_TIMEOUT, type=wait_type)
    _add(
        sp,
        c.DUMP_LOCK_WAIT,
        "seconds pg_dump waits for a table's lock before the backup fails (0 waits for ever)",
        type=_typed(c.DUMP_LOCK_WAIT.env, float, "a number of seconds"),
    )
    _add(sp, c.PUSHGATEWAY, "push the run's metrics to this Prometheus Pushgateway (e.g. http://pushgateway:9091)")
    _add(
        sp,
        c.FLAG_SHRINK,
        "flag a dump this many percent smaller than the previous complete one (0: never)",
        type=_typed(c.FLAG_SHRINK.env, int, "a percentage 0-100", range(0, 101)),
    )

    sp = sub.add_parser("restore", help="verify a backup, then restore it so that a failure changes nothing")
    s3_args(sp)
    _add(sp, c.RESTORE_OBJECT, "key, file name under the prefix, or 'latest'")
    _add(sp, c.TARGET_DATABASE, "restore into this database instead")
    sp.add_argument("--force", action="store_true", help="replace the contents of a non-empty database")
    sp.add_argument("--backup-before-restore", action="store_true", help="take a full backup first; abort if it fails")
    sp.add_argument("--dry-run", action="store_true", help="only verify the object")
    _add(sp, c.RUN_ID, "restore at most once per run id")
    sp.add_argument(
        "--allow-unverified", action="store_true", help="accept an object without manifest (the Helm chart's backups)"
    )
    sp.add_argument(
        "--allow-flagged",
        action="store_true",
        help="let `latest` pick a flagged backup (no user tables, or shrank past backup.flagShrinkPercent)",
    )
    _add(
        sp,
        c.RESTORE_JOBS,
        "parallel pg_restore jobs (custom format, empty target only)",
        type=_typed(c.RESTORE_JOBS.env, int, "a number of jobs"),
    )
    _add(sp, c.WAIT_TIMEOUT, type=wait_type)
    format_and_level(sp)
    _add(
        sp,
        c.LOCK_TIMEOUT,
        f"seconds the restore waits for one lock before it fails and rolls back "
        f"(default {c.DEFAULT_LOCK_TIMEOUT_SECONDS}; 0 waits for ever, still reported)",
        type=_typed(c.LOCK_TIMEOUT.env, float, "a number of seconds"),
    )
    _add(
        sp,
        c.PROGRESS_INTERVAL,
        "seconds between progress and lock-wait lines",
        type=_typed(c.PROGRESS_INTERVAL.env, float, "a number of seconds"),
    )

    sp = sub.add_parser("list", help="this database's backups, newest first")
    s3_args(sp)
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("prune", help="delete this database's backups older than N days")
    s3_args(sp)
    _add(sp, c.RETENTION_DAYS, type=retention_type)
    sp.add_argument("--dry-run", action="store_true")

    sp = sub.add_parser(
        "drill", help="restore the newest backup into a throw-away server in this sandbox and compare row counts"
    )
    s3_args(sp)
    sp.add_argument("--object", default="latest", help="key, file name under the prefix, or 'latest'")
    _add(sp, c.PUSHGATEWAY, "push the drill's result to this Prometheus Pushgateway")

    sp = sub.add_parser("status", help="the last backup run and the newest good backup, from the bucket")
    s3_args(sp)
    sp.add_argument("--json", action="store_true")

    sp = sub.add_parser("check", help="exit 1 with one line unless the newest backup is recent, whole and unflagged")
    s3_args(sp)
    sp.add_argument("--max-age", required=True, help="e.g. 26h: older than this is a failure")
    sp.add_argument("--min-bytes", type=int, default=0, help="a smaller newest backup is a failure")
    return p


def _bucket(args: argparse.Namespace) -> Bucket:
    if not args.bucket:
        raise UsageError("no S3 bucket given", hint="pass --bucket or set CNPG_BACKUP_S3_BUCKET (s3.bucket)")
    if not args.database:
        raise UsageError("no database given", hint="pass --database or set PGDATABASE (cnpg.database)")
    if args.endpoint and not args.endpoint.startswith(("http://", "https://")):
        raise UsageError(f"S3 endpoint {args.endpoint!r} is not an http(s) URL")
    return Bucket(S3Location(args.bucket, args.endpoint, args.region, args.storage_class))


def _age(taken_at: datetime) -> str:
    s = (utcnow() - taken_at).total_seconds()
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s / n:.1f}{unit}"
    return f"{s:.0f}s"


def cmd_list(args: argparse.Namespace) -> int:
    bucket = _bucket(args)
    entries = catalog.scan(bucket, args.prefix, args.database)
    rows: list[dict[str, Any]] = [
        {
            "key": e.name.key,
            "taken_at": e.name.taken_at.isoformat(),
            "bytes": e.size,
            "age": _age(e.name.taken_at),
            "status": e.status(),
            "format": e.name.format,
            "compression": e.compression,
            "flags": e.flags,
        }
        for e in entries
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            kind = f"{r['format']}/{r['compression']}"
            print(
                f"{r['taken_at']}  {log.human_bytes(r['bytes']):>10}  {r['age']:>7}  {kind:<12} {r['status']:<26} {r['key']}"
            )
        if not rows:
            print(f"no backups of {args.database!r} under s3://{args.bucket}/{args.prefix}", file=sys.stderr)
    return 0


def _check_compression(args: argparse.Namespace) -> None:
    problem = contract.compression_problem(args.format, args.compression, args.compression_level)
    if problem:
        raise UsageError(
            problem,
            hint=f"check --format/--compression/--compression-level ({contract.FORMAT.env}, "
            f"{contract.COMPRESSION.env}, {contract.COMPRESSION_LEVEL.env})",
        )


def cmd_backup(args: argparse.Namespace) -> int:
    _check_compression(args)
    bucket = _bucket(args)
    # Everything from here on is a run that monitoring must see, the server being down included.
    with health.recorded_run(bucket, args.prefix, args.database, args.pushgateway) as recorded:
        pg.wait_ready(args.wait_timeout, args.database)
        bucket.check(args.prefix)
        recorded["manifest"] = _backup(bucket, args)
    if args.retention_days > 0:
        try:
            catalog.prune(bucket, args.prefix, args.database, args.retention_days)
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
            lock_wait_timeout=max(0.0, args.lock_wait_timeout),
            flag_shrink_percent=max(0, args.flag_shrink_percent),
        ),
    )


def cmd_drill(args: argparse.Namespace) -> int:
    from .drill import run_drill

    run_drill(_bucket(args), args.prefix, args.database, args.object, args.pushgateway)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    doc = health.status_report(_bucket(args), args.prefix, args.database)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        health.print_status(doc, print)
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
            jobs=max(1, args.jobs),
            format=args.format,
            compression_level=args.compression_level,
            compression=args.compression,
            wait_timeout=args.wait_timeout,
            lock_timeout=max(0.0, args.lock_timeout),
            progress_interval=max(0.5, args.progress_interval),
        ),
    )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    bucket = _bucket(args)
    catalog.prune(bucket, args.prefix, args.database, args.retention_days, dry_run=args.dry_run)
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    pg.wait_ready(args.timeout, args.database)
    return 0


def _on_signal(signum: int, _frame: FrameType | None) -> NoReturn:
    raise Terminated(
        f"received {signal.Signals(signum).name}; stopping", hint="any partial upload was aborted; nothing was stored"
    )


def main(argv: list[str] | None = None) -> int:
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    log.setup("text", verbose)
    try:
        args = build_parser().parse_args(argv)
        log.setup(args.log_format, args.verbose)
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        handler = {
            "wait": cmd_wait,
            "backup": cmd_backup,
            "restore": cmd_restore,
            "list": cmd_list,
            "prune": cmd_prune,
            "status": cmd_status,
            "drill": cmd_drill,
            "check": cmd_check,
        }[args.command]
        t0 = time.monotonic()
        rc = handler(args)
        log.log.debug("done in %.1fs", time.monotonic() - t0)
        return rc
    except (WorkerError, Terminated) as exc:
        if verbose:
            log.log.exception("failed")
        log.error(f"{args.command if 'args' in locals() else 'worker'} failed: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug still ends in one line; -v shows the traceback
        if verbose:
            log.log.exception("unexpected error")
        log.error(
            f"unexpected error: {exc.__class__.__name__}: {log.redact(str(exc))}",
            hint="re-run with -v for details and report it",
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
