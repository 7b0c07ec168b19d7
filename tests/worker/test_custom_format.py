"""The optional custom format: `pg_dump -Fc`, restored with parallel pg_restore when the target is empty."""

from __future__ import annotations

import json

import pytest

from testsupport.dataset import fingerprint, load

pytestmark = pytest.mark.integration


def test_custom_format_parallel_and_forced(pg, minio, bucket, make_worker):
    load(pg, "shopc")
    w = make_worker(pg, minio, bucket, "shopc", CNPG_BACKUP_FORMAT="custom")
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(w.run("list", "--json").stdout)
    assert entry["key"].endswith(".dump") and entry["status"] == "complete"

    pg.create_database("c_empty")
    r = w.run("restore", "--object", "latest", "--target-database", "c_empty", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    pg.create_database("c_busy")
    with pg.connect("c_busy") as c:
        c.execute("CREATE TABLE old_stuff (x int)")
    r = w.run("restore", "--object", "latest", "--target-database", "c_busy", "--jobs", "2", "--force")
    assert r.returncode == 0, r.stderr
    with pg.connect("shopc") as a, pg.connect("c_empty") as b, pg.connect("c_busy") as c:
        assert fingerprint(a) == fingerprint(b) == fingerprint(c)
        assert c.execute("SELECT to_regclass('public.old_stuff')").fetchone()[0] is None
