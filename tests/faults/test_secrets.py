"""The PostgreSQL password and the S3 secret key appear in no child's argv, no log line, no error,
and nowhere in dist/ except inside the Secret a user asked for."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from testsupport.dataset import load
from testsupport.servers import AGE_IDENTITY, AGE_RECIPIENT, MINIO_SECRET, PG_PASSWORD

pytestmark = pytest.mark.integration


class _CmdlineScanner(threading.Thread):
    """Reads /proc/*/cmdline of every process on the machine while the worker runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
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
                for secret in (PG_PASSWORD, MINIO_SECRET, AGE_IDENTITY):
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
            proc = w.popen(*args, CNPG_BACKUP_LOG_FORMAT="json")
            while proc.poll() is None:
                try:
                    for k in psutil.Process(proc.pid).children(recursive=True):
                        children.add(" ".join(k.cmdline()))
                except psutil.Error:
                    pass
                time.sleep(0.01)
            out, err = proc.communicate()
            case.scan_for_secrets(out, err)
    finally:
        scanner.halt.set()
        scanner.join()
    assert any("pg_dump" in c for c in children) and any("psql" in c for c in children)
    case.scan_for_secrets(*children)
    listed = json.loads(w.run("list", "--json").stdout)
    assert listed and all(e["key"].endswith(".age") == encrypted for e in listed)
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
