"""Roles and globals (`pg_dumpall --globals-only`) on real servers: round trips PG 13 and 18 into a fresh
server, existing roles untouched, passwords only on request, failures that leave nothing behind."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import uuid

import pytest

from testsupport.servers import PostgresServer

pytestmark = pytest.mark.integration

ROLE_FACTS = """
SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication,
       r.rolconnlimit, r.rolvaliduntil, r.rolconfig, shobj_description(r.oid, 'pg_authid')
  FROM pg_roles r WHERE r.rolname LIKE %s ORDER BY 1
"""
MEMBERSHIPS = """
SELECT g.rolname, m.rolname, a.admin_option FROM pg_auth_members a
  JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
 WHERE m.rolname LIKE %s ORDER BY 1, 2
"""


def _facts(server: PostgresServer, like: str) -> tuple[list, list]:
    with server.connect() as c:
        return c.execute(ROLE_FACTS, (like,)).fetchall(), c.execute(MEMBERSHIPS, (like,)).fetchall()


def _password(server: PostgresServer, role: str) -> str | None:
    with server.connect() as c:
        row = c.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
        return row[0] if row else None


def _make_roles(server: PostgresServer, tag: str) -> None:
    with server.connect() as c:
        c.execute(f"CREATE ROLE g_{tag}_readers NOLOGIN")
        c.execute(f"COMMENT ON ROLE g_{tag}_readers IS 'read-only; multi\nline, with ''quotes'' and a ;'")
        c.execute(
            f'CREATE ROLE "G {tag} Alice" LOGIN CREATEDB CONNECTION LIMIT 5 '
            f"VALID UNTIL '2031-01-01 00:00:00+00' PASSWORD 'alice-Secret-{tag}'"
        )
        c.execute(f'GRANT g_{tag}_readers TO "G {tag} Alice" WITH ADMIN OPTION')
        c.execute(f'ALTER ROLE "G {tag} Alice" SET search_path TO app, public')
        c.execute(f"CREATE ROLE g_{tag}_writer LOGIN NOINHERIT PASSWORD 'writer-Secret-{tag}' IN ROLE g_{tag}_readers")
        c.execute(f"ALTER ROLE g_{tag}_writer SET statement_timeout TO '5min'")


def _globals_sql(minio, bucket: str, key: str) -> str:
    body = minio.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return gzip.decompress(body).decode()


@pytest.mark.parametrize("major", [13, 18])
def test_roles_round_trip_into_a_fresh_server(major, pg_pool, minio, bucket, make_worker):
    source = pg_pool.get(major)
    tag = f"rt{major}{uuid.uuid4().hex[:6]}"
    _make_roles(source, tag)
    source.create_database(f"db_{tag}")
    w = make_worker(source, minio, bucket, f"db_{tag}", prefix=f"prod/{tag}")

    r = w.run("backup", "--with-globals", "true")
    assert r.returncode == 0, r.stderr
    assert "globals backup complete" in r.stderr
    databases = json.loads(w.run("list", "--json").stdout)
    kept_apart = json.loads(w.run("list", "--globals", "--json").stdout)
    assert [d["key"].split("/")[-1].startswith(f"db_{tag}_") for d in databases] == [True]
    assert len(kept_apart) == 1 and kept_apart[0]["status"] == "complete" and not kept_apart[0]["role_passwords"]
    key = kept_apart[0]["key"]
    assert key.startswith(f"prod/{tag}/.globals/globals_") and key.endswith(".sql.gz")
    assert "roles and globals: 1 backup(s)" in w.run("list").stdout
    sql = _globals_sql(minio, bucket, key)
    assert f'CREATE ROLE "G {tag} Alice";' in sql
    assert "PASSWORD" not in sql and "SCRAM-SHA-256" not in sql and f"alice-Secret-{tag}" not in sql

    target = PostgresServer(major).start()
    try:
        superuser_before = _password(target, "postgres")
        t = make_worker(target, minio, bucket, "postgres", prefix=f"prod/{tag}")
        r = t.run("restore-globals", "--object", "latest", "--json")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert sorted(report["created"]) == sorted([f"G {tag} Alice", f"g_{tag}_readers", f"g_{tag}_writer"])
        assert "postgres" in report["existing"]
        assert _facts(target, f"%{tag}%") == _facts(source, f"%{tag}%")
        assert _password(target, "postgres") == superuser_before  # the bootstrap superuser's untouched
        assert _password(target, f"g_{tag}_writer") is None  # no passwords in the backup: none set

        # Again: everything exists now, nothing changes, nothing fails.
        r = t.run("restore-globals", "--object", key.rsplit("/", 1)[-1], "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["created"] == []
        assert _facts(target, f"%{tag}%") == _facts(source, f"%{tag}%")
    finally:
        target.destroy()


def test_existing_roles_keep_password_and_attributes(pg_pool, minio, bucket, make_worker):
    source = pg_pool.get(18)
    tag = f"ex{uuid.uuid4().hex[:6]}"
    _make_roles(source, tag)
    # a tablespace (skipped on restore: it needs a directory) and a parameter privilege (added)
    location = source.base / f"ts_{tag}"
    location.mkdir()
    if os.geteuid() == 0:  # the server runs as postgres
        shutil.chown(location, "postgres")
    with source.connect() as c:
        c.execute(f"CREATE TABLESPACE ts_{tag} LOCATION '{location}'")
        c.execute(f"GRANT SET ON PARAMETER work_mem TO g_{tag}_readers")
    w = make_worker(source, minio, bucket, "postgres", prefix=tag)
    try:
        r = w.run("backup-globals", "--globals-role-passwords", "true")
    finally:
        with source.connect() as c:
            c.execute(f"DROP TABLESPACE ts_{tag}")  # the server is shared: leave no tablespace behind
    assert r.returncode == 0, r.stderr
    [row] = json.loads(w.run("list", "--globals", "--json").stdout)
    assert row["role_passwords"] is True
    assert "SCRAM-SHA-256$" in _globals_sql(minio, bucket, row["key"])

    target = PostgresServer(18).start()
    try:
        with target.connect() as c:
            c.execute(f"CREATE ROLE g_{tag}_writer LOGIN INHERIT CONNECTION LIMIT 2 PASSWORD 'target-own-pw'")
            c.execute(f"ALTER ROLE g_{tag}_writer SET work_mem TO '4MB'")
        before = _password(target, f"g_{tag}_writer"), _password(target, "postgres")
        facts_before = _facts(target, f"g_{tag}_writer")[0]
        t = make_worker(target, minio, bucket, "postgres", prefix=tag)
        r = t.run("restore-globals", "--object", "latest", "--json")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert f"g_{tag}_writer" in report["existing"] and f"g_{tag}_readers" in report["created"]
        assert (_password(target, f"g_{tag}_writer"), _password(target, "postgres")) == before
        assert _facts(target, f"g_{tag}_writer")[0] == facts_before  # attributes and settings too
        # its membership was missing, so it is added
        assert (f"g_{tag}_readers", f"g_{tag}_writer", False) in _facts(target, f"g_{tag}_writer")[1]
        # a role the restore created has the source's password (hash)
        assert _password(target, f"G {tag} Alice") == _password(source, f"G {tag} Alice")
        assert [x for x in report["skipped"] if x.startswith(f"CREATE TABLESPACE ts_{tag} ")]
        assert f"globals restore: skipped CREATE TABLESPACE ts_{tag}" in r.stderr
        with target.connect() as c:
            assert c.execute("SELECT count(*) FROM pg_tablespace WHERE spcname = %s", (f"ts_{tag}",)).fetchone() == (0,)
            acl = c.execute("SELECT paracl::text FROM pg_parameter_acl WHERE parname = 'work_mem'").fetchone()
            assert acl and f"g_{tag}_readers=s/" in acl[0]
    finally:
        target.destroy()


def test_a_failure_midway_leaves_the_roles_as_they_were(pg_pool, minio, bucket, make_worker):
    source = pg_pool.get(18)
    tag = f"mid{uuid.uuid4().hex[:6]}"
    _make_roles(source, tag)
    w = make_worker(source, minio, bucket, "postgres", prefix=tag)
    assert w.run("backup-globals").returncode == 0

    target = PostgresServer(18).start()
    try:
        # The target already has Alice and readers, with the opposite membership: the backup's
        # `GRANT readers TO Alice`, after its CREATE ROLEs, is a circular membership and fails.
        with target.connect() as c:
            c.execute(f'CREATE ROLE "G {tag} Alice" LOGIN')
            c.execute(f'CREATE ROLE g_{tag}_readers IN ROLE "G {tag} Alice"')
        with target.connect() as c:
            roles_before = c.execute("SELECT rolname, oid FROM pg_roles ORDER BY 1").fetchall()
        t = make_worker(target, minio, bucket, "postgres", prefix=tag)
        r = t.run("restore-globals", "--object", "latest")
        assert r.returncode == 1
        assert "rolled back" in r.stderr and "is a member of" in r.stderr
        with target.connect() as c:
            assert c.execute("SELECT rolname, oid FROM pg_roles ORDER BY 1").fetchall() == roles_before
        assert _password(target, f"g_{tag}_writer") is None and f"g_{tag}_writer" not in str(roles_before)
    finally:
        target.destroy()


def test_pg_dumpall_failure_stores_nothing_and_says_why(pg_pool, minio, bucket, make_worker):
    server = pg_pool.get(13)
    tag = f"nosu{uuid.uuid4().hex[:6]}"
    with server.connect() as c:
        c.execute(f"CREATE ROLE g_{tag} LOGIN PASSWORD 'plain-user-pw'")
    server.create_database(f"db_{tag}")
    su = {"CNPG_BACKUP_SUPERUSER": f"g_{tag}", "CNPG_BACKUP_SUPERUSER_PASSWORD": "plain-user-pw"}
    w = make_worker(server, minio, bucket, f"db_{tag}", prefix=tag, **su)

    # Role passwords live in pg_authid, which only a superuser reads: pg_dumpall fails mid-way.
    r = w.run("backup", "--with-globals", "true", "--globals-role-passwords", "true")
    assert r.returncode == 1, r.stderr
    assert "the database backup is stored, but the globals backup failed" in r.stderr
    assert "pg_dumpall needs a superuser" in r.stderr and "plain-user-pw" not in r.stderr
    keys = [o["Key"] for o in minio.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not [k for k in keys if "/.globals/globals_" in k], keys
    assert json.loads(w.run("list", "--globals", "--json").stdout) == []
    assert len(json.loads(w.run("list", "--json").stdout)) == 1  # the database's backup stands
    status = w.run("status", "--json")
    assert "globals backup failed" in status.stdout  # monitoring sees the run as failed

    # Without passwords pg_dumpall reads pg_roles, which any role may: the same user succeeds.
    r = w.run("backup-globals")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(w.run("list", "--globals", "--json").stdout)) == 1


def test_restore_refuses_a_globals_key_and_restore_globals_a_database_key(pg, minio, bucket, make_worker):
    tag = f"ref{uuid.uuid4().hex[:6]}"
    pg.create_database(f"db_{tag}")
    w = make_worker(pg, minio, bucket, f"db_{tag}", prefix=tag)
    assert w.run("backup", "--with-globals", "true").returncode == 0
    [g] = json.loads(w.run("list", "--globals", "--json").stdout)
    [d] = json.loads(w.run("list", "--json").stdout)
    r = w.run("restore", "--object", g["key"], "--dry-run")
    assert r.returncode == 2 and "is a roles/globals backup" in r.stderr and "restore-globals" in r.stderr
    r = w.run("restore-globals", "--object", d["key"])
    assert r.returncode == 2 and "is not a globals backup" in r.stderr
    r = w.run("restore-globals", "--object", "latest", "--dry-run", "--json")
    assert r.returncode == 0 and "rolled back (dry run)" in r.stderr


def test_restore_with_globals_brings_the_owners_a_fresh_cluster_lacks(pg_pool, minio, bucket, make_worker):
    source = pg_pool.get(16)
    tag = f"own{uuid.uuid4().hex[:6]}"
    with source.connect() as c:
        c.execute(f"CREATE ROLE g_{tag}_owner NOLOGIN")
        c.execute(f"CREATE ROLE g_{tag}_reader NOLOGIN")
    source.create_database(f"db_{tag}")
    with source.connect(f"db_{tag}") as c:
        c.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        c.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g")
        c.execute(f"ALTER TABLE items OWNER TO g_{tag}_owner")
        c.execute(f"GRANT SELECT ON items TO g_{tag}_reader")
    w = make_worker(source, minio, bucket, f"db_{tag}", prefix=tag)
    assert w.run("backup", "--with-globals", "true").returncode == 0

    target = PostgresServer(16).start()
    try:
        target.create_database(f"db_{tag}")
        t = make_worker(target, minio, bucket, f"db_{tag}", prefix=tag)
        r = t.run("restore", "--object", "latest")
        assert r.returncode == 1 and f'role "g_{tag}_owner" does not exist' in r.stderr  # why --globals exists
        r = t.run("restore", "--object", "latest", "--globals")
        assert r.returncode == 0, r.stderr
        assert "globals restore complete" in r.stderr and "restore complete" in r.stderr
        with target.connect(f"db_{tag}") as c:
            owner = c.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'items'").fetchone()
            grants = c.execute(
                "SELECT grantee FROM information_schema.role_table_grants WHERE privilege_type = 'SELECT'"
                " AND table_name = 'items'"
            ).fetchall()
            assert owner == (f"g_{tag}_owner",) and (f"g_{tag}_reader",) in grants
            assert c.execute("SELECT count(*) FROM items").fetchone() == (100,)
    finally:
        target.destroy()


def test_retention_prunes_globals_by_the_database_rules_alongside_its_backups(pg, minio, bucket, make_worker):
    tag = f"ret{uuid.uuid4().hex[:6]}"
    pg.create_database(f"db_{tag}")
    w = make_worker(pg, minio, bucket, f"db_{tag}", prefix=tag)
    for _ in range(2):
        assert w.run("backup", "--with-globals", "true").returncode == 0
    assert w.run("backup-globals").returncode == 0
    assert len(json.loads(w.run("list", "--globals", "--json").stdout)) == 3
    r = w.run("prune", "--keep-daily", "1")  # one per day: the newest of each kind stays
    assert r.returncode == 0, r.stderr
    [kept] = json.loads(w.run("list", "--globals", "--json").stdout)
    [db] = json.loads(w.run("list", "--json").stdout)
    assert kept["status"] == "complete" and db["key"].split("/")[-1].startswith(f"db_{tag}_")
    # the scheduled backup prunes them too, with globals switched off since
    assert w.run("backup-globals").returncode == 0
    assert w.run("backup", "--keep-daily", "1").returncode == 0
    assert len(json.loads(w.run("list", "--globals", "--json").stdout)) == 1


def test_globals_are_encrypted_like_the_database_backups(pg_pool, minio, bucket, make_worker):
    """With encryption.recipients the roles (passwords included, here) are age ciphertext too, and
    restore-globals needs the identity."""
    from testsupport.servers import AGE_IDENTITY, AGE_RECIPIENT

    source = pg_pool.get(18)
    tag = f"enc{uuid.uuid4().hex[:6]}"
    _make_roles(source, tag)
    source.create_database(f"db_{tag}")
    w = make_worker(source, minio, bucket, f"db_{tag}", prefix=f"p/{tag}", CNPG_BACKUP_AGE_RECIPIENTS=AGE_RECIPIENT)
    r = w.run("backup", "--with-globals", "true", "--globals-role-passwords", "true")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(w.run("list", "--globals", "--json").stdout)
    assert entry["key"].endswith(".sql.gz.age")
    body = minio.client().get_object(Bucket=bucket, Key=entry["key"])["Body"].read()
    assert body.startswith(b"age-encryption.org/v1") and b"SCRAM-SHA-256" not in body

    target = PostgresServer(18).start()
    try:
        t = make_worker(target, minio, bucket, "postgres", prefix=f"p/{tag}")
        r = t.run("restore-globals", "--object", "latest", "--json")
        assert r.returncode != 0 and "no identity was given" in r.stderr
        assert _facts(target, f"%{tag}%") == ([], [])
        r = t.run("restore-globals", "--object", "latest", "--json", CNPG_BACKUP_AGE_IDENTITY=AGE_IDENTITY)
        assert r.returncode == 0, r.stderr
        assert _facts(target, f"%{tag}%") == _facts(source, f"%{tag}%")
        assert _password(target, f"g_{tag}_writer") == _password(source, f"g_{tag}_writer")
        assert AGE_IDENTITY not in r.stderr
    finally:
        target.destroy()
