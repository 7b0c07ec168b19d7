"""Restores that one transaction cannot hold, lock waits, and the pre-restore backup's format.

The server runs CloudNativePG's lock defaults (max_locks_per_transaction=64, max_connections=100):
a database of ~10,800 relations (multi-tenant schemas, a partitioned table) does not fit one
transaction there, which is what made such restores fail late with `out of shared memory`.
"""

from __future__ import annotations

import json
import re

import pytest

from testsupport.dataset import load
from testsupport.safety_data import PRECIOUS_SQL, arm_fault, disarm_fault, full_fingerprint

pytestmark = pytest.mark.integration

SCHEMAS, TABLES, PARTITIONS = 4, 1250, 400


def _relations(conn) -> list:
    return conn.execute(
        """SELECT c.oid::bigint, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
           ORDER BY 1"""
    ).fetchall()


@pytest.fixture(scope="module")
def many(pg_pool, minio):
    server = pg_pool.get(18)
    server.create_database("many")
    with server.connect("many") as c:
        for s in range(SCHEMAS):
            with c.transaction():
                c.execute(f"CREATE SCHEMA tenant_{s}")
                for t in range(TABLES):
                    c.execute(f"CREATE TABLE tenant_{s}.t{t} (id int PRIMARY KEY, v text)")
        with c.transaction():
            c.execute("CREATE TABLE public.events (id int, at int NOT NULL, v text) PARTITION BY RANGE (at)")
            for p in range(PARTITIONS):
                c.execute(
                    f"CREATE TABLE public.events_{p} PARTITION OF public.events FOR VALUES FROM ({p}) TO ({p + 1})"
                )
        c.execute("INSERT INTO public.events SELECT g, g % 400, 'e' || g FROM generate_series(1, 4000) g")
        c.execute("CREATE INDEX events_v ON public.events (v)")
        relations = len(_relations(c))
        settings = c.execute(
            "SELECT current_setting('max_locks_per_transaction'), current_setting('max_connections')"
        ).fetchone()
    assert relations > 10_000 and settings == ("64", "100")
    bucket = "many-relations"
    minio.client().create_bucket(Bucket=bucket)
    return server, bucket, relations


def test_many_relations_restore_into_an_empty_database(many, minio, make_worker):
    server, bucket, relations = many
    w = make_worker(server, minio, bucket, "many")
    assert w.run("backup").returncode == 0
    server.create_database("many_copy")
    r = w.run("restore", "--object", "latest", "--target-database", "many_copy")
    assert r.returncode == 0, r.stderr
    assert "path=autocommit" in r.stderr
    with server.connect("many_copy") as c:
        assert len(_relations(c)) == relations  # and the in-progress marker is gone
        assert c.execute("SELECT count(*), count(DISTINCT tableoid) FROM public.events").fetchone() == (
            4000,
            PARTITIONS,
        )


def test_many_relations_failed_restore_into_an_empty_database_is_emptied_and_retry_works(many, minio, make_worker):
    server, bucket, relations = many
    w = make_worker(server, minio, bucket, "many")
    if not json.loads(w.run("list", "--json").stdout):
        assert w.run("backup").returncode == 0
    server.create_database("many_fail")
    arm_fault(server, "many_fail", "after_large_objects")  # CREATE INDEX, after every table was created
    r = w.run("restore", "--object", "latest", "--target-database", "many_fail")
    assert r.returncode == 1
    [line] = r.error_lines
    assert "injected fault" in line and "emptied again; the database is unchanged (verified: 0 user objects" in line
    with server.connect("many_fail") as c:
        assert _relations(c) == []
    disarm_fault(server, "many_fail")
    r = w.run("restore", "--object", "latest", "--target-database", "many_fail")  # no --force needed
    assert r.returncode == 0, r.stderr
    with server.connect("many_fail") as c:
        assert len(_relations(c)) == relations


def test_many_relations_forced_restore_is_refused_before_it_starts(many, minio, make_worker):
    server, bucket, _ = many
    w = make_worker(server, minio, bucket, "many")
    if not json.loads(w.run("list", "--json").stdout):
        assert w.run("backup").returncode == 0
    with server.connect("many") as c:
        before = _relations(c)
    r = w.run("restore", "--object", "latest", "--force")
    assert r.returncode == 1
    [line] = r.error_lines
    assert "refused before it started" in line and "max_locks_per_transaction=64" in line
    assert "spec.postgresql.parameters" in line
    needed = int(re.search(r"max_locks_per_transaction to at least (\d+)", line).group(1))
    assert needed > 64
    assert "restore starting" not in r.stderr
    with server.connect("many") as c:
        assert _relations(c) == before


def test_lock_wait_is_reported_and_bounded(pg, minio, bucket, make_worker):
    load(pg, "shop")
    w = make_worker(pg, minio, bucket, "shop")
    assert w.run("backup").returncode == 0
    pg.create_database("busy")
    with pg.connect("busy") as c:
        c.execute(PRECIOUS_SQL)
    app = pg.connect("busy")
    app.execute("SET application_name = 'the-app'")
    app.autocommit = False
    # idle in transaction, holding a lock; its last query carries a secret the report must not repeat
    app.execute("SELECT 'app-secret-4711', count(*) FROM public.precious")
    try:
        with pg.connect("busy") as c:
            before = full_fingerprint(c)
        r = w.run(
            "restore",
            "--object",
            "latest",
            "--target-database",
            "busy",
            "--force",
            "--lock-timeout",
            "4",
            "--progress-interval",
            "1",
        )
        assert r.returncode == 1
        waits = [ln for ln in r.stderr.splitlines() if "restore waiting for a lock" in ln]
        assert waits and "the-app" in waits[0] and "idle in transaction" in waits[0], r.stderr
        assert "app-secret-4711" not in r.stderr
        [line] = r.error_lines
        assert "lock timeout" in line and "rolled back; the database is unchanged (verified" in line
    finally:
        app.rollback()
        app.close()
    with pg.connect("busy") as c:
        assert full_fingerprint(c) == before


def test_backup_before_restore_uses_the_configured_format(pg, minio, bucket, make_worker):
    load(pg, "shop")
    w = make_worker(pg, minio, bucket, "shop", CNPG_BACKUP_FORMAT="custom", CNPG_BACKUP_COMPRESSION_LEVEL="5")
    assert w.run("backup").returncode == 0
    pg.create_database("prior")
    with pg.connect("prior") as c:
        c.execute(PRECIOUS_SQL)
    r = w.run("restore", "--object", "latest", "--target-database", "prior", "--force", "--backup-before-restore")
    assert r.returncode == 0, r.stderr
    [pre] = json.loads(w.run("list", "--json", "--database", "prior").stdout)
    assert pre["format"] == "custom" and pre["key"].endswith(".dump") and pre["status"] == "complete"
