"""What a backup run reports, to real receivers: metrics in a real Pushgateway, the status object
that `status` and `check` read, a heartbeat ping and a webhook post — after a success and after a
failure (which must keep the last success, not erase it)."""

from __future__ import annotations

import json
import time

import pytest

from testsupport.dataset import load
from testsupport.monitoring import Pushgateway, Receiver
from testsupport.servers import PG_PASSWORD

pytestmark = pytest.mark.integration

PING = "/ping/6f1f4c52-secret-check-uuid"
HOOK = "/services/T000/B000/hook-Secret-Token-91c2"


@pytest.fixture
def pushgateway():
    p = Pushgateway().start()
    yield p
    p.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def _one(samples: dict, **labels: str) -> float:
    found = [v for k, v in samples.items() if set(labels.items()) <= set(k)]
    assert len(found) == 1, (labels, samples)
    return found[0]


def test_success_then_failure_reported_everywhere(pg, minio, bucket, make_worker, pushgateway, receiver):
    load(pg, "monshop")
    w = make_worker(
        pg,
        minio,
        bucket,
        "monshop",
        prefix="mon/shop",
        CNPG_BACKUP_PUSHGATEWAY_URL=pushgateway.url,
        CNPG_BACKUP_HEARTBEAT_URL=receiver.url + PING,
        CNPG_BACKUP_WEBHOOK_URL=receiver.url + HOOK,
        CNPG_BACKUP_NOTIFY_SUCCESS="true",
    )
    t0 = time.time()
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    labels = {"job": "cnpg_pgdump_backup", "bucket": bucket, "prefix": "mon/shop", "database": "monshop"}
    assert _one(pushgateway.samples("cnpg_pgdump_backup_last_run_success"), **labels) == 1
    success_at = _one(pushgateway.samples("cnpg_pgdump_backup_last_success_timestamp_seconds"), **labels)
    assert t0 - 1 <= success_at <= time.time() + 1
    assert _one(pushgateway.samples("cnpg_pgdump_backup_last_raw_bytes"), **labels) > 100_000
    assert _one(pushgateway.samples("cnpg_pgdump_backup_last_tables"), **labels) >= 3
    assert _one(pushgateway.samples("cnpg_pgdump_backup_last_flagged"), **labels) == 0
    [ping, hook] = receiver.hits
    assert (ping.method, ping.path) == ("GET", PING)
    assert hook.method == "POST" and "succeeded" in hook.json()["text"] and hook.json()["key"].endswith(".sql.gz")
    # the URLs carry secrets: only their host is logged
    assert "secret-check-uuid" not in r.stderr and "hook-Secret-Token" not in r.stderr

    ok = w.run("check", "--max-age", "1h")
    assert ok.returncode == 0 and ok.stdout.startswith("OK monshop"), ok.stdout + ok.stderr

    # the password changed under the CronJob's feet: the run fails
    receiver.hits.clear()
    r = w.run("backup", PGPASSWORD="wrong-" + PG_PASSWORD)
    assert r.returncode != 0
    assert _one(pushgateway.samples("cnpg_pgdump_backup_last_run_success"), **labels) == 0
    # the newest good backup is still known (a Pushgateway PUT replaces the whole group)
    assert _one(pushgateway.samples("cnpg_pgdump_backup_last_success_timestamp_seconds"), **labels) == success_at
    [ping, hook] = receiver.hits
    assert ping.path == PING + "/fail"
    text = hook.json()["text"]
    assert "FAILED" in text and "password authentication failed" in text
    assert PG_PASSWORD not in hook.body.decode()

    status = w.run("status", "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["last_run"]["outcome"] == "failure" and doc["last_success"]["outcome"] == "success"
    human = w.run("status").stdout
    assert "last run failure" in human and "newest good backup" in human

    bad = w.run("check", "--max-age", "1h")
    assert bad.returncode == 1 and "the last backup run failed" in bad.stdout, bad.stdout
    time.sleep(2.2)
    old = w.run("check", "--max-age", "2s")
    assert old.returncode == 1 and "old (max 2s)" in old.stdout, old.stdout


def test_unreachable_pushgateway_does_not_fail_the_backup(pg, minio, bucket, make_worker):
    load(pg, "monshop2")
    w = make_worker(pg, minio, bucket, "monshop2", CNPG_BACKUP_PUSHGATEWAY_URL="http://127.0.0.1:9")
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    assert "could not push metrics to the Pushgateway" in r.stderr
    assert w.run("check", "--max-age", "1h").returncode == 0


def test_check_without_backups_and_bad_duration(pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "nothing_here")
    r = w.run("check", "--max-age", "26h")
    assert r.returncode == 1 and r.stdout.startswith("CRITICAL nothing_here") and "no complete backup" in r.stdout
    r = w.run("check", "--max-age", "soon")
    assert r.returncode == 2 and len(r.error_lines) == 1 and "not a duration" in r.stderr
