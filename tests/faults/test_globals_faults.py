"""Faults during a globals backup (`pg_dumpall --globals-only`, worker/globals.py): a pg_dumpall that
is stopped mid-way, by SIGTERM or SIGKILL, leaves no object that looks complete, and the next run
cleans up and stores a whole one."""

from __future__ import annotations

import json
import signal
import time

import pytest

from testsupport.helpers import keys, open_uploads, proc_cmdlines_of, wait_for

pytestmark = pytest.mark.integration


def _blocked_globals_backup(pg, w, minio, bucket):
    """A globals backup whose pg_dumpall has written its header and then waits for a lock: a session
    holds pg_tablespace, which its queries read. Returns (process, locker)."""
    locker = pg.connect()
    locker.autocommit = False
    locker.execute("LOCK TABLE pg_catalog.pg_tablespace IN ACCESS EXCLUSIVE MODE")
    proc = w.popen("backup-globals")

    def dumpall_waits() -> bool:
        with pg.connect() as c:
            row = c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND state = 'active'"
            ).fetchone()
        return bool(row and row[0]) or proc.poll() is not None

    wait_for(dumpall_waits, timeout=60, what="pg_dumpall waiting for the lock")
    assert proc.poll() is None, proc.communicate()[1]
    assert open_uploads(minio, bucket), "the upload should be open while pg_dumpall waits"
    return proc, locker


def _globals(w) -> list[dict]:
    return json.loads(w.run("list", "--globals", "--json").stdout or "[]")


def test_sigterm_while_pg_dumpall_runs_stores_nothing(case, pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "postgres", prefix="gf")
    proc, locker = _blocked_globals_backup(pg, w, minio, bucket)
    try:
        children = proc_cmdlines_of(proc.pid)
        assert any("pg_dumpall" in c for c in children), children
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        locker.rollback()
        locker.close()
    case.scan_for_secrets(err, *children)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "nothing was stored" in err
    assert _globals(w) == [] and not [k for k in keys(minio, bucket, "gf/.globals/") if "globals_" in k]
    assert open_uploads(minio, bucket) == []
    r = w.run("backup-globals")
    assert r.returncode == 0, r.stderr
    [entry] = _globals(w)
    assert entry["status"] == "complete"
    case.scan_for_secrets(r.stdout, r.stderr)


def test_sigkill_while_pg_dumpall_runs_is_cleaned_by_the_next_run(case, pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "postgres", prefix="gk", CNPG_BACKUP_STALE_UPLOAD_SECONDS="2")
    proc, locker = _blocked_globals_backup(pg, w, minio, bucket)
    try:
        proc.kill()  # no handler runs: the upload stays open, pg_dumpall dies with its parent
        proc.wait()
    finally:
        locker.rollback()
        locker.close()
    assert _globals(w) == []
    assert open_uploads(minio, bucket), "SIGKILL should have left the upload open (else the test proves nothing)"
    time.sleep(2.5)
    r = w.run("backup-globals")
    assert r.returncode == 0, r.stderr
    assert "aborted abandoned multipart upload" in r.stderr
    assert open_uploads(minio, bucket) == []
    [entry] = _globals(w)
    assert entry["status"] == "complete"
    case.scan_for_secrets(r.stdout, r.stderr)
