"""`status --all` on a real MinIO: every database of a fleet found under a prefix in one command,
however many pages the listing takes (S3 returns at most 1,000 keys per page)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from testsupport.dataset import load
from worker import metrics
from worker.metrics import RunRecord
from worker.s3 import Bucket
from worker.s3_client import S3Location

pytestmark = pytest.mark.integration

FILLERS = 1_100  # sorted before the status objects: they are on the listing's second page
CLUSTERS, PER_CLUSTER = 12, 10


def _run(outcome: str, db: str, hours_ago: int) -> RunRecord:
    at = f"2026-01-0{1 + hours_ago // 24}T{hours_ago % 24:02d}:30:00+00:00"
    if outcome == "failure":
        return RunRecord("failure", at, at, 3.0, error=f"connection to {db}-rw refused")
    key = f"{db}_2026-01-01_02-00-00.sql.gz"
    return RunRecord("success", at, at, 42.0, key=key, raw_bytes=5_000_000, stored_bytes=1_234_567, tables=7)


@pytest.fixture
def fleet_bucket(minio, bucket, monkeypatch) -> Bucket:
    """A bucket holding 120 databases' status objects under fleet/, behind 1,100 other objects,
    written by the worker's own code (metrics.record_run), plus decoys outside the prefix."""
    for name, value in minio.env(bucket).items():
        monkeypatch.setenv(name, value)
    store = Bucket(S3Location(bucket, minio.endpoint, "us-east-1"))
    client = minio.client()

    def put_filler(i: int) -> None:
        client.put_object(Bucket=bucket, Key=f"fleet/a-archive/old_{i:05d}.sql.gz", Body=b"x")

    def record(c: int, d: int) -> None:
        db = f"db{d}"
        prefix = f"fleet/cluster{c:02d}/{db}"
        metrics.record_run(store, prefix, db, _run("success", db, 1), None)
        if (c, d) in ((3, 4), (7, 0)):  # the last run failed; the last success stays known
            metrics.record_run(store, prefix, db, _run("failure", db, 0), None)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put_filler, range(FILLERS)))
        list(pool.map(lambda cd: record(*cd), [(c, d) for c in range(CLUSTERS) for d in range(PER_CLUSTER)]))
    metrics.record_run(store, "fleetwood/x", "decoy", _run("success", "decoy", 1), None)
    metrics.record_run(store, "other", "decoy", _run("success", "decoy", 1), None)
    return store


def test_status_all_finds_every_database_across_pages(pg, minio, bucket, fleet_bucket, make_worker):
    # one database backed up for real, so a genuine status object is among the synthetic ones
    load(pg, "monshop")
    real = make_worker(pg, minio, bucket, "monshop", prefix="fleet/zz-real")
    r = real.run("backup")
    assert r.returncode == 0, r.stderr
    keys = [o.key for o in fleet_bucket.list_objects("fleet/")]
    assert len(keys) > FILLERS + CLUSTERS * PER_CLUSTER  # more than one page

    w = make_worker(pg, minio, bucket, "", prefix="fleet")
    out = w.run("status", "--all", "--json")
    assert out.returncode == 0, out.stderr
    docs = json.loads(out.stdout)
    found = [(d["prefix"], d["database"]) for d in docs]
    expected = [(f"fleet/cluster{c:02d}/db{d}", f"db{d}") for c in range(CLUSTERS) for d in range(PER_CLUSTER)]
    assert found == sorted([*expected, ("fleet/zz-real", "monshop")])
    by_db = {(d["prefix"], d["database"]): d for d in docs}
    failed = by_db[("fleet/cluster03/db4", "db4")]
    assert failed["last_run"]["outcome"] == "failure"
    assert failed["last_success"]["key"] == "db4_2026-01-01_02-00-00.sql.gz"
    assert failed["last_success"]["stored_bytes"] == 1_234_567
    genuine = by_db[("fleet/zz-real", "monshop")]
    assert genuine["last_run"]["outcome"] == "success" and genuine["last_success"]["key"].startswith("fleet/zz-real/")
    assert genuine["last_success"]["age_s"] < 600

    human = w.run("status", "--all")
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0].split() == ["prefix", "database", "newest", "good", "backup", "age", "size", "last", "run"]
    assert len(lines) == 1 + len(expected) + 1
    [failed_line] = [line for line in lines if line.startswith("fleet/cluster03/db4 ")]
    assert "db4_2026-01-01_02-00-00.sql.gz" in failed_line and "1.2MiB" in failed_line
    assert "FAILED" in failed_line and "connection to db4-rw refused" in failed_line
    assert sum("FAILED" in line for line in lines) == 2
    assert not any("decoy" in line for line in lines)  # fleetwood/ and other/ are not under fleet/


def test_status_all_under_a_narrower_prefix_and_the_whole_bucket(pg, minio, bucket, fleet_bucket, make_worker):
    one_cluster = make_worker(pg, minio, bucket, "", prefix="fleet/cluster05").run("status", "--all", "--json")
    assert [d["database"] for d in json.loads(one_cluster.stdout)] == [f"db{d}" for d in range(PER_CLUSTER)]
    whole = make_worker(pg, minio, bucket, "", prefix="").run("status", "--all", "--json")
    prefixes = {d["prefix"] for d in json.loads(whole.stdout)}
    assert {"fleetwood/x", "other"} <= prefixes and len(prefixes) == CLUSTERS * PER_CLUSTER + 2


def test_status_all_with_nothing_found_says_where_it_looked(minio, bucket, make_worker, pg):
    r = make_worker(pg, minio, bucket, "", prefix="nothing/here").run("status", "--all")
    assert r.returncode == 0 and r.stdout == ""
    assert f"no status objects under s3://{bucket}/nothing/here" in r.stderr
