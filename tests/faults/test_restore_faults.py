"""Faults during restore: /tmp full while staging, the database killed mid-restore."""

from __future__ import annotations

import subprocess
import tempfile

import pytest

from worker.dataset import fingerprint, load
from worker.helpers import wait_for

pytestmark = pytest.mark.integration


def _objects(conn):
    return conn.execute(
        """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
           ORDER BY 1, 2""").fetchall()


@pytest.fixture
def small_tmp():
    d = tempfile.mkdtemp(prefix="cnpg-small-tmp-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", d], check=True)
    yield d
    subprocess.run(["umount", d], check=False)


def test_tmp_full_while_staging_a_custom_restore(case, pg, minio, bucket, make_worker, small_tmp):
    load(pg, "staged")
    with pg.connect("staged") as c:
        c.execute("CREATE TABLE filler AS SELECT g, md5(g::text) || md5((g*7)::text) AS h FROM generate_series(1, 40000) g")
    w = make_worker(pg, minio, bucket, "staged", CNPG_BACKUP_FORMAT="custom")
    assert w.run("backup").returncode == 0
    pg.create_database("staged_target")
    with pg.connect("staged_target") as c:
        c.execute("CREATE TABLE mine (x int); INSERT INTO mine VALUES (1)")
        before = _objects(c)
    r = w.run("restore", "--object", "latest", "--target-database", "staged_target", "--force", TMPDIR=small_tmp)
    assert r.returncode == 1
    case.scan_for_secrets(r.stderr)
    [line] = [ln for ln in r.stderr.splitlines() if " ERROR " in ln]
    assert "cannot stage" in line and "No space left" in line
    with pg.connect("staged_target") as c:
        assert _objects(c) == before
    import os
    assert os.listdir(small_tmp) == []  # the partial staging file was removed
    case.check_store(minio, bucket, w, expect_complete=1)


def test_database_restarted_mid_restore_rolls_back(case, pg_pool, minio, bucket, make_worker):
    server = pg_pool.get(16)
    load(server, "victim")
    with server.connect("victim") as c:
        c.execute("CREATE TABLE big AS SELECT g, repeat(md5(g::text), 8) AS t FROM generate_series(1, 1500000) g")
    w = make_worker(server, minio, bucket, "victim")
    assert w.run("backup").returncode == 0
    with server.connect("victim") as c:
        c.execute("DROP TABLE big; CREATE TABLE survivor (x int); INSERT INTO survivor VALUES (42)")
        before = fingerprint(c), _objects(c)
    proc = w.popen("restore", "--object", "latest", "--force")
    wait_for(lambda: proc.poll() is not None or _restoring(server), timeout=120, interval=0.02, what="the restore to start")
    server.restart()
    _, err = proc.communicate(timeout=120)
    case.scan_for_secrets(err)
    assert proc.returncode == 1, err
    with server.connect("victim") as c:
        assert (fingerprint(c), _objects(c)) == before


def _restoring(server) -> bool:
    with server.connect() as c:
        # the worker's children run as application_name cnpg-pgdump-backup; COPY means data is flowing
        return bool(c.execute("SELECT 1 FROM pg_stat_activity WHERE datname = 'victim' AND state = 'active'"
                              " AND query ILIKE 'COPY%'").fetchone())
