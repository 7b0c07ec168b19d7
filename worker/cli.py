"""`cnpg-backup-worker`: the program in the pods, also usable from a laptop.

Settings come from flags, else from the environment the manifests set (docs/worker-contract.md).
Every failure ends as one line on stderr and a non-zero exit; a traceback is shown only with -v.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Container
from types import FrameType
from typing import Any, NoReturn, TypeVar

from . import contract, log
from .commands import (
    cmd_backup,
    cmd_check,
    cmd_drill,
    cmd_keygen,
    cmd_list,
    cmd_prune,
    cmd_restore,
    cmd_status,
    cmd_wait,
)
from .errors import EXIT_FAILURE, Terminated, UsageError, WorkerError
from .globals_cmds import cmd_backup_globals, cmd_restore_globals

_T = TypeVar("_T")


def _env(name: str, default: str | None = None) -> str | None:
    v = os.environ.get(name)
    return v if v not in (None, "") else default


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2: same contract as every other failure
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")

    def parse_known_args(self, *args: Any, **kw: Any) -> Any:
        ns, rest = super().parse_known_args(*args, **kw)
        # a codec not chosen follows the format (gzip for plain, zstd for custom): known only once
        # both are parsed; globals, always plain SQL, have no --format
        if getattr(ns, "compression", "") is None:
            ns.compression = contract.default_compression(getattr(ns, "format", contract.DEFAULT_FORMAT))
            ns.compression_defaulted = True
        # and a level not chosen follows the codec (lz4 1, gzip and zstd 2)
        if hasattr(ns, "compression_level") and ns.compression_level is None:
            ns.compression_level = contract.default_level(ns.compression)
            ns.level_defaulted = True
        return ns, rest


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


def _parse_bool(text: str) -> bool | None:
    return text.lower() == "true" if text.lower() in ("true", "false") else None


def _boolean(setting: contract.Setting) -> Callable[[str], bool | None]:
    return _typed(setting.env, _parse_bool, "true or false")


def _add(sp: argparse.ArgumentParser, setting: contract.Setting, help: str = "", *, flag: str = "", **kw: Any) -> None:
    """A flag that reads its contract variable (docs/worker-contract.md); --help shows both, and the
    default when there is one."""
    default = f" (default: {setting.default})" if setting.default not in (None, "") else ""
    unit = _UNITS.get(setting.env.removeprefix("CNPG_BACKUP_"))
    if unit and "metavar" not in kw:
        kw["metavar"] = unit
    sp.add_argument(
        flag or setting.flag,
        default=_env(setting.env, setting.default),
        help=f"{help}{default} [env {setting.env}]".strip(),
        **kw,
    )


# The unit of a value, shown as its metavar in --help (`--wait-timeout SECONDS`).
_UNITS = {
    "RETENTION_DAYS": "DAYS",
    "RETENTION_DAILY": "N",
    "RETENTION_WEEKLY": "N",
    "RETENTION_MONTHLY": "N",
    "RETENTION_YEARLY": "N",
    "WAIT_TIMEOUT": "SECONDS",
    "LOCK_WAIT_TIMEOUT": "SECONDS",
    "LOCK_TIMEOUT": "SECONDS",
    "PROGRESS_INTERVAL": "SECONDS",
    "FLAG_SHRINK_PERCENT": "PERCENT",
    "RESTORE_JOBS": "N",
    "PUSHGATEWAY_URL": "URL",
    "S3_ENDPOINT": "URL",
    "S3_BUCKET": "BUCKET",
    "S3_PREFIX": "PREFIX",
    "S3_STORAGE_CLASS": "CLASS",
    "S3_KMS_KEY_ID": "KEY",
    "RESTORE_OBJECT": "KEY",
    "TARGET_DATABASE": "DATABASE",
    "RUN_ID": "ID",
}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("cnpg-pgdump-backup")
    except Exception:  # noqa: BLE001 - run from a source tree without installing
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    c = contract
    p = _Parser(prog=c.COMMAND, description=__doc__.split("\n")[0])
    _add(p, c.LOG_FORMAT, metavar="{text,json}", type=_typed(c.LOG_FORMAT.env, str, "one of text, json", c.LOG_FORMATS))
    p.add_argument("-v", "--verbose", action="store_true", help="debug logs and tracebacks")
    p.add_argument("--version", action="version", version=f"{c.COMMAND} {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    add_parser = sub.add_parser

    def command(name: str, summary: str, description: str = "") -> argparse.ArgumentParser:
        return add_parser(name, help=summary, description=f"{summary}. {description}".strip())

    wait_type = _typed(c.WAIT_TIMEOUT.env, float, "a number of seconds")
    retention_type = _typed(c.RETENTION_DAYS.env, int, "a number of days")

    def retention_args(sp: argparse.ArgumentParser) -> None:
        _add(sp, c.RETENTION_DAYS, "keep every backup newer than this (0: no age rule)", type=retention_type)
        for period, setting in c.RETENTION_GFS.items():
            _add(
                sp,
                setting,
                f"keep the newest backup of each of the last N {period} periods (0: none)",
                type=_typed(setting.env, int, "a count"),
            )

    def s3_args(sp: argparse.ArgumentParser, *, writes: bool = False) -> None:
        _add(sp, c.S3_BUCKET, "the bucket holding the backups")
        _add(sp, c.S3_PREFIX, "the database's key prefix in the bucket")
        _add(sp, c.S3_ENDPOINT, "S3 API URL, for MinIO or another S3-compatible store")
        sp.add_argument(
            "--region", default=_env("AWS_REGION", _env("AWS_DEFAULT_REGION")), help="S3 region [env AWS_REGION]"
        )
        if writes:  # only where objects are written
            _add(sp, c.S3_STORAGE_CLASS, "storage class of the objects written, e.g. STANDARD_IA")
            _add(
                sp,
                c.S3_SSE,
                "server-side encryption of every object the worker writes (status records included)",
                metavar="{AES256,aws:kms}",
                type=_typed(c.S3_SSE.env, str, "AES256 or aws:kms", c.SSE_MODES),
            )
            _add(sp, c.S3_KMS_KEY_ID, "with --sse aws:kms: the KMS key (default: the bucket's)")
        sp.add_argument("--database", default=_env("PGDATABASE"), help="the database whose backups [env PGDATABASE]")

    def age_args(sp: argparse.ArgumentParser, *, encrypts: bool) -> None:
        if encrypts:
            _add(
                sp,
                c.AGE_RECIPIENTS,
                "with --backup-before-restore: encrypt that backup for these age public keys (age1…)",
                metavar="KEYS",
            )
        sp.add_argument(
            "--identity-file",
            metavar="FILE",
            help=f"age identity file to decrypt encrypted backups [or env {c.AGE_IDENTITY.env}, the key itself]",
        )

    sp = command("wait", "wait until PostgreSQL accepts a query", "What the pods' init container runs.")
    _add(sp, c.WAIT_TIMEOUT, flag="--timeout", type=wait_type)
    sp.add_argument("--database", default=_env("PGDATABASE"))

    def globals_passwords(sp: argparse.ArgumentParser) -> None:
        _add(
            sp,
            c.GLOBALS_ROLE_PASSWORDS,
            "keep role passwords (hashes) in the globals backup; by default --no-role-passwords",
            metavar="{true,false}",
            type=_boolean(c.GLOBALS_ROLE_PASSWORDS),
        )

    def format_and_level(sp: argparse.ArgumentParser, *, with_format: bool = True) -> None:
        if with_format:  # globals are always plain SQL
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
            "plain: gzip (.sql.gz) or zstd (.sql.zst); custom: inside the archive, lz4 too (default: "
            + (
                f"{c.DEFAULT_COMPRESSION} for plain, {c.DEFAULT_CUSTOM_COMPRESSION} for custom)"
                if with_format
                else f"{c.DEFAULT_COMPRESSION})"
            ),
            metavar="{gzip,zstd,lz4}",
            type=_typed(c.COMPRESSION.env, str, "one of gzip, zstd, lz4", c.COMPRESSIONS),
        )
        _add(
            sp,
            c.COMPRESSION_LEVEL,
            "gzip 1-9, zstd 1-19, lz4 1-12 (default: gzip 2, zstd 2, lz4 1)",
            metavar="LEVEL",
            type=_typed(c.COMPRESSION_LEVEL.env, int, "a compression level", range(1, 20)),
        )

    sp = command(
        "backup",
        "pg_dump → gzip|zstd → S3, then retention",
        "Streams the dump into an S3 multipart upload; the object and its manifest appear only when "
        "everything succeeded. Records the run in the status object (and the Pushgateway).",
    )
    s3_args(sp, writes=True)
    format_and_level(sp)
    retention_args(sp)
    _add(sp, c.AGE_RECIPIENTS, "encrypt the object for these age public keys (age1…, comma-separated)", metavar="KEYS")
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
        c.RECORD_ROW_COUNTS,
        "plain format: record each table's row count in the manifest, for restore drills (~1 s CPU per GB)",
        metavar="{true,false}",
        type=_boolean(c.RECORD_ROW_COUNTS),
    )
    _add(
        sp,
        c.GLOBALS,
        "after the database, also dump roles, memberships and tablespaces (pg_dumpall --globals-only) "
        "to <prefix>/.globals/, as the superuser (CNPG_BACKUP_SUPERUSER) or PGUSER",
        metavar="{true,false}",
        type=_boolean(c.GLOBALS),
    )
    globals_passwords(sp)
    _add(
        sp,
        c.DUMP_JOBS,
        "pg_dump processes sharing one snapshot, each streaming its own part (custom format only)",
        metavar="N",
        type=_typed(c.DUMP_JOBS.env, int, "a number of jobs 1-64", range(1, 65)),
    )
    _add(
        sp,
        c.FLAG_SHRINK,
        "flag a dump this many percent smaller than the previous complete one (0: never)",
        type=_typed(c.FLAG_SHRINK.env, int, "a percentage 0-100", range(0, 101)),
    )
    sp.add_argument(
        c.DUMP_EXTRA_ARGS.flag,
        action="append",
        dest="pg_dump_args",
        metavar="OPTION",
        help="an extra pg_dump option, long form with its value after '=', e.g. --pg-dump-arg=--no-owner "
        "--pg-dump-arg=--exclude-table=audit_log; repeatable; the format, output, compression and connection "
        f"stay the worker's (a JSON list in the variable) [env {c.DUMP_EXTRA_ARGS.env}]",
    )

    sp = command(
        "restore",
        "verify a backup, then restore it so that a failure changes nothing",
        "The object is proven intact before the database is touched; a failed, signalled or killed "
        "restore leaves the database as it was (verified), or is refused before it starts.",
    )
    s3_args(sp, writes=True)  # --backup-before-restore writes a backup
    age_args(sp, encrypts=True)
    _add(sp, c.RESTORE_OBJECT, "key, file name under the prefix, or 'latest'")
    _add(sp, c.TARGET_DATABASE, "restore into this database instead")
    sp.add_argument(
        "--globals",
        action="store_true",
        help="first apply the newest globals backup: create missing roles and memberships, change no existing "
        "role (as restore-globals; needs a superuser)",
    )
    sp.add_argument("--force", action="store_true", help="replace the contents of a non-empty database")
    sp.add_argument(
        "--create", action="store_true", help="create the --target-database if it does not exist (needs CREATEDB)"
    )
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

    sp = command("list", "this database's backups, newest first", "Status: complete, flagged, or not trusted.")
    s3_args(sp)
    sp.add_argument("--json", action="store_true", help="machine-readable: sizes in bytes, times in ISO 8601")
    sp.add_argument(
        "--globals", action="store_true", help="list the roles/globals backups (<prefix>/.globals/) instead"
    )

    sp = command(
        "backup-globals",
        "pg_dumpall --globals-only → gzip|zstd → S3 <prefix>/.globals/, then retention",  # lz4: zstd
        "Roles, memberships, role settings and tablespaces, as the superuser (CNPG_BACKUP_SUPERUSER) or PGUSER; "
        "role passwords only with --globals-role-passwords true. `backup` does the same after the database "
        "when CNPG_BACKUP_GLOBALS is true.",
    )
    s3_args(sp, writes=True)
    format_and_level(sp, with_format=False)
    globals_passwords(sp)
    retention_args(sp)
    _add(sp, c.AGE_RECIPIENTS, "encrypt the object for these age public keys (age1…, comma-separated)", metavar="KEYS")

    sp = command(
        "restore-globals",
        "apply a globals backup: create missing roles and memberships, never change an existing role",
        "An existing role keeps its password, attributes and settings; nothing is dropped or revoked; "
        "tablespaces are skipped. One transaction: a failure leaves the roles as they were.",
    )
    s3_args(sp)
    age_args(sp, encrypts=False)
    sp.add_argument("--object", required=True, help="key or file name from `list --globals`, or 'latest'")
    sp.add_argument("--dry-run", action="store_true", help="apply it all, report, then roll back")
    sp.add_argument("--json", action="store_true", help="the report as JSON")

    sp = command(
        "prune",
        "delete this database's backups no retention rule keeps",
        "Never the newest complete backup, the newest unflagged one, or one a restore is reading.",
    )
    s3_args(sp)
    retention_args(sp)
    sp.add_argument("--dry-run", action="store_true", help="print the plan (kept/deleted and why); delete nothing")

    sp = command(
        "drill",
        "restore the newest backup into a throw-away server in this sandbox and compare row counts",
        "Never connects to the production database; needs server binaries (the image has them).",
    )
    s3_args(sp, writes=True)  # its result: the status record and the backup's manifest
    age_args(sp, encrypts=False)
    sp.add_argument("--object", default="latest", help="key, file name under the prefix, or 'latest'")
    _add(sp, c.PUSHGATEWAY, "push the drill's result to this Prometheus Pushgateway")

    sp = command("status", "the last backup run, the newest good backup and the last drill, from the bucket")
    s3_args(sp)
    sp.add_argument(
        "--all",
        action="store_true",
        help="every database with a status object under --prefix (the whole bucket without one), one line each",
    )
    sp.add_argument("--json", action="store_true", help="machine-readable: sizes in bytes, times in ISO 8601")

    sp = command(
        "check",
        "exit 1 with one line unless the newest backup is recent, whole and unflagged",
        "Also fails when the last run or the last drill failed. For cron, CI or a monitoring probe.",
    )
    s3_args(sp)
    sp.add_argument("--max-age", required=True, help="e.g. 26h: older than this is a failure")
    sp.add_argument("--min-bytes", type=int, default=0, help="a smaller newest backup is a failure")

    command(
        "keygen",
        "print a new age identity (private key) on stdout and its public key on stderr",
        "Keep the identity in a Secret for restores (encryption.identitySecret); put the public key in "
        "encryption.recipients. Same format as age-keygen.",
    )
    return p


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
            "keygen": cmd_keygen,
            "backup-globals": cmd_backup_globals,
            "restore-globals": cmd_restore_globals,
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
