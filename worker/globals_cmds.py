"""The worker's commands for roles and globals (worker/globals.py, worker/globals_apply.py), and the
hooks `backup`, `restore` and `list` call when asked for globals."""

from __future__ import annotations

import argparse
import json
import sys

from . import globals as gl
from . import log
from .errors import WorkerError
from .globals_apply import Report, restore_globals
from .manifest import Manifest
from .s3 import Bucket


def backup_globals(bucket: Bucket, args: argparse.Namespace) -> Manifest:
    return gl.run_globals_backup(
        bucket,
        gl.GlobalsOptions(
            prefix=args.prefix,
            database=args.database,
            compression=args.compression,
            compression_level=args.compression_level,
            role_passwords=args.globals_role_passwords,
            recipients=[args.age_recipient] if getattr(args, "age_recipient", None) else [],
        ),
    )


def after_database_backup(bucket: Bucket, args: argparse.Namespace) -> None:
    """`backup` with --globals: the roles once per run, after the database. A failure fails the run
    (monitoring sees it) but the database backup already stored stays."""
    try:
        backup_globals(bucket, args)
    except WorkerError as exc:
        raise WorkerError(
            f"the database backup is stored, but the globals backup failed: {exc.message}", hint=exc.hint
        ) from None


def cmd_backup_globals(args: argparse.Namespace) -> int:
    from .commands import _bucket, retention_policy

    bucket = _bucket(args)
    bucket.check(args.prefix)
    backup_globals(bucket, args)
    policy = retention_policy(args)
    if policy.active:
        gl.prune(bucket, args.prefix, policy)
    return 0


def apply_before_restore(bucket: Bucket, args: argparse.Namespace) -> Report:
    """`restore --globals`: the newest complete globals backup, applied (only adding roles) before the database."""
    from .commands import identities

    return restore_globals(
        bucket, args.prefix, "latest", args.database, dry_run=args.dry_run, identities=identities(args)
    )


def cmd_restore_globals(args: argparse.Namespace) -> int:
    from .commands import _bucket, identities

    report = restore_globals(
        _bucket(args), args.prefix, args.object, args.database, dry_run=args.dry_run, identities=identities(args)
    )
    print(json.dumps({"dry_run": args.dry_run, **report.__dict__}, indent=2) if args.json else _text(report))
    return 0


def _text(report: Report) -> str:
    lines = [
        f"created roles: {', '.join(report.created) or 'none'}",
        f"existing roles, left as they were: {', '.join(report.existing) or 'none'}",
        f"memberships added: {', '.join(report.memberships_added) or 'none'} ({report.memberships_existing} existed)",
    ]
    lines += [f"skipped: {s}" for s in report.skipped]
    return "\n".join(lines)


def list_rows(bucket: Bucket, prefix: str) -> list[dict[str, object]]:
    return [
        {
            "key": e.name.key,
            "taken_at": e.name.taken_at.isoformat(),
            "bytes": e.size,
            "status": e.status(),
            "role_passwords": bool(e.manifest and e.manifest.extra.get("role_passwords")),
        }
        for e in gl.scan(bucket, prefix)
    ]


def print_list(rows: list[dict[str, object]], as_json: bool, where: str) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(f"no globals backups under {where}", file=sys.stderr)
        return
    print(f"{'taken at (UTC)':<25}  {'size':>10}  {'passwords':<9}  {'status':<26} key")
    for r in rows:
        size = log.human_bytes(int(str(r["bytes"])))
        passwords = "yes" if r["role_passwords"] else "no"
        print(f"{r['taken_at']}  {size:>10}  {passwords:<9}  {r['status']:<26} {r['key']}")
