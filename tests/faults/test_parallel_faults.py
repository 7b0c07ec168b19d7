"""Signals during a parallel backup (`--dump-jobs 2`): no part that looks complete, no open upload
once the next run has passed, one clear line."""

from __future__ import annotations

import json
import signal
import time

import pytest

from testsupport.helpers import keys, open_uploads, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def twotables(pg):
    """Two tables of ~25 MB each: at gzip level 9 each part takes seconds to dump."""
    pg.create_database("faultpar")
    with pg.connect("faultpar") as c:
        for t in ("left_half", "right_half"):
            c.execute(f"CREATE TABLE {t} (id bigint PRIMARY KEY, v text)")
            c.execute(
                f"INSERT INTO {t} SELECT g, md5(g::text) || md5((g + 1)::text) || repeat('x', 60)"
                " FROM generate_series(1, 160000) g"
            )
    return "faultpar"


def _slow_parallel_backup(w, minio, bucket):
    proc = w.popen("backup", "--dump-jobs", "2", "--compression-level", "9", CNPG_BACKUP_FORMAT="custom")
    # both parts' uploads open: part 0 and part 1 are streaming
    wait_for(lambda: len(open_uploads(minio, bucket)) >= 2 or proc.poll() is not None, timeout=60, what="2 uploads")
    assert proc.poll() is None, proc.communicate()[1]
    return proc


def test_sigkill_mid_parallel_backup_is_cleaned_by_next_run(case, pg, minio, bucket, make_worker, twotables):
    w = make_worker(pg, minio, bucket, twotables, CNPG_BACKUP_STALE_UPLOAD_SECONDS="2", CNPG_BACKUP_FORMAT="custom")
    proc = _slow_parallel_backup(w, minio, bucket)
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    left = open_uploads(minio, bucket)
    assert any(k.endswith(".part1") for k in left) and any(k.endswith(".dump") for k in left), left
    case.check_store(minio, bucket, w, expect_complete=0, open_uploads_allowed=True)
    assert json.loads(w.run("list", "--json").stdout) == []  # nothing that looks like a backup
    time.sleep(2.5)
    r = w.run("backup", "--dump-jobs", "2")
    assert r.returncode == 0, r.stderr
    aborted = [ln for ln in r.stderr.splitlines() if "aborted abandoned multipart upload" in ln]
    assert len(aborted) == 2 and any(".part1" in ln for ln in aborted), r.stderr
    case.check_store(minio, bucket, w, expect_complete=1)


def test_sigterm_mid_parallel_backup_aborts_every_part(case, pg, minio, bucket, make_worker, twotables):
    w = make_worker(pg, minio, bucket, twotables, CNPG_BACKUP_FORMAT="custom")
    proc = _slow_parallel_backup(w, minio, bucket)
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - t0
    case.scan_for_secrets(err)
    assert proc.returncode == 143, err
    lines = [ln for ln in err.splitlines() if " ERROR " in ln]
    assert len(lines) == 1 and "SIGTERM" in lines[0] and "Traceback" not in err, err
    case.notes.append(f"exit {took:.1f}s after SIGTERM")
    assert took < 60
    case.check_store(minio, bucket, w, expect_complete=0)
    # no object at all under the database's prefix: neither part 0 nor part 1 was completed
    assert [k for k in keys(minio, bucket, "backups/") if "/.cnpg-backup/" not in k] == []
    assert not [k for k in keys(minio, bucket, "backups/.cnpg-backup/") if "/uploads/" in k]


def test_sigterm_mid_parallel_restore_empties_the_target_again(case, pg, minio, bucket, make_worker, twotables):
    w = make_worker(pg, minio, bucket, twotables, CNPG_BACKUP_FORMAT="custom")
    r = w.run("backup", "--dump-jobs", "2")
    assert r.returncode == 0, r.stderr
    pg.create_database("faultpar_t")
    proc = w.popen("restore", "--object", "latest", "--target-database", "faultpar_t", "--jobs", "2")

    def loading() -> bool:
        with pg.connect("faultpar_t") as c:
            row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = 'faultpar_t' AND query LIKE 'COPY%'")
            return row.fetchone()[0] >= 1 or proc.poll() is not None

    wait_for(loading, timeout=120, what="the parts' data loading")
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    case.scan_for_secrets(err)
    assert proc.returncode == 143, err
    lines = [ln for ln in err.splitlines() if " ERROR " in ln]
    assert len(lines) == 1 and "emptied again; the database is unchanged (verified" in lines[0], err
    with pg.connect("faultpar_t") as c:
        left = c.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        ).fetchone()[0]
        assert left == 0  # no table, no marker
    r = w.run("restore", "--object", "latest", "--target-database", "faultpar_t", "--jobs", "2")
    assert r.returncode == 0, r.stderr
