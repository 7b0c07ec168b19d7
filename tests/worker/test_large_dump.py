"""Big dumps through multipart upload (bounded memory, many parts), and a bad database name that leaves nothing.

Failures mid-upload (SIGTERM, SIGKILL, S3 or PostgreSQL going away) are in tests/faults/test_backup_faults.py."""

from __future__ import annotations

import json
import time

import pytest

from testsupport.helpers import keys, load_bulk, open_uploads
from testsupport.sampling import TreeSampler
from testsupport.servers import PG_PASSWORD

pytestmark = pytest.mark.integration

MB = 1024 * 1024


@pytest.fixture(scope="module")
def bulk_db(pg):
    load_bulk(pg, "bulk", 240)
    return "bulk"


def test_large_dump_multipart_round_trip(pg, minio, bucket, make_worker, bulk_db, record_property):
    w = make_worker(pg, minio, bucket, bulk_db)
    t0 = time.monotonic()
    proc = w.popen("backup")
    sampler = TreeSampler(proc.pid)
    sampler.start()
    _, err = proc.communicate(timeout=900)
    sampler.stop()
    took = time.monotonic() - t0
    assert proc.returncode == 0, err
    [entry] = json.loads(w.run("list", "--json").stdout)
    manifest = json.loads(minio.client().get_object(Bucket=bucket, Key=entry["key"] + ".manifest.json")["Body"].read())
    assert manifest["raw_bytes"] >= 200_000_000
    # more than one part: the multipart path was really exercised (parts are >= 8 MiB)
    head = minio.client().head_object(Bucket=bucket, Key=entry["key"])
    assert "-" in head["ETag"] and int(head["ETag"].strip('"').split("-")[1]) >= 2
    # the password never reached a child's argv (pg_dump gets it from the environment)
    assert sampler.cmdlines and not any(PG_PASSWORD in c for c in sampler.cmdlines)
    record_property("large_dump_raw_mb", manifest["raw_bytes"] / MB)
    record_property("large_dump_seconds", round(took, 1))
    record_property("worker_peak_rss_mb", sampler.peak_root / MB)
    print(
        f"\nlarge dump: {manifest['raw_bytes'] / MB:.0f} MB raw -> {manifest['object_bytes'] / MB:.0f} MB stored "
        f"in {took:.1f}s; worker peak RSS {sampler.peak_root / MB:.0f} MB, children {sampler.peak_children / MB:.0f} MB"
    )

    pg.create_database("bulk_restored")
    r = w.run("restore", "--object", entry["key"], "--target-database", "bulk_restored")
    assert r.returncode == 0, r.stderr
    with pg.connect("bulk") as a, pg.connect("bulk_restored") as b:
        q = "SELECT count(*), sum(hashtext(blob)::bigint), max(id) FROM bulk"
        assert a.execute(q).fetchone() == b.execute(q).fetchone()


def test_bad_database_name_leaves_nothing(pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "no_such_db")
    r = w.run("backup", "--wait-timeout", "3")
    assert r.returncode == 1
    assert len(r.error_lines) == 1 and "no_such_db" in r.error_lines[0]
    # nothing that looks like a backup: only the run's status object, which records the failure
    assert keys(minio, bucket) == ["backups/.cnpg-backup/status/no_such_db.json"] and open_uploads(minio, bucket) == []
