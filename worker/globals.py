"""Roles, tablespaces and grants: `pg_dumpall --globals-only` → gzip|zstd → S3, next to the database backups.

A database dump holds neither roles nor their memberships, so restoring it into a new cluster fails
on every `ALTER ... OWNER TO` a role it does not have. These backups keep them, under
`<prefix>/.globals/globals_YYYY-MM-DD_HH-MM-SS.sql.gz`: a folder of its own, so no database listing,
`latest` or retention of a database ever sees them, while the same machinery (key reservation,
multipart upload with heartbeat, manifest written just before the object appears, retention) runs on that folder as if it held
the backups of a database named `globals`.

pg_dumpall reads role passwords from pg_authid, which only a superuser may read; the backup uses the
superuser whose credentials the pod gets as CNPG_BACKUP_SUPERUSER/CNPG_BACKUP_SUPERUSER_PASSWORD
(CNPG's `<cluster>-superuser` Secret), else PGUSER. Unless asked for (`includeRolePasswords`), the
passwords are left out (`--no-role-passwords`). The object appears only when pg_dumpall exited 0 and
its output ended with the cluster-dump trailer, with its manifest, as for database backups.

Applying such a backup to a cluster: worker/globals_apply.py.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from . import catalog, contract, crypt, log, naming, pg, retention, uploads
from .backup_session import BackupSession
from .dumpstream import DumpStream
from .errors import WorkerError
from .manifest import Manifest
from .procs import StderrTail, child_options, widen_pipe
from .s3 import MIN_PART, Bucket, utcnow

GLOBALS_DIR = naming.GLOBALS_DIR  # under the database's prefix
GLOBALS_NAME = "globals"  # the `database` part of the keys in that folder
KIND = "globals"  # manifest extra["kind"]
TRAILER = b"-- PostgreSQL database cluster dump complete"


def globals_prefix(prefix: str) -> str:
    return naming.join(prefix, GLOBALS_DIR)


def is_globals_key(key: str) -> bool:
    return key.startswith(GLOBALS_DIR + "/") or f"/{GLOBALS_DIR}/" in key


def superuser() -> tuple[str | None, str | None]:
    """The superuser's name and password from the pod's environment; (None, None): use PGUSER/PGPASSWORD."""
    user = os.environ.get(contract.SUPERUSER.env) or None
    password = os.environ.get(contract.SUPERUSER_PASSWORD.env) if user else None
    return user, password


def superuser_env() -> dict[str, str]:
    """The libpq environment for pg_dumpall: the superuser's credentials replace PGUSER/PGPASSWORD."""
    env = pg.client_env()
    user, password = superuser()
    if user:
        env["PGUSER"] = user
        env.pop("PGPASSWORD", None)
        if password:
            env["PGPASSWORD"] = password
    return env


def connect_superuser(dbname: str, *, autocommit: bool = True) -> psycopg.Connection:
    user, password = superuser()
    kwargs: dict[str, Any] = {
        "connect_timeout": 10,
        "autocommit": autocommit,
        "application_name": "cnpg-pgdump-backup",
        "dbname": dbname,
    }
    if user:
        kwargs["user"] = user
        kwargs["password"] = password or ""
    try:
        return psycopg.connect(**kwargs)
    except psycopg.Error as exc:
        err = pg.connection_error(exc, dbname)
        if user:
            err = WorkerError(
                err.message.replace(pg.target(dbname), _where(dbname)),
                hint="check the superuser Secret (backup.globals.superuserSecret) and that the CNPG cluster "
                "has enableSuperuserAccess: true",
            )
        raise err from None


def _where(dbname: str) -> str:
    user, _ = superuser()
    host, port = os.environ.get("PGHOST", "localhost"), os.environ.get("PGPORT", "5432")
    return f"{user or os.environ.get('PGUSER', '')}@{host}:{port}/{dbname}"


class GlobalsStream(DumpStream):
    """A DumpStream running `pg_dumpall --globals-only` as the superuser: the same reader thread,
    compression and hashing; its own command, environment and completeness check."""

    def __init__(
        self,
        client: pg.Client,
        database: str,
        level: int,
        compression: str,
        role_passwords: bool,
        recipients: Sequence[Any] = (),
    ) -> None:
        super().__init__(client, database, "plain", level, 0, compression, recipients=recipients)
        self.role_passwords = role_passwords

    def command(self) -> list[str]:
        # The database only tells pg_dumpall where to connect (CNPG's superuser may use the app's).
        cmd = [self.client.tool("pg_dumpall"), "--globals-only", "--no-password", f"--database={self.database}"]
        if not self.role_passwords:
            cmd.append("--no-role-passwords")
        return cmd

    def __enter__(self) -> GlobalsStream:
        self._proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=superuser_env(),
            **child_options(),
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None  # both are PIPEs
        widen_pipe(self._proc.stdout)
        self._tail = StderrTail(self._proc.stderr)
        self._tail.start()
        return self

    def finish(self) -> None:
        assert self._proc is not None and self._tail is not None
        rc = self._proc.wait()
        self._tail.join(timeout=10)
        where = _where(self.database)
        if rc != 0:
            summary = self._tail.summary()
            hint = "nothing was stored; see the pg_dumpall message"
            if "permission denied" in summary or "must be superuser" in summary:
                hint = (
                    "nothing was stored; pg_dumpall needs a superuser (backup.globals.superuserSecret, CNPG's "
                    "<cluster>-superuser with enableSuperuserAccess: true), or leave "
                    "backup.globals.includeRolePasswords off"
                )
            raise WorkerError(f"pg_dumpall --globals-only of {where} failed (exit {rc}): {summary}", hint=hint)
        if self.raw_bytes == 0 or TRAILER not in self._last:
            raise WorkerError(
                f"pg_dumpall --globals-only output for {where} lacks the dump-complete trailer",
                hint="nothing was stored; the dump was cut short",
            )


@dataclass
class GlobalsOptions:
    prefix: str  # the database's prefix; the backups go to <prefix>/.globals/
    database: str  # where pg_dumpall connects
    compression: str = contract.DEFAULT_COMPRESSION  # gzip | zstd (globals are always plain SQL)
    compression_level: int = contract.DEFAULT_COMPRESSION_LEVEL
    role_passwords: bool = False
    upload_concurrency: int = 2
    recipients: list[str] = field(default_factory=list)  # age public keys, like the database backups


def run_globals_backup(bucket: Bucket, opts: GlobalsOptions) -> Manifest:
    recipients = crypt.parse_recipients("\n".join(opts.recipients), f"${contract.AGE_RECIPIENTS.env}")
    started = utcnow()
    t0 = time.monotonic()
    compression = opts.compression if opts.compression in ("gzip", "zstd") else "zstd"  # lz4: custom only
    level = opts.compression_level if compression == "zstd" else min(opts.compression_level, 9)
    with connect_superuser(opts.database) as conn:
        info = pg.server_info(conn)
    client = pg.choose_client(info.major, f"pg_dumpall of a PostgreSQL {info.major} server")
    prefix = globals_prefix(opts.prefix)
    uploads.abort_stale(bucket, prefix, GLOBALS_NAME)
    session = BackupSession(
        bucket,
        prefix,
        GLOBALS_NAME,
        "plain",
        started,
        compression=compression,
        encrypted=bool(recipients),
        part_size=MIN_PART,
        concurrency=opts.upload_concurrency,
    )
    name = session.reserve()
    log.info(
        "globals backup starting",
        server=info.version,
        pg_dumpall=client.version,
        key=name.key,
        role_passwords="included" if opts.role_passwords else "left out",
    )
    with (
        session,
        GlobalsStream(client, opts.database, level, compression, opts.role_passwords, recipients) as dump,
    ):
        for data in dump.chunks():
            session.write(data)
        dump.finish()
        manifest = Manifest(
            database=GLOBALS_NAME,
            key=name.key,
            format="plain",
            compression=compression,
            server_version=info.version,
            pg_dump_version=client.version,
            pg_dump_major=client.major,
            raw_bytes=dump.raw_bytes,
            object_bytes=dump.stored_bytes,
            sha256=dump.sha256,
            started_at=started.isoformat(),
            finished_at=utcnow().isoformat(),
            encryption={"scheme": "age", "recipients": [str(r) for r in recipients]} if recipients else {},
            extra={
                "kind": KIND,
                "role_passwords": opts.role_passwords,
                "dumped_through": opts.database,
                "compression_level": level,
            },
        )
        session.publish(manifest)
    log.info(
        "globals backup complete",
        key=name.key,
        dumped=log.human_bytes(dump.raw_bytes),
        stored=log.human_bytes(dump.stored_bytes),
        duration=log.seconds(time.monotonic() - t0),
    )
    return manifest


def scan(bucket: Bucket, prefix: str) -> list[catalog.Entry]:
    """The globals backups under the database's prefix, newest first."""
    return catalog.scan(bucket, globals_prefix(prefix), GLOBALS_NAME)


def latest(bucket: Bucket, prefix: str) -> catalog.Entry:
    try:
        return catalog.latest_complete(bucket, globals_prefix(prefix), GLOBALS_NAME)
    except WorkerError:
        raise WorkerError(
            f"no complete globals backup under s3://{bucket.loc.bucket}/{globals_prefix(prefix)}/",
            hint="backups dump roles only with backup.globals.enabled (or run `cnpg-backup-worker backup-globals`)",
        ) from None


def prune(bucket: Bucket, prefix: str, policy: retention.Policy, *, dry_run: bool = False) -> None:
    """The database's retention rules, applied to its globals backups too (never the newest complete)."""
    if scan(bucket, prefix):
        retention.prune(bucket, globals_prefix(prefix), GLOBALS_NAME, policy, dry_run=dry_run)
