"""Session-wide real servers. One MinIO per session; one PostgreSQL server per major, on demand."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field

import pytest

from testsupport.servers import ROOT, MinioServer, PostgresServer, client_bin_dirs


@pytest.fixture(scope="session")
def minio():
    server = MinioServer().start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def tls_minio():
    """A MinIO that speaks HTTPS only, its certificate signed by a test CA (`tls_minio.tls.ca_cert`):
    an in-cluster S3 behind a private CA (`s3.caSecret`)."""
    from testsupport.tls import make_server_tls

    tls = make_server_tls()
    server = MinioServer(tls=tls).start()
    yield server
    server.destroy()
    tls.destroy()


class _PgPool:
    def __init__(self) -> None:
        self.servers: dict[int, PostgresServer] = {}

    def get(self, major: int) -> PostgresServer:
        if major not in self.servers:
            self.servers[major] = PostgresServer(major).start()
        return self.servers[major]

    def close(self) -> None:
        for s in self.servers.values():
            s.destroy()


@pytest.fixture(scope="session")
def pg_pool():
    pool = _PgPool()
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def pg(pg_pool) -> PostgresServer:
    """The default server for tests that do not care about the major: 17."""
    return pg_pool.get(17)


@pytest.fixture
def bucket(minio) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    minio.client().create_bucket(Bucket=name)
    return name


@dataclass
class WorkerRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if " ERROR " in line or '"level": "error"' in line]


@dataclass
class Worker:
    """Runs the real `cnpg-backup-worker` as a separate process, configured the way the pods are."""

    env: dict[str, str] = field(default_factory=dict)

    def full_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "CNPG_BACKUP_"))}
        env["CNPG_BACKUP_PG_BIN_DIRS"] = os.pathsep.join(client_bin_dirs())
        env.update(self.env)
        env.update(extra)
        return env

    def popen(self, *args: str, **extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "worker", *args],
            cwd=ROOT,
            env=self.full_env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, timeout: float = 600, **extra: str) -> WorkerRun:
        p = subprocess.run(
            [sys.executable, "-m", "worker", *args],
            cwd=ROOT,
            env=self.full_env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return WorkerRun(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def make_worker():
    def make(
        pg_server: PostgresServer,
        minio_server: MinioServer,
        bucket: str,
        database: str,
        prefix: str = "backups",
        **extra: str,
    ) -> Worker:
        env = {**pg_server.env(database), **minio_server.env(bucket, prefix), **extra}
        return Worker(env)

    return make
