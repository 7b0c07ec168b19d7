"""Backup and restore round trips on every PostgreSQL major the project supports (13–18)."""

from __future__ import annotations

import json

import pytest

from testsupport.dataset import fingerprint, load

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("major", [13, 14, 15, 16, 17, 18])
def test_round_trip_every_major(major, pg_pool, minio, bucket, make_worker):
    server = pg_pool.get(major)
    load(server, "shop")
    with server.connect("shop") as c:
        before = fingerprint(c)
    w = make_worker(server, minio, bucket, "shop", prefix="prod/shop")

    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    listed = json.loads(w.run("list", "--json").stdout)
    assert len(listed) == 1 and listed[0]["status"] == "complete"
    key = listed[0]["key"]
    assert key.startswith("prod/shop/shop_") and key.endswith(".sql.gz")

    server.create_database("shop_restored")
    r = w.run("restore", "--object", "latest", "--target-database", "shop_restored")
    assert r.returncode == 0, r.stderr
    assert "restore complete" in r.stderr and "tables=3" in r.stderr
    with server.connect("shop_restored") as c:
        after = fingerprint(c)
    assert after == before
