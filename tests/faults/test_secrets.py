"""The PostgreSQL password and the S3 secret key appear in no child's argv, no log line, no error,
and nowhere in dist/ except inside the Secret a user asked for."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

from testsupport.dataset import load
from testsupport.servers import AGE_IDENTITY, AGE_RECIPIENT, MINIO_SECRET, PG_PASSWORD

pytestmark = pytest.mark.integration


class _CmdlineScanner(threading.Thread):
    """Reads /proc/*/cmdline of every process on the machine while the worker runs."""

    def __init__(self, *extra_secrets: str) -> None:
        super().__init__(daemon=True)
        self.secrets = (PG_PASSWORD, MINIO_SECRET, AGE_IDENTITY, *extra_secrets)
        self.seen = 0
        self.hits: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for p in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    data = p.read_bytes().decode(errors="replace")
                except OSError:
                    continue
                self.seen += 1
                for secret in self.secrets:
                    if secret in data and "pytest" not in data:
                        self.hits.append(data.replace("\0", " ")[:200])
            time.sleep(0.01)


@pytest.mark.parametrize("encrypted", [False, True], ids=["clear", "age"])
def test_no_secret_in_argv_or_logs_during_backup_and_restore(encrypted, case, pg, minio, bucket, make_worker):
    load(pg, "secretive")
    age = {"CNPG_BACKUP_AGE_RECIPIENTS": AGE_RECIPIENT, "CNPG_BACKUP_AGE_IDENTITY": AGE_IDENTITY} if encrypted else {}
    w = make_worker(pg, minio, bucket, "secretive", CNPG_BACKUP_FORMAT="plain", **age)
    scanner = _CmdlineScanner()
    scanner.start()
    children: set[str] = set()
    try:
        for args in (
            ["backup"],
            ["list"],
            ["restore", "--object", "latest", "--force"],
            ["backup", "--format", "custom"],
            ["restore", "--object", "latest", "--force", "--jobs", "2"],
            ["prune", "--retention-days", "1", "--dry-run"],
            ["backup", "-v", "--bucket", "nope-nope"],
        ):
            _, out, err = _watch(w, args, children)
            case.scan_for_secrets(out, err)
    finally:
        scanner.halt.set()
        scanner.join()
    assert any("pg_dump" in c for c in children) and any("psql" in c for c in children)
    case.scan_for_secrets(*children)
    listed = json.loads(w.run("list", "--json").stdout)
    assert listed and all(e["key"].endswith(".age") == encrypted for e in listed)
    assert scanner.seen > 100 and scanner.hits == []


def _watch(w, args: list[str], children: set[str]) -> tuple[int, str, str]:
    proc = w.popen(*args, CNPG_BACKUP_LOG_FORMAT="json")
    while proc.poll() is None:
        try:
            for k in psutil.Process(proc.pid).children(recursive=True):
                children.add(" ".join(k.cmdline()))
        except psutil.Error:
            pass
        time.sleep(0.01)
    out, err = proc.communicate()
    return proc.returncode, out, err


def test_no_superuser_or_role_password_in_argv_or_logs_with_globals(case, pg, minio, bucket, make_worker):
    """Roles dumped and restored as the superuser (its password is PG_PASSWORD, which the case scans
    for), the backup itself running as an application role: no password and no role's password hash
    in any argv, log line or error."""
    tag = uuid.uuid4().hex[:6]
    app_pw, role_pw, wrong_pw = f"app-Secret-{tag}", f"role-Secret-{tag}", f"wrong-Secret-{tag}"
    with pg.connect() as c:
        c.execute(f"CREATE ROLE sec_app_{tag} LOGIN PASSWORD '{app_pw}'")
        c.execute(f"CREATE ROLE sec_role_{tag} LOGIN PASSWORD '{role_pw}'")
        [(role_hash,)] = c.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (f"sec_role_{tag}",)
        ).fetchall()
        c.execute(f"CREATE DATABASE sec_{tag} OWNER sec_app_{tag}")
    su = {"CNPG_BACKUP_SUPERUSER": "postgres", "CNPG_BACKUP_SUPERUSER_PASSWORD": PG_PASSWORD}
    w = make_worker(pg, minio, bucket, f"sec_{tag}", PGUSER=f"sec_app_{tag}", PGPASSWORD=app_pw, **su)
    secrets = (app_pw, role_pw, role_hash, wrong_pw)
    scanner = _CmdlineScanner(*secrets)
    scanner.start()
    children: set[str] = set()
    codes = []
    try:
        for args in (
            ["backup", "--with-globals", "true", "--globals-role-passwords", "true"],
            ["list", "--globals"],
            ["restore-globals", "--object", "latest", "--dry-run", "--json"],
            ["-v", "backup-globals", "--globals-role-passwords", "true"],
        ):
            rc, out, err = _watch(w, args, children)
            codes.append(rc)
            case.scan_for_secrets(out, err)
            assert not [s for s in secrets if s in out or s in err], args
        wrong = make_worker(
            pg, minio, bucket, f"sec_{tag}", CNPG_BACKUP_SUPERUSER="postgres", CNPG_BACKUP_SUPERUSER_PASSWORD=wrong_pw
        )
        rc, out, err = _watch(wrong, ["-v", "backup-globals"], children)
        assert rc == 1 and "superuserSecret" in err, err
        assert not [s for s in secrets if s in out or s in err]
        case.scan_for_secrets(out, err)
    finally:
        scanner.halt.set()
        scanner.join()
    assert codes == [0, 0, 0, 0]
    assert any("pg_dumpall" in c for c in children)
    case.scan_for_secrets(*children)
    assert not [c for c in children for s in secrets if s in c]
    assert scanner.seen > 100 and scanner.hits == []


def test_dist_holds_secrets_only_inside_the_secret(tmp_path):
    from app.chart import synth
    from app.values import config_from_values

    values = {
        "cnpg": {"secretName": "appdb-app", "database": "appdb"},
        "s3": {"bucket": "my-backups-bucket", "accessKeyId": "AKIAEXAMPLE12345", "secretAccessKey": MINIO_SECRET},
    }
    warnings: list[str] = []
    synth(config_from_values(values), tmp_path, warn=warnings.append)
    assert warnings and all(MINIO_SECRET not in w for w in warnings)
    docs = [d for f in tmp_path.glob("*.yaml") for d in yaml.safe_load_all(f.read_text())]
    encoded = base64.b64encode(MINIO_SECRET.encode()).decode()
    for d in docs:
        text = json.dumps(d)
        if d["kind"] == "Secret":
            assert encoded in text
        else:
            assert MINIO_SECRET not in text and encoded not in text
    # and the committed example dist/ carries no literal credentials at all
    for f in Path("dist").glob("*.yaml"):
        assert "kind: Secret" not in f.read_text()
