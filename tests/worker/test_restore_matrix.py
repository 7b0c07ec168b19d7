"""The restore-safety matrix, on real servers: every restore path × every kind of target × a failure
at every phase, a SIGTERM and a SIGKILL of the worker alone. After a failure the target's full
fingerprint (objects with their OIDs, every table's data, every large object's bytes) must equal the
one taken before; after a success, the source's.
"""

from __future__ import annotations

import json
import os
import signal
import uuid

import psutil
import pytest

from testsupport.helpers import wait_for
from testsupport.safety_data import (
    FAULT_TAGS,
    PRECIOUS_SQL,
    arm_fault,
    arm_pause,
    full_fingerprint,
    load_source,
    paused,
    restore_sessions,
)

pytestmark = pytest.mark.integration

MAJORS = [13, 18]
FORMATS = {
    "plain": ({}, []),
    "custom": ({"CNPG_BACKUP_FORMAT": "custom"}, []),
    "parallel": ({"CNPG_BACKUP_FORMAT": "custom"}, ["--jobs", "2"]),
}
TARGETS = ["empty", "force", "source"]
FAULTS = ["none", *FAULT_TAGS, "sigterm", "sigkill"]
_BACKUPS: dict = {}


@pytest.fixture(scope="module")
def matrix_bucket(minio):
    name = f"matrix-{uuid.uuid4().hex[:8]}"
    minio.client().create_bucket(Bucket=name)
    return name


def _source(pg_pool, minio, matrix_bucket, make_worker, major: int, fmt: str):
    """One source database per major and one backup per format, shared by the module."""
    server = pg_pool.get(major)
    env, _ = FORMATS[fmt]
    fmt_key = "custom" if env else "plain"
    if (major, fmt_key) not in _BACKUPS:
        if not any(k[0] == major for k in _BACKUPS):
            load_source(server, "src")
        w = make_worker(server, minio, matrix_bucket, "src", prefix=f"pg{major}", **env)
        r = w.run("backup")
        assert r.returncode == 0, r.stderr
        entries = json.loads(w.run("list", "--json").stdout)
        [key] = [e["key"] for e in entries if e["format"] == fmt_key]
        with server.connect("src") as c:
            _BACKUPS[(major, fmt_key)] = (key, full_fingerprint(c, with_oids=False))
    key, source_print = _BACKUPS[(major, fmt_key)]
    return server, make_worker(server, minio, matrix_bucket, "src", prefix=f"pg{major}", **env), key, source_print


def _prepare_target(server, name: str, kind: str) -> None:
    if kind == "source":  # the database the backup came from: same objects, same large-object OIDs
        with server.connect() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}" TEMPLATE src')
        return
    server.create_database(name)
    if kind == "force":
        with server.connect(name) as c:
            c.execute(PRECIOUS_SQL)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("major", MAJORS)
def test_restore_matrix(pg_pool, minio, matrix_bucket, make_worker, major, fmt, target, fault):
    server, w, key, source_print = _source(pg_pool, minio, matrix_bucket, make_worker, major, fmt)
    db = f"t_{fmt}_{target}_{fault}"
    _prepare_target(server, db, target)
    if fault in FAULT_TAGS:
        arm_fault(server, db, fault)
    elif fault in ("sigterm", "sigkill"):
        arm_pause(server, db)
    with server.connect(db) as c:
        before = full_fingerprint(c)
    args = ["restore", "--object", key, "--target-database", db, *FORMATS[fmt][1]]
    if target != "empty":
        args.append("--force")
    transactional = not (fmt == "parallel" and target == "empty")

    if fault == "none":
        r = w.run(*args)
        assert r.returncode == 0, r.stderr
        with server.connect(db) as c:
            assert full_fingerprint(c, with_oids=False) == source_print
        return

    if fault in FAULT_TAGS:
        r = w.run(*args)
        assert r.returncode == 1, r.stderr
        [line] = r.error_lines
        assert "injected fault" in line
        assert ("rolled back" if transactional else "emptied again") in line
        assert "unchanged (verified" in line, line
    else:
        proc = w.popen(*args)
        wait_for(
            lambda: proc.poll() is not None or paused(server, db),
            timeout=120,
            interval=0.02,
            what="the restore to reach its indexes (after data and large objects)",
        )
        assert proc.poll() is None, proc.communicate()[1]
        children = psutil.Process(proc.pid).children(recursive=True)
        if fault == "sigterm":
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 143, err
            assert "unchanged (verified" in err, err
        else:
            os.kill(proc.pid, signal.SIGKILL)  # the worker alone: its psql/pg_restore is not signalled
            proc.communicate(timeout=60)
            wait_for(
                lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children),
                timeout=10,
                what="the worker's children to die with it",
            )
        wait_for(lambda: restore_sessions(server, db) == 0, timeout=60, what="the restore's sessions to end")

    with server.connect(db) as c:
        after = full_fingerprint(c)
    if fault == "sigkill" and not transactional:
        # No transaction to roll back and nobody left to empty it: the marker says so, and the next
        # restore (no --force needed: the database was empty) empties it and restores.
        assert any(rel[1] == "cnpg_pgdump_backup_restore_incomplete" for rel in after["relations"])
        r = w.run(*args)
        assert r.returncode == 0, r.stderr
        assert "interrupted restore" in r.stderr
        with server.connect(db) as c:
            assert full_fingerprint(c, with_oids=False) == source_print
        return
    assert after == before
