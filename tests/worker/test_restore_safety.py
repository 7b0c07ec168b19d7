"""Restore refuses what it cannot prove, and a failed restore leaves the database as it was."""

from __future__ import annotations

import json

import pytest

from testsupport.dataset import fingerprint, load

pytestmark = pytest.mark.integration


@pytest.fixture
def backed_up(pg, minio, bucket, make_worker):
    load(pg, "shop")
    w = make_worker(pg, minio, bucket, "shop")
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(w.run("list", "--json").stdout)
    return w, entry["key"]


def _target_with_data(pg, name="target"):
    pg.create_database(name)
    with pg.connect(name) as c:
        c.execute(
            "CREATE TABLE keep_me (id int PRIMARY KEY, v text); INSERT INTO keep_me SELECT g, 'v' || g FROM generate_series(1, 50) g"
        )
        c.execute("CREATE SCHEMA other; CREATE TABLE other.t (x int); INSERT INTO other.t VALUES (1), (2)")
        return fingerprint_all(c)


def fingerprint_all(conn) -> list:
    return (
        conn.execute(
            """SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
           ORDER BY 1, 2"""
        ).fetchall()
        + conn.execute("SELECT count(*), sum(id) FROM keep_me").fetchall()
    )


def test_non_empty_database_refused_without_force(pg, backed_up):
    w, key = backed_up
    before = _target_with_data(pg)
    r = w.run("restore", "--object", key, "--target-database", "target")
    assert r.returncode == 1
    [line] = r.error_lines
    assert "not empty" in line and "force" in line
    with pg.connect("target") as c:
        assert fingerprint_all(c) == before


def test_force_replaces_contents_atomically(pg, backed_up):
    w, key = backed_up
    _target_with_data(pg)
    r = w.run("restore", "--object", key, "--target-database", "target", "--force")
    assert r.returncode == 0, r.stderr
    with pg.connect("shop") as a, pg.connect("target") as b:
        assert fingerprint(a) == fingerprint(b)
        assert b.execute("SELECT to_regclass('public.keep_me'), to_regnamespace('other')").fetchone() == (None, None)


@pytest.mark.parametrize(
    "damage", ["flipped_byte", "truncated_with_manifest", "truncated_no_manifest", "not_gzip", "empty"]
)
def test_damaged_object_refused_before_database_touched(pg, minio, bucket, backed_up, damage):
    w, key = backed_up
    s3 = minio.client()
    data = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    args = ["restore", "--object", key, "--target-database", "target", "--force"]
    if damage == "flipped_byte":
        data[len(data) // 2] ^= 0x01
    elif damage.startswith("truncated"):
        data = data[: len(data) * 2 // 3]
        if damage == "truncated_no_manifest":
            s3.delete_object(Bucket=bucket, Key=key + ".manifest.json")
            args.append("--allow-unverified")
    elif damage == "not_gzip":
        s3.delete_object(Bucket=bucket, Key=key + ".manifest.json")
        data = bytearray(b"-- plain SQL, not gzip\nDROP TABLE keep_me;\n")
        args.append("--allow-unverified")
    elif damage == "empty":
        data = bytearray()
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    before = _target_with_data(pg)
    r = w.run(*args)
    assert r.returncode == 1, r.stderr
    [line] = r.error_lines
    assert key in line
    assert "restore starting" not in r.stderr
    with pg.connect("target") as c:
        assert fingerprint_all(c) == before


def test_object_without_manifest_refused_unless_allowed(pg, minio, bucket, backed_up):
    w, key = backed_up
    minio.client().delete_object(Bucket=bucket, Key=key + ".manifest.json")
    pg.create_database("target")
    r = w.run("restore", "--object", key, "--target-database", "target")
    assert r.returncode == 1 and "no manifest" in r.error_lines[0] and "--allow-unverified" in r.error_lines[0]
    # the chart's own backups have no manifest: with the flag, the gzip stream is checked and restored
    r = w.run("restore", "--object", key.split("/")[-1], "--target-database", "target", "--allow-unverified")
    assert r.returncode == 0, r.stderr
    with pg.connect("shop") as a, pg.connect("target") as b:
        assert fingerprint(a) == fingerprint(b)


def test_backup_of_another_database_refused(pg, minio, bucket, backed_up, make_worker):
    _, key = backed_up
    other = make_worker(pg, minio, bucket, "orders")
    r = other.run("restore", "--object", key)
    assert r.returncode == 1 and "not a backup of database 'orders'" in r.error_lines[0]


def test_failed_restore_with_force_leaves_database_as_it_was(pg_pool, minio, bucket, make_worker):
    """The dump references a role the target server lacks: psql fails mid-way, after the force
    preamble already dropped the target's objects. All of it must roll back."""
    src = pg_pool.get(17)
    load(src, "ghostly")
    with src.connect() as c:
        c.execute("DROP ROLE IF EXISTS ghost; CREATE ROLE ghost")
    with src.connect("ghostly") as c:
        c.execute("CREATE TABLE public.zz_last (id int); ALTER TABLE public.zz_last OWNER TO ghost")
    w = make_worker(src, minio, bucket, "ghostly")
    assert w.run("backup").returncode == 0
    [entry] = json.loads(w.run("list", "--json").stdout)

    dst = pg_pool.get(18)
    before = _target_with_data(dst, "ghostly")
    wd = make_worker(dst, minio, bucket, "ghostly")
    r = wd.run("restore", "--object", entry["key"], "--force")
    assert r.returncode == 1
    [line] = r.error_lines
    assert "rolled back" in line and "ghost" in line
    with dst.connect("ghostly") as c:
        assert fingerprint_all(c) == before


def test_backup_before_restore_must_succeed_first(pg, minio, bucket, backed_up):
    w, key = backed_up
    before = _target_with_data(pg)
    # S3 refuses the pre-restore backup (bad storage class): the restore must not start.
    r = w.run(
        "restore",
        "--object",
        key,
        "--target-database",
        "target",
        "--force",
        "--backup-before-restore",
        "--storage-class",
        "NO_SUCH_CLASS",
    )
    assert r.returncode == 1
    assert "backup before restore failed" in r.error_lines[0]
    with pg.connect("target") as c:
        assert fingerprint_all(c) == before
    # and with a working S3 the pre-restore backup lands first, then the restore replaces the data
    r = w.run("restore", "--object", key, "--target-database", "target", "--force", "--backup-before-restore")
    assert r.returncode == 0, r.stderr
    pre = [k for k in json.loads(w.run("list", "--json", "--database", "target").stdout)]
    assert len(pre) == 1 and pre[0]["status"] == "complete"


def test_dry_run_only_verifies(pg, backed_up):
    w, key = backed_up
    before = _target_with_data(pg)
    r = w.run("restore", "--object", "latest", "--dry-run", "--target-database", "target")
    assert r.returncode == 0, r.stderr
    assert "object verified" in r.stderr
    with pg.connect("target") as c:
        assert fingerprint_all(c) == before


def test_run_id_restores_once(pg, backed_up):
    w, key = backed_up
    pg.create_database("target")
    r = w.run("restore", "--object", key, "--target-database", "target", "--run-id", "job-abc")
    assert r.returncode == 0, r.stderr
    with pg.connect("target") as c:
        c.execute("INSERT INTO sales.customers (name) VALUES ('written after the restore')")
    # the same Job re-created (TTL, manual delete + re-apply) must not restore over new writes
    r = w.run("restore", "--object", key, "--target-database", "target", "--run-id", "job-abc", "--force")
    # ...and must not exit 0 either: a Job showing Complete would say a restore happened
    assert r.returncode == 1, r.stderr
    assert len(r.error_lines) == 1 and "already restored" in r.stderr and "not restoring again" in r.stderr
    assert "job-abc" in r.stderr and ".cnpg-backup/restores/job-abc.json" in r.stderr
    with pg.connect("target") as c:
        assert (
            c.execute("SELECT count(*) FROM sales.customers WHERE name = 'written after the restore'").fetchone()[0]
            == 1
        )


def test_database_holding_only_types_is_not_empty(pg, backed_up):
    # An enum or a domain is user data too: counting only relations and functions once let such a
    # database pass as empty, and a failed parallel restore then dropped the type while "undoing".
    w, key = backed_up
    pg.create_database("typed")
    with pg.connect("typed") as c:
        c.execute("CREATE TYPE public.mood AS ENUM ('ok', 'sad'); CREATE DOMAIN public.posint AS int CHECK (VALUE > 0)")
    r = w.run("restore", "--object", key, "--target-database", "typed")
    assert r.returncode == 1
    [line] = r.error_lines
    assert "not empty (2 user objects)" in line
    with pg.connect("typed") as c:
        assert c.execute(
            "SELECT to_regtype('public.mood') IS NOT NULL, to_regtype('public.posint') IS NOT NULL"
        ).fetchone() == (True, True)


def test_a_second_restore_into_the_same_database_is_refused(pg, backed_up):
    """The declarative Job and a one-off restore-job at once: the second must not touch the
    database the first is restoring (it could empty it under the first)."""
    w, key = backed_up
    before = _target_with_data(pg, "busy_target")
    first = pg.connect("busy_target")  # holds the restore lock the way a running restore does
    first.execute("SELECT pg_advisory_lock(%s)", (0x636E7067,))
    try:
        r = w.run("restore", "--object", key, "--target-database", "busy_target", "--force")
    finally:
        first.close()
    assert r.returncode == 1
    [line] = r.error_lines
    assert "another restore into 'busy_target'" in line and "refused" in line
    assert "restore starting" not in r.stderr
    with pg.connect("busy_target") as c:
        assert fingerprint_all(c) == before
    r = w.run("restore", "--object", key, "--target-database", "busy_target", "--force")  # lock released
    assert r.returncode == 0, r.stderr


def test_backup_refuses_a_database_holding_a_partial_restore(pg, minio, bucket, make_worker):
    """A scheduled backup during (or after an interrupted) non-transactional restore would make the
    partial restore `latest`."""
    load(pg, "half")
    with pg.connect("half") as c:
        c.execute("CREATE TABLE public.cnpg_pgdump_backup_restore_incomplete (started_at timestamptz, object text)")
    w = make_worker(pg, minio, bucket, "half")
    r = w.run("backup")
    assert r.returncode == 1
    [line] = r.error_lines
    assert "holds a partial restore" in line and "backup refused" in line
    assert json.loads(w.run("list", "--json").stdout) == []


def test_restore_into_a_missing_database_says_how_and_create_makes_it(pg, backed_up):
    w, key = backed_up
    with pg.connect() as c:
        c.execute("DROP DATABASE IF EXISTS appdb_copy")
    r = w.run("restore", "--object", key, "--target-database", "appdb_copy")
    assert r.returncode == 1 and len(r.error_lines) == 1, r.stderr
    assert "target database 'appdb_copy' does not exist" in r.stderr and "--create" in r.stderr
    assert "cnpg.database" not in r.stderr  # the old hint named the wrong setting
    r = w.run("restore", "--object", key, "--target-database", "appdb_copy", "--create")
    assert r.returncode == 0, r.stderr
    assert "target database created" in r.stderr
    with pg.connect("appdb_copy") as c:
        assert c.execute("SELECT count(*) FROM sales.customers").fetchone()[0] > 0


def test_create_without_createdb_names_the_privilege(pg, backed_up, minio, bucket, make_worker):
    w, key = backed_up
    with pg.connect() as c:
        c.execute("DROP DATABASE IF EXISTS appdb_nopriv")
        c.execute("DROP ROLE IF EXISTS restorer")
        c.execute("CREATE ROLE restorer LOGIN PASSWORD 'restorer-pw-123' NOCREATEDB")
    r = w.run(
        "restore",
        "--object",
        key,
        "--target-database",
        "appdb_nopriv",
        "--create",
        PGUSER="restorer",
        PGPASSWORD="restorer-pw-123",
    )
    assert r.returncode == 1 and len(r.error_lines) == 1, r.stderr
    assert "role 'restorer' may not create database 'appdb_nopriv'" in r.stderr and "CREATEDB" in r.stderr
