"""Faults during restore: /tmp full while staging, the database killed mid-restore."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile

import pytest

from testsupport.dataset import fingerprint, load
from testsupport.helpers import wait_for
from testsupport.safety_data import (
    PRECIOUS_SQL,
    arm_pause,
    full_fingerprint,
    load_source,
    paused,
    restore_sessions,
)
from testsupport.servers import client_bin_dirs
from worker import apply
from worker import pg as wpg
from worker.sql import COMMIT_GUARD, FORCE_PREAMBLE, session_settings
from worker.sqlstream import DumpScanner

pytestmark = pytest.mark.integration


def _objects(conn):
    return conn.execute(
        """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
           ORDER BY 1, 2"""
    ).fetchall()


@pytest.fixture
def small_tmp():
    d = tempfile.mkdtemp(prefix="cnpg-small-tmp-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", d], check=True)
    yield d
    subprocess.run(["umount", d], check=False)


def test_tmp_full_while_staging_a_custom_restore(case, pg, minio, bucket, make_worker, small_tmp):
    load(pg, "staged")
    with pg.connect("staged") as c:
        c.execute(
            "CREATE TABLE filler AS SELECT g, md5(g::text) || md5((g*7)::text) AS h FROM generate_series(1, 40000) g"
        )
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
    # refused before the download: the archive is larger than the free space
    assert "cannot stage" in line and "free" in line and "restore.tmpSizeLimit" in line
    with pg.connect("staged_target") as c:
        assert _objects(c) == before
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
    wait_for(
        lambda: proc.poll() is not None or _restoring(server), timeout=120, interval=0.02, what="the restore to start"
    )
    server.restart()
    _, err = proc.communicate(timeout=120)
    case.scan_for_secrets(err)
    assert proc.returncode == 1, err
    with server.connect("victim") as c:
        assert (fingerprint(c), _objects(c)) == before


def _restoring(server) -> bool:
    with server.connect() as c:
        # the worker's children run as application_name cnpg-pgdump-backup; COPY means data is flowing
        return bool(
            c.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = 'victim' AND state = 'active' AND query ILIKE 'COPY%'"
            ).fetchone()
        )


# --- The restore's own transaction cannot be committed by anything but the worker's final word ---


def _plain_dump(server, db: str) -> bytes:
    # (the caller put the test's client directories into CNPG_BACKUP_PG_BIN_DIRS)
    client = wpg.choose_client(server.major, "the test's dump")
    return subprocess.run(
        [client.tool("pg_dump"), "--no-password", "-d", db],
        env={**wpg.client_env(), **server.env(db)},
        check=True,
        capture_output=True,
    ).stdout


def _cut_after_large_objects(dump: bytes) -> bytes:
    """The dump up to just after its large-object section's `COMMIT;`: tables replaced, data and
    large objects restored, indexes and constraints still to come."""
    # the real TOC header (a function body of the source holds the same text, without the BEGIN)
    blobs = re.search(rb"\n-- [^\n]*Type: BLOBS;[^\n]*\n--\n\nBEGIN;\n", dump).end()
    end = dump.index(b"\nCOMMIT;\n", blobs) + len(b"\nCOMMIT;\n")
    assert b"CREATE INDEX" in dump[end:]  # there is more to come: the cut is mid-restore
    return dump[:end]


@pytest.mark.parametrize("major", [13, 18])
def test_psql_left_running_reads_end_of_input_and_rolls_back(case, pg_pool, major, monkeypatch):
    """The worker dies (SIGKILL, OOM) but its psql does not: psql reads end of input after the dump's
    large-object COMMIT. The old `psql --single-transaction` committed what it had (the force
    preamble's DROPs included); the worker's psql must roll back."""
    monkeypatch.setenv("CNPG_BACKUP_PG_BIN_DIRS", os.pathsep.join(client_bin_dirs()))
    server = pg_pool.get(major)
    load_source(server, "eof_src")
    partial = _cut_after_large_objects(_plain_dump(server, "eof_src"))
    for db in ("eof_target", "eof_control"):
        server.create_database(db)
        with server.connect(db) as c:
            c.execute(PRECIOUS_SQL)
    with server.connect("eof_target") as c:
        before = full_fingerprint(c)

    # Control: what the old chart and the first version did. It must lose `precious`, or this test
    # proves nothing about the cut.
    client = wpg.choose_client(server.major, "the test's restore")
    old = subprocess.run(
        [client.tool("psql"), "-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1", "-d", "eof_control"],
        input=FORCE_PREAMBLE.encode() + partial,
        capture_output=True,
        env={**wpg.client_env(), **server.env("eof_control")},
    )
    assert old.returncode == 0, old.stderr
    with server.connect("eof_control") as c:
        assert not c.execute("SELECT to_regclass('public.precious')").fetchone()[0]

    for k, v in server.env("eof_target").items():
        monkeypatch.setenv(k, v)
    proc, tail = apply._psql(client, "eof_target")
    opening = session_settings(server.major) + COMMIT_GUARD + FORCE_PREAMBLE
    proc.stdin.write(opening.encode())
    for chunk in DumpScanner().scan([partial]):
        proc.stdin.write(chunk)
    proc.stdin.close()  # the worker is gone: no final word
    rc = proc.wait(timeout=120)
    tail.join(timeout=10)
    case.scan_for_secrets(tail.summary())
    assert rc == 0  # psql saw nothing wrong: it just ran out of input
    with server.connect("eof_target") as c:
        after = full_fingerprint(c)
    if after != before:
        case.lost_or_corrupt += 1
    assert after == before


def test_sigkill_of_the_worker_mid_forced_restore_with_large_objects(case, pg_pool, minio, bucket, make_worker):
    """`kill -9` of the worker alone while the forced restore copies data: nothing committed."""
    server = pg_pool.get(15)
    load_source(server, "k9_src")
    w = make_worker(server, minio, bucket, "k9_src")
    assert w.run("backup").returncode == 0
    server.create_database("k9_target")
    with server.connect("k9_target") as c:
        c.execute(PRECIOUS_SQL)
    arm_pause(server, "k9_target")
    with server.connect("k9_target") as c:
        before = full_fingerprint(c)
    proc = w.popen("restore", "--object", "latest", "--target-database", "k9_target", "--force")
    wait_for(
        lambda: proc.poll() is not None or paused(server, "k9_target"),
        timeout=120,
        interval=0.02,
        what="the restore to reach its indexes (after data and large objects)",
    )
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    wait_for(lambda: restore_sessions(server, "k9_target") == 0, timeout=60, what="the restore's session to end")
    with server.connect("k9_target") as c:
        after = full_fingerprint(c)
    if after != before:
        case.lost_or_corrupt += 1
    assert after == before
    case.check_store(minio, bucket, w, expect_complete=1)
