"""Suspicious backups: the backup of an emptied (or rebuilt) database is stored but flagged, and
`restore --object latest` passes over it — the disaster path where last night's backup of the new,
empty cluster would otherwise be the one restored, with exit 0."""

from __future__ import annotations

import json

import pytest

from testsupport.dataset import fingerprint, load

pytestmark = pytest.mark.integration


def _listing(w) -> list[dict]:
    r = w.run("list", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_empty_database_backup_is_flagged_and_latest_skips_it(pg, minio, bucket, make_worker):
    load(pg, "shopflag")
    with pg.connect("shopflag") as c:
        original = fingerprint(c)
    w = make_worker(pg, minio, bucket, "shopflag")
    assert w.run("backup").returncode == 0
    # the cluster is rebuilt: same database name, nothing in it; the CronJob runs anyway
    pg.create_database("shopflag")
    r = w.run("backup")
    assert r.returncode == 0, r.stderr  # stored: it is a faithful dump of what is there
    assert "backup flagged: no user tables" in r.stderr and "shrank" in r.stderr
    newest, good = _listing(w)
    assert newest["status"].startswith("complete, flagged: no user tables")
    assert any(f.startswith(("shrank 99", "shrank 100")) for f in newest["flags"]), newest["flags"]
    assert good["status"] == "complete" and good["flags"] == []
    manifest = json.loads(minio.client().get_object(Bucket=bucket, Key=newest["key"] + ".manifest.json")["Body"].read())
    assert manifest["status"] == "complete" and manifest["extra"]["user_tables"] == 0

    pg.create_database("restored")
    r = w.run("restore", "--object", "latest", "--target-database", "restored")
    assert r.returncode == 0, r.stderr
    assert f"passing over flagged backup {newest['key']}" in r.stderr
    with pg.connect("restored") as c:
        assert fingerprint(c) == original  # the good backup, not the empty one

    pg.create_database("restored_flagged")
    r = w.run("restore", "--object", "latest", "--target-database", "restored_flagged", "--allow-flagged")
    assert r.returncode == 0, r.stderr
    assert "restoring a flagged backup" in r.stderr
    with pg.connect("restored_flagged") as c:
        assert c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0


def test_only_flagged_backups_refuse_latest_with_one_line(pg, minio, bucket, make_worker):
    pg.create_database("emptyflag")
    w = make_worker(pg, minio, bucket, "emptyflag")
    assert w.run("backup").returncode == 0
    r = w.run("restore", "--object", "latest", "--target-database", "emptyflag", "--force")
    assert r.returncode == 1 and len(r.error_lines) == 1, r.stderr
    assert "no unflagged complete backup" in r.stderr and "--allow-flagged" in r.stderr


def test_shrink_threshold(pg, minio, bucket, make_worker):
    pg.create_database("shrinkdb")
    with pg.connect("shrinkdb") as c:
        c.execute("CREATE TABLE events AS SELECT g AS id, repeat('x', 200) AS body FROM generate_series(1, 5000) g")
    w = make_worker(pg, minio, bucket, "shrinkdb", CNPG_BACKUP_FLAG_SHRINK_PERCENT="30")
    assert w.run("backup").returncode == 0
    with pg.connect("shrinkdb") as c:  # 60% of the rows lost: past 30%
        c.execute("DELETE FROM events WHERE id % 5 IN (0, 1, 2)")
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    newest = _listing(w)[0]
    assert len(newest["flags"]) == 1 and newest["flags"][0].startswith("shrank 6"), newest
    # the next backup compares with that flagged one, not the older unflagged one: after a deliberate
    # purge only the first smaller backup is flagged, or `latest` would stay the pre-purge data for ever
    assert w.run("backup").returncode == 0
    assert _listing(w)[0]["flags"] == []
    with pg.connect("shrinkdb") as c:
        c.execute("DELETE FROM events WHERE id % 5 = 3")  # half of what is left
    # 0 turns the shrink check off (the no-tables check stays)
    w0 = make_worker(pg, minio, bucket, "shrinkdb", CNPG_BACKUP_FLAG_SHRINK_PERCENT="0")
    assert w0.run("backup").returncode == 0
    assert _listing(w0)[0]["flags"] == []
