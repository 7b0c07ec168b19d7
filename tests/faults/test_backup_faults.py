"""Faults during backup: signals, S3 outages, a database restart, a slow link, concurrent runs."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from testsupport.dataset import load
from testsupport.helpers import load_bulk, open_uploads, proc_cmdlines_of, wait_for
from testsupport.proxy import ThrottledProxy
from testsupport.servers import AGE_IDENTITY, AGE_RECIPIENT, MinioServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slowdb(pg):
    load_bulk(pg, "faultdb", 120)
    return "faultdb"


@pytest.fixture
def own_minio(bucket):
    """A MinIO of the test's own, so stopping it harms no other test."""
    server = MinioServer().start()
    server.client().create_bucket(Bucket=bucket)
    yield server
    server.destroy()


def _slow_backup(w, minio, bucket, *extra):
    proc = w.popen("backup", "--compression-level", "9", *extra)
    wait_for(lambda: open_uploads(minio, bucket) or proc.poll() is not None, timeout=60, what="an open upload")
    assert proc.poll() is None, proc.communicate()[1]
    return proc


def _one_error_line(case, err: str) -> str:
    case.scan_for_secrets(err)
    lines = [ln for ln in err.splitlines() if " ERROR " in ln]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# encrypted: the age thread between the compressor and the upload must not change what a signal leaves
AGE = {"clear": {}, "age": {"CNPG_BACKUP_AGE_RECIPIENTS": AGE_RECIPIENT, "CNPG_BACKUP_AGE_IDENTITY": AGE_IDENTITY}}


@pytest.mark.parametrize("age", list(AGE))
def test_sigkill_mid_upload_is_cleaned_by_next_run(age, case, pg, minio, bucket, make_worker, slowdb):
    w = make_worker(pg, minio, bucket, slowdb, CNPG_BACKUP_STALE_UPLOAD_SECONDS="2", **AGE[age])
    proc = _slow_backup(w, minio, bucket)
    time.sleep(0.5)
    children = proc_cmdlines_of(proc.pid)
    proc.kill()  # no handler runs: the upload stays open
    proc.wait()
    case.scan_for_secrets(*children)
    case.check_store(minio, bucket, w, expect_complete=0, open_uploads_allowed=True)
    assert open_uploads(minio, bucket), "SIGKILL should have left the upload open (else the test proves nothing)"
    time.sleep(2.5)
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    assert "aborted abandoned multipart upload" in r.stderr, r.stderr
    case.check_store(minio, bucket, w, expect_complete=1)


@pytest.mark.parametrize("age", list(AGE))
def test_sigterm_mid_upload_aborts_within_grace(age, case, pg, minio, bucket, make_worker, slowdb):
    w = make_worker(pg, minio, bucket, slowdb, **AGE[age])
    proc = _slow_backup(w, minio, bucket)
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)  # the manifests give 60 s of grace before SIGKILL
    took = time.monotonic() - t0
    assert proc.returncode == 143
    line = _one_error_line(case, err)
    assert "SIGTERM" in line and "nothing was stored" in line
    case.notes.append(f"exit {took:.1f}s after SIGTERM")
    assert took < 60
    case.check_store(minio, bucket, w, expect_complete=0)


def test_minio_restarted_mid_upload_never_leaves_a_partial_backup(case, pg, own_minio, bucket, make_worker, slowdb):
    w = make_worker(pg, own_minio, bucket, slowdb)
    proc = _slow_backup(w, own_minio, bucket)
    own_minio.stop()
    time.sleep(3)
    own_minio.start()  # same port, same data: the upload's parts survive
    _, err = proc.communicate(timeout=600)
    case.scan_for_secrets(err)
    # S3 retries (8 attempts, jittered backoff) usually outlast a few seconds' restart, but not
    # always: either the backup is whole and listed, or it failed with one clear line and nothing
    # that looks like a backup is left (the next prune removes the open upload).
    if proc.returncode == 0:
        case.check_store(own_minio, bucket, w, expect_complete=1)
    else:
        assert proc.returncode == 1, err
        _one_error_line(case, err)
        case.check_store(own_minio, bucket, w, expect_complete=0, open_uploads_allowed=True)
        r = w.run("prune", "--retention-days", "30")
        assert r.returncode == 0, r.stderr
    case.notes.append(f"exit {proc.returncode}")


def test_minio_gone_for_good_fails_cleanly(case, pg, own_minio, bucket, make_worker, slowdb):
    w = make_worker(pg, own_minio, bucket, slowdb, CNPG_BACKUP_STALE_UPLOAD_SECONDS="2")
    proc = _slow_backup(w, own_minio, bucket)
    own_minio.stop()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1
    line = _one_error_line(case, err)
    assert bucket in line and "127.0.0.1" in line
    own_minio.start()
    # The upload could not be aborted while S3 was down: invisible to list and restore, and the
    # next prune (or backup) removes it once its heartbeat is stale.
    case.check_store(own_minio, bucket, w, expect_complete=0, open_uploads_allowed=True)
    time.sleep(3)
    r = w.run("prune", "--retention-days", "30")
    assert r.returncode == 0, r.stderr
    case.check_store(own_minio, bucket, w, expect_complete=0)


def test_postgres_restarted_mid_dump(case, pg_pool, minio, bucket, make_worker):
    server = pg_pool.get(15)
    load_bulk(server, "restartdb", 100)
    w = make_worker(server, minio, bucket, "restartdb")
    proc = _slow_backup(w, minio, bucket)
    server.restart()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    line = _one_error_line(case, err)
    assert "pg_dump" in line and "nothing was stored" in line
    case.check_store(minio, bucket, w, expect_complete=0)
    r = w.run("backup")  # and the next run, against the restarted server, is whole
    assert r.returncode == 0, r.stderr
    case.check_store(minio, bucket, w, expect_complete=1)


def test_slow_link(case, pg, minio, bucket, make_worker):
    pg.create_database("slowlink")
    with pg.connect("slowlink") as c:
        c.execute("CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 100000) g")
    proxy = ThrottledProxy(minio.port, 1_000_000)  # 1 MB/s
    try:
        w = make_worker(pg, minio, bucket, "slowlink", CNPG_BACKUP_S3_ENDPOINT=f"http://127.0.0.1:{proxy.port}")
        t0 = time.monotonic()
        r = w.run("backup")
        case.notes.append(f"{proxy.bytes} bytes through the proxy in {time.monotonic() - t0:.1f}s")
        assert r.returncode == 0, r.stderr
        assert proxy.bytes > 1_000_000  # the data really crossed the slow link
        case.check_store(minio, bucket, w, expect_complete=1)
    finally:
        proxy.close()


def test_two_backups_at_once(case, pg, minio, bucket, make_worker):
    pg.create_database("twice")
    with pg.connect("twice") as c:
        c.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
    w = make_worker(pg, minio, bucket, "twice")
    results = []
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        results.append(w.run("backup"))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        case.scan_for_secrets(r.stderr)
        assert r.returncode == 0, r.stderr
    entries = case.check_store(minio, bucket, w, expect_complete=2)
    assert len({e["key"] for e in entries}) == 2


def test_concurrent_list_never_sees_a_partial_backup(case, pg, minio, bucket, make_worker, slowdb):
    w = make_worker(pg, minio, bucket, slowdb)
    proc = w.popen("backup", "--compression-level", "9")
    seen = []
    while proc.poll() is None:
        seen.append([e["status"] for e in json.loads(w.run("list", "--json").stdout)])
    assert proc.wait() == 0
    # the listings really overlapped the upload (not one listing after it ended)
    assert len(seen) >= 3, f"only {len(seen)} listings while the backup ran: the backup was too quick"
    # while the upload ran, nothing was listed at all: the object appears only when whole. After it
    # is published the worker still records the run (status object, metrics), so the last listings
    # may show it — complete, never anything else, and never gone again once seen.
    assert all(s in ([], ["complete"]) for s in seen), seen
    first = next((i for i, s in enumerate(seen) if s), len(seen))
    assert all(s == ["complete"] for s in seen[first:]), seen
    assert seen[0] == [], seen
    case.check_store(minio, bucket, w, expect_complete=1)


def test_table_locked_by_an_application_fails_the_backup_in_bounded_time(case, pg, minio, bucket, make_worker):
    """An ALTER TABLE / LOCK TABLE held open: pg_dump gives up after --lock-wait-timeout instead of
    blocking the CronJob (and, with concurrencyPolicy Forbid, every later run) for ever."""
    load(pg, "lockeddb")
    with pg.connect("lockeddb") as c:
        c.execute("CREATE TABLE held (x int)")
    app = pg.connect("lockeddb")
    app.autocommit = False
    app.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
    try:
        w = make_worker(pg, minio, bucket, "lockeddb", CNPG_BACKUP_LOCK_WAIT_TIMEOUT="2")
        t0 = time.monotonic()
        r = w.run("backup", timeout=120)
        took = time.monotonic() - t0
    finally:
        app.rollback()
        app.close()
    assert r.returncode == 1, r.stderr
    line = _one_error_line(case, r.stderr)
    assert "lock" in line and "backup.lockWaitTimeoutSeconds" in line and "nothing was stored" in line
    case.notes.append(f"failed after {took:.1f}s")
    assert took < 60
    case.check_store(minio, bucket, w, expect_complete=0)
    r = w.run("backup")  # the lock is gone: the next run is whole
    assert r.returncode == 0, r.stderr
    case.check_store(minio, bucket, w, expect_complete=1)
