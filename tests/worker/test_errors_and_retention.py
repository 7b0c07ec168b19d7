"""Clear one-line errors without secrets; retention; `latest` beyond one listing page; client choice."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from testsupport.dataset import load
from testsupport.helpers import keys
from testsupport.servers import MINIO_SECRET, PG_PASSWORD, free_port

pytestmark = pytest.mark.integration


def _assert_one_clear_line(r, *expected: str):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.error_lines) == 1, r.stderr
    for e in expected:
        assert e in r.error_lines[0], r.error_lines[0]
    for secret in (PG_PASSWORD, MINIO_SECRET):
        assert secret not in r.stderr and secret not in r.stdout


def test_wrong_password(pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "postgres", PGPASSWORD="wrong-" + PG_PASSWORD)
    r = w.run("backup")
    _assert_one_clear_line(r, "password authentication failed", "127.0.0.1")
    assert ("wrong-" + PG_PASSWORD) not in r.stderr


def test_unreachable_host(pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "postgres", PGPORT=str(free_port()))
    r = w.run("backup", "--wait-timeout", "2")
    _assert_one_clear_line(r, "not ready after 2s", "127.0.0.1")


def test_missing_bucket(pg, minio, make_worker):
    w = make_worker(pg, minio, "no-such-bucket-here", "postgres")
    r = w.run("backup")
    _assert_one_clear_line(r, "no-such-bucket-here", "does not exist")


def test_s3_failing_after_pg_dump_started_kills_it(pg, minio, make_worker, monkeypatch):
    # pg_dump starts while the S3 side is still getting ready (worker/dump.py). Held up here by an
    # application's lock, it would wait on after the backup failed unless the worker kills it. In
    # this process, not a worker's own: a child that outlives its worker dies with it anyway.
    import psutil

    from worker.cli import build_parser
    from worker.commands import cmd_backup
    from worker.errors import WorkerError

    def pg_dumps() -> list[psutil.Process]:
        return [p for p in psutil.Process().children(recursive=True) if p.name() == "pg_dump"]

    load(pg, "shopk")
    for name, value in make_worker(pg, minio, "no-such-bucket-k", "shopk").full_env().items():
        if name.startswith(("PG", "AWS_", "CNPG_BACKUP_")):
            monkeypatch.setenv(name, value)
    with pg.connect("shopk") as app:
        app.execute("BEGIN")
        app.execute("LOCK TABLE sales.customers IN ACCESS EXCLUSIVE MODE")
        started = []
        real_popen = subprocess.Popen

        def popen(cmd, *a, **kw):  # the dump's pg_dump, seen started before S3 fails
            proc = real_popen(cmd, *a, **kw)
            if "--version" not in cmd:
                started.append(proc)
            return proc

        monkeypatch.setattr(subprocess, "Popen", popen)
        with pytest.raises(WorkerError, match="no-such-bucket-k.*does not exist"):
            cmd_backup(build_parser().parse_args(["backup", "--lock-wait-timeout", "0"]))
        monkeypatch.setattr(subprocess, "Popen", real_popen)
        assert len(started) == 1 and started[0].args[0].endswith("pg_dump"), started
        assert started[0].poll() is not None and pg_dumps() == [], "pg_dump outlived the failed backup"
        app.execute("ROLLBACK")


def test_bad_s3_credentials(pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "postgres", AWS_SECRET_ACCESS_KEY="not-the-" + MINIO_SECRET)
    r = w.run("backup")
    _assert_one_clear_line(r, bucket, "SignatureDoesNotMatch")
    assert ("not-the-" + MINIO_SECRET) not in r.stderr


def test_bad_flags_and_keys(pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "postgres")
    _assert_one_clear_line(w.run("backup", "--compression-level", "12"), "compression-level")
    _assert_one_clear_line(w.run("restore", "--object", f"s3://{bucket}/x.sql.gz"), "without s3://")
    _assert_one_clear_line(w.run("restore", "--object", "backups/nope_2024-01-01_00-00-00.sql.gz"), "does not exist")
    _assert_one_clear_line(w.run("list", "--bucket", ""), "no S3 bucket")
    assert w.run("backup", "--compression-level", "12").returncode == 2


@pytest.mark.parametrize(
    "var,value,expected",
    [
        ("CNPG_BACKUP_FORMAT", "tar", "'tar' is not one of plain, custom (from the flag or CNPG_BACKUP_FORMAT)"),
        (
            "CNPG_BACKUP_COMPRESSION_LEVEL",
            "12",
            "gzip compression level must be 1-9, got 12",  # gzip: the default codec
        ),
        (
            "CNPG_BACKUP_COMPRESSION_LEVEL",
            "25",
            "'25' is not a compression level (from the flag or CNPG_BACKUP_COMPRESSION_LEVEL)",
        ),
        ("CNPG_BACKUP_COMPRESSION_LEVEL", "fast", "'fast' is not a compression level"),
        (
            "CNPG_BACKUP_COMPRESSION",
            "bzip2",
            "'bzip2' is not one of gzip, zstd, lz4 (from the flag or CNPG_BACKUP_COMPRESSION)",
        ),
        (
            "CNPG_BACKUP_WAIT_TIMEOUT",
            "soon",
            "'soon' is not a number of seconds (from the flag or CNPG_BACKUP_WAIT_TIMEOUT)",
        ),
        ("CNPG_BACKUP_LOG_FORMAT", "xml", "'xml' is not one of text, json (from the flag or CNPG_BACKUP_LOG_FORMAT)"),
        ("CNPG_BACKUP_RETENTION_DAYS", "30d", "'30d' is not a number of days"),
    ],
)
def test_bad_environment_values_are_usage_errors(var, value, expected, pg, minio, bucket, make_worker):
    # argparse never checks `choices` on defaults; these come from the environment the pods set.
    w = make_worker(pg, minio, bucket, "postgres", **{var: value})
    r = w.run("backup")
    _assert_one_clear_line(r, expected)
    assert r.returncode == 2
    assert minio.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # nothing was attempted


def test_bad_backup_setting_in_the_environment_does_not_break_other_commands(pg, minio, bucket, make_worker):
    # Only the command that uses a variable checks it; `--help` always works.
    w = make_worker(pg, minio, bucket, "postgres", CNPG_BACKUP_FORMAT="tar", CNPG_BACKUP_COMPRESSION_LEVEL="12")
    assert w.run("list").returncode == 0
    assert w.run("--help").returncode == 0 and w.run("backup", "--help").returncode == 0


def _put_backup(s3, bucket, key, body: bytes, complete=True, database="shop"):
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    if complete:
        import hashlib

        m = {
            "database": database,
            "key": key,
            "format": "plain",
            "compression": "gzip",
            "server_version": "17.0",
            "pg_dump_version": "18.6",
            "pg_dump_major": 18,
            "raw_bytes": 1,
            "object_bytes": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "started_at": "",
            "finished_at": "",
            "status": "complete",
        }
        s3.put_object(Bucket=bucket, Key=key + ".manifest.json", Body=json.dumps(m).encode())


def _stamp(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d_%H-%M-%S")


def test_retention_deletes_exactly_the_expired(pg, minio, bucket, make_worker):
    s3 = minio.client()
    old = [f"backups/shop_{_stamp(d)}.sql.gz" for d in (30, 20, 10)]
    fresh = [f"backups/shop_{_stamp(d)}.sql.gz" for d in (5, 1)]
    for k in old + fresh:
        _put_backup(s3, bucket, k, b"x" * 10)
    old_incomplete = f"backups/shop_{_stamp(40)}.sql.gz"
    _put_backup(s3, bucket, old_incomplete, b"y", complete=False)
    untouchable = [
        f"backups/shop2_{_stamp(30)}.sql.gz",
        f"backups/shopping_{_stamp(30)}.sql.gz",
        f"other/shop_{_stamp(30)}.sql.gz",
        "backups/notes.txt",
        f"backups/shop_{_stamp(30)}.sql.gz.bak",
    ]
    for k in untouchable:
        s3.put_object(Bucket=bucket, Key=k, Body=b"z")
    w = make_worker(pg, minio, bucket, "shop")

    r = w.run("prune", "--retention-days", "7", "--dry-run")
    assert r.returncode == 0, r.stderr
    # the plan, one row per backup: 3 expired + the old incomplete one go, the 2 fresh ones stay
    rows = r.stdout.splitlines()[1:]
    assert sum(" delete " in row for row in rows) == 4 and sum(" keep " in row for row in rows) == 2, r.stdout
    assert all("within 7 days" in row for row in rows if " keep " in row)
    assert len(keys(minio, bucket)) == 5 * 2 + 1 + len(untouchable)

    r = w.run("prune", "--retention-days", "7")
    assert r.returncode == 0, r.stderr
    remaining = set(keys(minio, bucket))
    assert remaining == set(fresh) | {k + ".manifest.json" for k in fresh} | set(untouchable)


def test_retention_never_deletes_the_newest_complete(pg, minio, bucket, make_worker):
    s3 = minio.client()
    ks = [f"backups/shop_{_stamp(d)}.sql.gz" for d in (90, 60, 30)]
    for k in ks:
        _put_backup(s3, bucket, k, b"x")
    newer_incomplete = f"backups/shop_{_stamp(20)}.sql.gz"
    _put_backup(s3, bucket, newer_incomplete, b"y", complete=False)
    r = make_worker(pg, minio, bucket, "shop").run("prune", "--retention-days", "7")
    assert r.returncode == 0, r.stderr
    assert set(keys(minio, bucket)) == {ks[-1], ks[-1] + ".manifest.json"}


def test_backup_applies_retention_and_latest_beyond_1000_objects(pg, minio, bucket, make_worker):
    load(pg, "shop")
    s3 = minio.client()
    base = datetime.now(UTC) - timedelta(days=3)
    # 1,200 older backups (complete ones interleaved) fill more than one listing page before the new one
    names = [f"backups/shop_{(base - timedelta(minutes=i)).strftime('%Y-%m-%d_%H-%M-%S')}.sql.gz" for i in range(1200)]
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda k: _put_backup(s3, bucket, k, b"old", complete=names.index(k) % 100 == 0), names))
    w = make_worker(pg, minio, bucket, "shop")
    r = w.run("backup", "--retention-days", "2")
    assert r.returncode == 0, r.stderr
    listed = json.loads(w.run("list", "--json").stdout)
    assert len(listed) == 1 and listed[0]["status"] == "complete"  # retention removed the 1,200 older ones
    # latest is the new backup, found across pages: restore --dry-run names it
    r = w.run("restore", "--object", "latest", "--dry-run")
    assert r.returncode == 0 and listed[0]["key"] in r.stderr


def test_latest_with_more_than_1000_objects_without_pruning(pg, minio, bucket, make_worker):
    s3 = minio.client()
    names = [f"backups/shop_2025-01-01_00-{i // 60:02d}-{i % 60:02d}.sql.gz" for i in range(1100)]
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda k: _put_backup(s3, bucket, k, b"old", complete=False), names))
    newest_complete = "backups/shop_2025-01-01_00-10-00.sql.gz"  # sorts into the middle of page 1
    _put_backup(s3, bucket, newest_complete, b"real")
    r = make_worker(pg, minio, bucket, "shop").run("list", "--json")
    listed = json.loads(r.stdout)
    assert len(listed) == 1100 and listed[0]["key"] == names[-1]
    assert [e["key"] for e in listed if e["status"] == "complete"] == [newest_complete]


@pytest.mark.parametrize("major,expected", [(13, 15), (15, 15), (16, 18), (18, 18)])
def test_client_major_selection(major, expected, pg_pool, minio, bucket, make_worker):
    server = pg_pool.get(major)
    server.create_database("sel")
    w = make_worker(server, minio, bucket, "sel")
    assert w.run("backup").returncode == 0
    [entry] = json.loads(w.run("list", "--json").stdout)
    m = json.loads(minio.client().get_object(Bucket=bucket, Key=entry["key"] + ".manifest.json")["Body"].read())
    assert m["pg_dump_major"] == expected and m["server_version"].startswith(str(major))


def test_only_older_clients_refused(pg_pool, minio, bucket, make_worker):
    server = pg_pool.get(17)
    w = make_worker(server, minio, bucket, "postgres", CNPG_BACKUP_PG_BIN_DIRS="/usr/lib/postgresql/15/bin")
    r = w.run("backup")
    _assert_one_clear_line(r, "no PostgreSQL client >= 17", "installed majors: 15")
    # nothing but the run's status object (what `status`, `check` and the metrics report)
    assert keys(minio, bucket) == ["backups/.cnpg-backup/status/postgres.json"]


def test_prune_keeps_what_a_restore_reads_and_gfs_dry_run_explains(pg, minio, bucket, make_worker):
    s3 = minio.client()
    ks = [f"backups/shop_{_stamp(d)}.sql.gz" for d in (400, 90, 60, 30, 3)]
    for k in ks:
        _put_backup(s3, bucket, k, b"x")
    # a restore announced it is reading the 90-day-old backup (worker/restore.py writes this record)
    s3.put_object(
        Bucket=bucket,
        Key="backups/.cnpg-backup/pending/" + ks[1].rsplit("/", 1)[-1] + ".json",
        Body=json.dumps({"key": ks[1]}).encode(),
    )
    w = make_worker(pg, minio, bucket, "shop")
    r = w.run("prune", "--retention-days", "7", "--keep-yearly", "2", "--dry-run")
    assert r.returncode == 0, r.stderr
    plan = {row.split()[-1]: row for row in r.stdout.splitlines()[1:]}
    assert " keep " in plan[ks[1]] and "a restore is reading it" in plan[ks[1]]
    assert " keep " in plan[ks[4]] and "within 7 days" in plan[ks[4]]
    assert " delete " in plan[ks[2]] and "no rule keeps it" in plan[ks[2]]
    assert set(keys(minio, bucket)) >= set(ks)  # a dry run deletes nothing
    r = w.run("prune", "--retention-days", "7", "--keep-yearly", "2")
    assert r.returncode == 0, r.stderr
    left = {k for k in keys(minio, bucket) if not k.endswith(".json")}
    yearly_kept = {k for k in ks if " keep " in plan[k] and "yearly" in plan[k]}
    assert left == {ks[1], ks[4]} | yearly_kept
    assert ks[0] in yearly_kept or _stamp(400)[:4] == _stamp(3)[:4]  # last year's newest survives as yearly


def test_restore_removes_its_pending_record(pg, minio, bucket, make_worker):
    load(pg, "shoppend")
    w = make_worker(pg, minio, bucket, "shoppend")
    assert w.run("backup").returncode == 0
    pg.create_database("shoppend_copy")
    r = w.run("restore", "--object", "latest", "--target-database", "shoppend_copy")
    assert r.returncode == 0, r.stderr
    assert not [k for k in keys(minio, bucket) if "/.cnpg-backup/pending/" in k]
