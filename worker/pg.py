"""PostgreSQL side: readiness, server facts, and choosing client tools of the right major.

Connection settings come from libpq's own environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE, PGSSLMODE, PGSSLROOTCERT), which is what the manifests set and what pg_dump/psql read,
so the password never needs to appear on a command line.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from . import log
from .errors import WorkerError

_FATAL_HINTS = {
    "password authentication failed": "check the password in the CNPG Secret (key `password`)",
    "no pg_hba.conf entry": "the server refuses this client: check pg_hba / the CNPG cluster's access rules",
    "does not exist": "check cnpg.database and that the CNPG cluster finished bootstrapping",
    "certificate": "check cnpg.sslMode and the CA in cnpg.sslRootCertSecret (it must have signed the server's "
    "certificate, whose name must match the host for verify-full)",
    "SSL": "check cnpg.sslMode and the CA Secret",
}


def target(dbname: str | None = None) -> str:
    host = os.environ.get("PGHOST", "localhost")
    port = os.environ.get("PGPORT", "5432")
    user = os.environ.get("PGUSER", "")
    db = dbname or os.environ.get("PGDATABASE", "")
    return f"{user + '@' if user else ''}{host}:{port}/{db}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # libpq repeats the "connection to server ... failed:" preamble per address; the cause is last.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else exc.__class__.__name__


def connection_error(exc: BaseException, dbname: str | None = None) -> WorkerError:
    detail = _first_line(exc)
    hint = next(
        (h for k, h in _FATAL_HINTS.items() if k in detail),
        "check PGHOST/PGPORT (the CNPG Secret) and that the cluster is up",
    )
    return WorkerError(f"cannot connect to PostgreSQL {target(dbname)}: {detail}", hint=hint)


def connect(
    dbname: str | None = None, *, timeout: int = 10, autocommit: bool = True, lock_timeout: float = 0
) -> psycopg.Connection:
    """`lock_timeout` (seconds, 0: none): a statement behind an application's lock fails instead of
    hanging the worker (fingerprinting or emptying a database an application holds)."""
    kwargs: dict[str, Any] = {
        "connect_timeout": timeout,
        "autocommit": autocommit,
        "application_name": "cnpg-pgdump-backup",
    }
    if lock_timeout > 0:
        kwargs["options"] = f"-c lock_timeout={int(lock_timeout * 1000)}"
    if dbname:
        kwargs["dbname"] = dbname
    try:
        return psycopg.connect(**kwargs)
    except psycopg.Error as exc:
        raise connection_error(exc, dbname) from None


def _permanent(detail: str) -> bool:
    # Waiting does not fix a wrong password or a refused client; say so now instead of in 150 s.
    # A missing database is permanent too: CNPG creates it before the server accepts connections.
    # A certificate that does not verify (wrong CA, wrong host name) stays wrong however long we wait.
    return any(
        k in detail
        for k in (
            "password authentication failed",
            "no pg_hba.conf entry",
            "does not exist",
            "certificate verify failed",
            "does not match host name",
            "root certificate file",
        )
    )


def wait_ready(timeout: float, dbname: str | None = None, interval: float = 2.0) -> float:
    """Block until the server accepts a real query (not just TCP); return seconds waited."""
    start = time.monotonic()
    last = ""
    attempt = 0
    while True:
        attempt += 1
        try:
            with connect(dbname, timeout=5) as conn:
                conn.execute("SELECT 1")
            waited = time.monotonic() - start
            log.info("postgres ready", target=target(dbname), waited=log.seconds(waited), attempts=attempt)
            return waited
        except WorkerError as exc:
            last = exc.message.split(": ", 1)[-1]
            if _permanent(last):
                raise
        elapsed = time.monotonic() - start
        if elapsed >= timeout:
            raise WorkerError(
                f"PostgreSQL {target(dbname)} not ready after {timeout:.0f}s: {last}",
                hint="check `kubectl get cluster` and the CNPG Secret's host/port",
            )
        if attempt == 1 or attempt % 5 == 0:
            log.info("waiting for postgres", target=target(dbname), error=last)
        time.sleep(min(interval, max(0.1, timeout - elapsed)))


@dataclass(frozen=True)
class ServerInfo:
    version: str  # e.g. "16.4"
    major: int
    database: str


def server_info(conn: psycopg.Connection) -> ServerInfo:
    row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None  # SHOW and this SELECT always return one row
    num = int(row[0])
    row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    version = row[0].split()[0]
    row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    db = row[0]
    return ServerInfo(version, num // 10000, db)


TABLE_COUNT_SQL = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%%'
"""


def table_count(conn: psycopg.Connection) -> int:
    row = conn.execute(TABLE_COUNT_SQL).fetchone()
    assert row is not None  # an aggregate SELECT always returns one row
    return int(row[0])


# ---------------------------------------------------------------------------------------------
# Client tools of the right major


@dataclass(frozen=True)
class Client:
    major: int
    version: str
    bindir: Path

    def tool(self, name: str) -> str:
        return str(self.bindir / name)

    def writes_archive_codec(self, codec: str) -> bool:
        """Whether this pg_dump can write custom archives compressed with `codec`: zstd and lz4 need
        pg_dump 16+ *built with* them (some builds, e.g. embedded ones, lack both)."""
        return codec == "gzip" or (self.major >= 16 and _probe_codec(self.tool("pg_dump"), codec))


@functools.lru_cache(maxsize=16)
def _probe_codec(pg_dump: str, codec: str) -> bool:
    # pg_dump checks --compress while parsing its options, before it connects; the connection is
    # then meant to fail at once (a socket directory that does not exist), so nothing is dumped.
    env = {"PATH": os.environ.get("PATH", ""), "PGCONNECT_TIMEOUT": "1"}
    try:
        p = subprocess.run(
            [
                pg_dump,
                "--format=custom",
                f"--compress={codec}:1",
                "--file=/dev/null",
                "--no-password",
                "--dbname=host=/nonexistent-cnpg-probe dbname=probe user=probe",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "not support" not in p.stderr and "invalid compression" not in p.stderr


_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


def _candidate_dirs() -> list[Path]:
    dirs: list[str] = []
    extra = os.environ.get("CNPG_BACKUP_PG_BIN_DIRS", "")
    dirs += [d for d in extra.split(os.pathsep) if d]
    dirs += sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    dirs += ["/usr/local/pgsql/bin"]
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(str(Path(on_path).resolve().parent))
    seen, out = set(), []
    for d in dirs:
        p = Path(d)
        if p.is_dir() and (p / "pg_dump").exists() and p.resolve() not in seen:
            seen.add(p.resolve())
            out.append(p)
    return out


def installed_clients() -> list[Client]:
    clients: dict[int, Client] = {}
    for d in _candidate_dirs():
        try:
            out = subprocess.run([str(d / "pg_dump"), "--version"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        m = _VERSION_RE.search(out)
        if m:
            major = int(m.group(1))
            clients.setdefault(major, Client(major, f"{m.group(1)}.{m.group(2) or 0}", d))
    return sorted(clients.values(), key=lambda c: c.major)


def choose_client(at_least: int, purpose: str, clients: list[Client] | None = None) -> Client:
    """The client whose major equals `at_least`, else the smallest newer one.

    pg_dump refuses servers newer than itself, and psql older than the pg_dump that wrote a plain
    dump cannot read it (17.6+/18 dumps carry `\\restrict` meta-commands), so older is never chosen.
    """
    clients = installed_clients() if clients is None else clients
    if not clients:
        raise WorkerError(
            "no PostgreSQL client tools (pg_dump/psql) found",
            hint="install them, or list their bin directories in CNPG_BACKUP_PG_BIN_DIRS",
        )
    fit = [c for c in clients if c.major >= at_least]
    if not fit:
        have = ", ".join(str(c.major) for c in clients)
        raise WorkerError(
            f"no PostgreSQL client >= {at_least} for {purpose} (installed majors: {have})",
            hint=f"use a worker image with PostgreSQL {at_least} client tools or newer",
        )
    return fit[0]


def client_env() -> dict[str, str]:
    """The environment for pg_dump/psql children: libpq settings pass through, nothing else is added."""
    env = dict(os.environ)
    env.setdefault("PGAPPNAME", "cnpg-pgdump-backup")
    # Where HOME is read-only, libpq must not try to read ~/.pgpass or ~/.psqlrc from it.
    env.setdefault("PGPASSFILE", "/tmp/.pgpass-unused")
    return env
