"""A parallel backup of one database (`--dump-jobs N`): N pg_dump processes on one snapshot, each
streaming its part to S3; restored whole, in one transaction or with parallel pg_restore."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from testsupport.dataset import fingerprint, load
from testsupport.helpers import keys, open_uploads
from testsupport.servers import AGE_IDENTITY, AGE_RECIPIENT
from worker.manifest import Manifest

pytestmark = pytest.mark.integration

CUSTOM = {"CNPG_BACKUP_FORMAT": "custom"}

# Tables large enough to get parts of their own (worker/parallel.py MIN_SPLIT_BYTES is 1 MiB), odd
# names among them, each next to a decoy that a pattern read as a wildcard or as schema.table would
# also match: `a*b` vs `axb`, `x.y` vs x.y; a foreign key from part 0's table into another part's;
# a partitioned table whose leaves are split; large objects (part 0).
PARALLEL_SQL = r"""
CREATE TABLE public."a*b" (id bigint PRIMARY KEY, v text);
INSERT INTO public."a*b" SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 36000) g;
CREATE TABLE public.axb (id int PRIMARY KEY, v text);
INSERT INTO public.axb SELECT g, 'decoy ' || g FROM generate_series(1, 50) g;
CREATE TABLE public."x.y" (id bigint PRIMARY KEY, v text);
INSERT INTO public."x.y" SELECT g, repeat(md5((g * 7)::text), 3) FROM generate_series(1, 30000) g;
CREATE SCHEMA x;
CREATE TABLE x.y (id int PRIMARY KEY, v text);
INSERT INTO x.y SELECT g, 'decoy ' || g FROM generate_series(1, 50) g;
CREATE TABLE public."Quo""te" (id bigint PRIMARY KEY, v text);
INSERT INTO public."Quo""te" SELECT g, repeat(md5((g * 3)::text), 3) FROM generate_series(1, 24000) g;
CREATE TABLE public.child (id bigint PRIMARY KEY, parent bigint NOT NULL REFERENCES public."x.y"(id), v text);
INSERT INTO public.child SELECT g, 1 + g % 30000, md5(g::text) FROM generate_series(1, 20000) g;
CREATE TABLE public.events (id bigint, at date NOT NULL, v text) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.events SELECT g, date '2024-01-01' + (g % 700), repeat(md5(g::text), 2)
  FROM generate_series(1, 30000) g;
SELECT lo_from_bytea(0, convert_to(repeat('large object ' || g, 1000), 'UTF8')) FROM generate_series(1, 3) g;
"""


def _load_parallel(server, db: str) -> None:
    load(server, db)
    with server.connect(db) as c:
        c.execute(PARALLEL_SQL)
        c.execute("ANALYZE")


def _state(server, db: str) -> dict[str, str]:
    with server.connect(db) as c:
        out = fingerprint(c)
        los = c.execute("SELECT oid, lo_get(oid) FROM pg_largeobject_metadata ORDER BY 1").fetchall()
        out["large objects"] = hashlib.sha256(b"".join(bytes(d) for _, d in los)).hexdigest() + f" x{len(los)}"
        out["fk"] = str(
            c.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'child_parent_fkey'").fetchone()[0]
        )
        return out


def _manifest(minio, bucket: str, key: str) -> dict:
    body = minio.client().get_object(Bucket=bucket, Key=key + ".manifest.json")["Body"].read()
    return json.loads(body)


@pytest.mark.parametrize("major", [13, 18])
def test_parallel_round_trip(major, pg_pool, minio, bucket, make_worker):
    server = pg_pool.get(major)
    _load_parallel(server, "par")
    w = make_worker(server, minio, bucket, "par", **CUSTOM)
    r = w.run("backup", "--dump-jobs", "3")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(w.run("list", "--json").stdout)
    assert entry["status"] == "complete" and entry["parts"] == 3, entry
    m = _manifest(minio, bucket, entry["key"])
    assert [p["key"] for p in m["parts"]] == [entry["key"] + ".part1", entry["key"] + ".part2"]
    assert entry["bytes"] == m["object_bytes"] + sum(p["object_bytes"] for p in m["parts"])  # list: every part
    # a worker that predates parts drops the field it does not know: to it the backup is not complete
    old = Manifest.from_json(json.dumps({k: v for k, v in m.items() if k != "parts"}).encode())
    assert Manifest.from_json(json.dumps(m).encode()).complete and not old.complete
    split = [t for p in m["parts"] for t in p["tables"]]
    # the odd names got parts of their own, and each table is in one part only
    assert {"public.a*b", "public.x.y"} <= set(split) and len(split) == len(set(split)), m["parts"]
    assert "public.axb" not in split and "x.y" not in split
    assert sorted(keys(minio, bucket, "backups/par_")) == sorted(
        [entry["key"], entry["key"] + ".manifest.json"] + [p["key"] for p in m["parts"]]
    )
    want = _state(server, "par")
    # the transaction path (one psql transaction for every part) and the parallel pg_restore path
    for target, jobs in (("par_tx", "1"), ("par_jobs", "4")):
        server.create_database(target)
        r = w.run("restore", "--object", "latest", "--target-database", target, "--jobs", jobs)
        assert r.returncode == 0, r.stderr
        assert ("path=transaction" if jobs == "1" else "path=pg_restore") in r.stderr, r.stderr
        assert _state(server, target) == want, target
    # a forced restore over a non-empty database: one transaction again
    r = w.run("restore", "--object", "latest", "--target-database", "par_tx", "--force")
    assert r.returncode == 0, r.stderr
    assert _state(server, "par_tx") == want


def test_parallel_encrypted_round_trip(pg, minio, bucket, make_worker):
    _load_parallel(pg, "parage")
    w = make_worker(
        pg,
        minio,
        bucket,
        "parage",
        CNPG_BACKUP_AGE_RECIPIENTS=AGE_RECIPIENT,
        CNPG_BACKUP_AGE_IDENTITY=AGE_IDENTITY,
        **CUSTOM,
    )
    r = w.run("backup", "--dump-jobs", "2")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(w.run("list", "--json").stdout)
    assert entry["key"].endswith(".dump.age") and entry["parts"] == 2
    m = _manifest(minio, bucket, entry["key"])
    for key in [entry["key"], m["parts"][0]["key"]]:
        head = minio.client().get_object(Bucket=bucket, Key=key, Range="bytes=0-20")["Body"].read()
        assert head.startswith(b"age-encryption.org/v1"), key  # every part is ciphertext
    pg.create_database("parage_copy")
    r = w.run("restore", "--object", "latest", "--target-database", "parage_copy")
    assert r.returncode == 0, r.stderr
    assert _state(pg, "parage_copy") == _state(pg, "parage")
    r = w.run("restore", "--object", "latest", "--dry-run", CNPG_BACKUP_AGE_IDENTITY="")
    assert r.returncode != 0 and "identity" in r.stderr.lower(), r.stderr


def test_plain_format_with_jobs_is_refused(pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "postgres")
    r = w.run("backup", "--dump-jobs", "2")
    assert r.returncode == 2, r.stderr
    assert "--dump-jobs 2 needs the custom format" in r.stderr and "backup.format" in r.stderr


def test_missing_or_corrupt_part_refuses_before_touching_target(pg, minio, bucket, make_worker):
    _load_parallel(pg, "parbad")
    w = make_worker(pg, minio, bucket, "parbad", **CUSTOM)
    assert w.run("backup", "--dump-jobs", "2").returncode == 0
    [entry] = json.loads(w.run("list", "--json").stdout)
    part = _manifest(minio, bucket, entry["key"])["parts"][0]["key"]
    pg.create_database("parbad_t")
    with pg.connect("parbad_t") as c:
        c.execute("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (1)")
    s3 = minio.client()
    data = bytearray(s3.get_object(Bucket=bucket, Key=part)["Body"].read())
    data[len(data) // 2] ^= 0xFF  # same size, one byte off: only the SHA-256 sees it
    s3.put_object(Bucket=bucket, Key=part, Body=bytes(data))
    r = w.run("restore", "--object", entry["key"], "--target-database", "parbad_t", "--force")
    assert r.returncode == 1 and "fails its checksum" in r.stderr and part in r.stderr, r.stderr
    s3.delete_object(Bucket=bucket, Key=part)
    [entry] = json.loads(w.run("list", "--json").stdout)
    assert entry["status"] == "incomplete"  # a part is gone: not complete, `latest` passes over it
    r = w.run("restore", "--object", entry["key"], "--target-database", "parbad_t", "--force")
    assert r.returncode == 1 and "is missing" in r.stderr, r.stderr
    r = w.run("restore", "--object", "latest", "--target-database", "parbad_t", "--force")
    assert r.returncode == 1 and "no complete backup" in r.stderr, r.stderr
    with pg.connect("parbad_t") as c:
        assert c.execute("SELECT count(*) FROM keep_me").fetchone()[0] == 1
        assert c.execute("SELECT to_regclass('public.child')").fetchone()[0] is None


def test_part_zero_without_manifest_is_never_restored_alone(pg, minio, bucket, make_worker):
    """A SIGKILL between part 0's completion and its manifest leaves part 0 without one: the chart's
    --allow-unverified escape hatch must not restore it without the other parts' tables."""
    _load_parallel(pg, "parhead")
    w = make_worker(pg, minio, bucket, "parhead", **CUSTOM)
    assert w.run("backup", "--dump-jobs", "2").returncode == 0
    [entry] = json.loads(w.run("list", "--json").stdout)
    minio.client().delete_object(Bucket=bucket, Key=entry["key"] + ".manifest.json")
    [entry] = json.loads(w.run("list", "--json").stdout)
    assert entry["status"] == "unverified (no manifest)"
    pg.create_database("parhead_t")
    r = w.run("restore", "--object", entry["key"], "--target-database", "parhead_t", "--allow-unverified")
    assert r.returncode == 1 and "never finished" in r.stderr, r.stderr
    with pg.connect("parhead_t") as c:
        assert c.execute("SELECT count(*) FROM pg_class WHERE relname = 'child'").fetchone()[0] == 0


def test_prune_deletes_parts_with_their_backup(pg, minio, bucket, make_worker):
    _load_parallel(pg, "parprune")
    w = make_worker(pg, minio, bucket, "parprune", **CUSTOM)
    for _ in range(2):
        assert w.run("backup", "--dump-jobs", "2").returncode == 0
        time.sleep(1.1)  # the next backup in another second
    older, newer = sorted(e["key"] for e in json.loads(w.run("list", "--json").stdout))
    r = w.run("prune", "--keep-daily", "1")
    assert r.returncode == 0, r.stderr
    left = keys(minio, bucket, "backups/parprune_")
    assert not [k for k in left if k.startswith(older)], left
    assert sorted(left) == sorted([newer, newer + ".manifest.json", newer + ".part1"])


def test_consistent_under_concurrent_transfers(pg, minio, bucket, make_worker):
    """Money moves between two tables dumped by DIFFERENT pg_dump processes while the backup runs;
    one shared snapshot keeps the total constant in the restored copy."""
    pg.create_database("bank")
    with pg.connect("bank") as c:
        for t in ("accounts_a", "accounts_b"):
            c.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, balance bigint NOT NULL, pad text)")
            c.execute(f"INSERT INTO {t} SELECT g, 1000, repeat(md5(g::text), 4) FROM generate_series(1, 12000) g")
        total = c.execute("SELECT (SELECT sum(balance) FROM accounts_a) + (SELECT sum(balance) FROM accounts_b)")
        total = total.fetchone()[0]
    stop = threading.Event()
    moved = [0]

    def transfers() -> None:
        with pg.connect("bank") as c:
            while not stop.is_set():
                with c.transaction():
                    a = 1 + moved[0] * 7919 % 12000
                    c.execute("UPDATE accounts_a SET balance = balance - 5 WHERE id = %s", (a,))
                    c.execute("UPDATE accounts_b SET balance = balance + 5 WHERE id = %s", (a,))
                moved[0] += 1

    t = threading.Thread(target=transfers, daemon=True)
    t.start()
    try:
        while moved[0] < 50:
            time.sleep(0.05)
        w = make_worker(pg, minio, bucket, "bank", **CUSTOM)
        before = moved[0]
        r = w.run("backup", "--dump-jobs", "2", "--compression-level", "9")
        during = moved[0] - before
    finally:
        stop.set()
        t.join(timeout=10)
    assert r.returncode == 0, r.stderr
    assert during > 20, f"only {during} transfers during the backup: the test proves nothing"
    [entry] = json.loads(w.run("list", "--json").stdout)
    m = _manifest(minio, bucket, entry["key"])
    [part1] = m["parts"]
    # the two tables are in different parts: accounts_a's data in part 1, accounts_b's in part 0
    assert len(part1["tables"]) == 1 and part1["tables"][0] in ("public.accounts_a", "public.accounts_b")
    pg.create_database("bank_copy")
    r = w.run("restore", "--object", "latest", "--target-database", "bank_copy", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    with pg.connect("bank_copy") as c:
        got = c.execute("SELECT (SELECT sum(balance) FROM accounts_a) + (SELECT sum(balance) FROM accounts_b)")
        assert got.fetchone()[0] == total
        moved_in_copy = c.execute("SELECT count(*) FROM accounts_a WHERE balance <> 1000").fetchone()[0]
    assert moved_in_copy > 0  # the copy holds transfers: the snapshot was taken mid-workload


def test_open_uploads_helper_sees_none_after_success(pg, minio, bucket, make_worker):
    _load_parallel(pg, "parok")
    w = make_worker(pg, minio, bucket, "parok", **CUSTOM)
    assert w.run("backup", "--dump-jobs", "4").returncode == 0
    assert open_uploads(minio, bucket) == []
    assert not [k for k in keys(minio, bucket, "backups/.cnpg-backup/") if "/uploads/" in k or "/keys/" in k]


def test_drill_sums_row_counts_over_parts(pg, minio, bucket, make_worker):
    from testsupport.servers import setting

    _load_parallel(pg, "pardrill")
    w = make_worker(
        pg, minio, bucket, "pardrill", CNPG_BACKUP_PG_SERVER_DIRS=setting("CNPG_TEST_PG_SERVER_DIRS"), **CUSTOM
    )
    assert w.run("backup", "--dump-jobs", "3").returncode == 0
    r = w.run("drill")
    assert r.returncode == 0, r.stderr
    drill = json.loads(w.run("status", "--json").stdout)["drill"]
    with pg.connect("pardrill") as c:
        tables = c.execute(
            "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables WHERE relname <> 'events'"
        ).fetchall()
        rows = sum(c.execute(f"SELECT count(*) FROM ONLY {t}").fetchone()[0] for (t,) in tables)
    # every table's rows, the split ones included (a part missed would show as a mismatch or fewer rows)
    assert drill["outcome"] == "success" and drill["mismatches"] == 0 and drill["rows"] == rows, (drill, rows)


def test_a_locked_split_table_fails_the_backup_cleanly(pg, minio, bucket, make_worker):
    _load_parallel(pg, "parlock")
    w = make_worker(pg, minio, bucket, "parlock", CNPG_BACKUP_LOCK_WAIT_TIMEOUT="1", **CUSTOM)
    with pg.connect("parlock") as holder:
        holder.autocommit = False
        holder.execute('LOCK TABLE public."a*b" IN ACCESS EXCLUSIVE MODE')  # an ALTER TABLE in progress
        r = w.run("backup", "--dump-jobs", "2")
        holder.rollback()
    assert r.returncode == 1, r.stderr
    [line] = [ln for ln in r.stderr.splitlines() if " ERROR " in ln]
    assert "could not plan a parallel backup" in line and "lock timeout" in line and "lockWaitTimeoutSeconds" in line, (
        line
    )
    assert open_uploads(minio, bucket) == []
    assert [k for k in keys(minio, bucket, "backups/") if "/.cnpg-backup/" not in k] == []


def test_prune_removes_orphan_parts_once_they_are_old(pg, minio, bucket, make_worker):
    """A worker killed after part 1 completed but before part 0 did leaves part 1 alone: never listed,
    kept while it may belong to a running backup, removed by prune once older than the orphan age."""
    _load_parallel(pg, "parorphan")
    w = make_worker(pg, minio, bucket, "parorphan", **CUSTOM)
    assert w.run("backup", "--dump-jobs", "2").returncode == 0
    [entry] = json.loads(w.run("list", "--json").stdout)
    s3 = minio.client()
    s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": entry["key"]}, {"Key": entry["key"] + ".manifest.json"}]}
    )
    orphan = entry["key"] + ".part1"
    assert json.loads(w.run("list", "--json").stdout) == []
    assert w.run("prune", "--retention-days", "30").returncode == 0
    assert orphan in keys(minio, bucket, "backups/")  # younger than a day: a running backup's, perhaps
    time.sleep(1.5)
    r = w.run("prune", "--retention-days", "30", CNPG_BACKUP_ORPHAN_PART_SECONDS="1")
    assert r.returncode == 0 and "deleting orphan part" in r.stderr, r.stderr
    assert orphan not in keys(minio, bucket, "backups/")
