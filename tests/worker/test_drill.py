"""Restore drills on real servers: the newest backup restored into a throw-away PostgreSQL the
worker starts itself, every table's row count compared with the backup's — passing on a good backup,
failing (one line, the table named) on one whose data was altered after it was taken, even when
whoever altered it also rewrote the checksums."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from testsupport.dataset import load
from testsupport.servers import setting

pytestmark = pytest.mark.integration


@pytest.fixture
def drill_env():
    # the worker looks for server binaries like it finds client tools; the image sets this too
    return {"CNPG_BACKUP_PG_SERVER_DIRS": setting("CNPG_TEST_PG_SERVER_DIRS")}


def _status(w) -> dict:
    r = w.run("status", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_drill_passes_on_a_good_backup(pg, minio, bucket, make_worker, drill_env, fmt):
    load(pg, f"drill_{fmt}")
    w = make_worker(
        pg, minio, bucket, f"drill_{fmt}", CNPG_BACKUP_FORMAT=fmt, CNPG_BACKUP_RECORD_ROW_COUNTS="true", **drill_env
    )
    assert w.run("backup").returncode == 0
    before = {r[0] for r in pg.connect("postgres").execute("SELECT datname FROM pg_database").fetchall()}
    r = w.run("drill")
    assert r.returncode == 0, r.stderr
    assert "drill passed" in r.stderr
    drill = _status(w)["drill"]
    assert drill["outcome"] == "success" and drill["mismatches"] == 0 and drill["tables"] >= 3 and drill["rows"] > 1000
    # nothing was created on the production server: the drill has its own
    after = {r[0] for r in pg.connect("postgres").execute("SELECT datname FROM pg_database").fetchall()}
    assert after == before
    [entry] = json.loads(w.run("list", "--json").stdout)
    m = json.loads(minio.client().get_object(Bucket=bucket, Key=entry["key"] + ".manifest.json")["Body"].read())
    # the backup's own manifest records that it was proven restorable
    assert [d["outcome"] for d in m["extra"]["drills"]] == ["success"] and m["extra"]["drills"][0]["tables"] >= 3
    if fmt == "plain":  # the counts came from the backup itself, taken in pg_dump's snapshot
        assert sum(m["extra"]["row_counts"].values()) == drill["rows"]
        with pg.connect(f"drill_{fmt}") as c:
            assert (
                m["extra"]["row_counts"]["sales.orders"] == c.execute("SELECT count(*) FROM sales.orders").fetchone()[0]
            )
    assert w.run("check", "--max-age", "1h").returncode == 0


def test_drill_fails_on_altered_data_naming_the_table(pg, minio, bucket, make_worker, drill_env):
    load(pg, "drill_tamper")
    w = make_worker(pg, minio, bucket, "drill_tamper", CNPG_BACKUP_RECORD_ROW_COUNTS="true", **drill_env)
    assert w.run("backup").returncode == 0
    [entry] = json.loads(w.run("list", "--json").stdout)
    s3 = minio.client()
    key = entry["key"]
    sql = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    # drop one row of sales.orders' COPY data, then rewrite the object AND its manifest's checksum
    start = sql.index(b"COPY sales.orders ")
    first_row = sql.index(b"\n", start) + 1
    second_row = sql.index(b"\n", first_row) + 1
    altered = gzip.compress(sql[:first_row] + sql[second_row:])
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key + ".manifest.json")["Body"].read())
    manifest.update(sha256=hashlib.sha256(altered).hexdigest(), object_bytes=len(altered))
    s3.put_object(Bucket=bucket, Key=key, Body=altered)
    s3.put_object(Bucket=bucket, Key=key + ".manifest.json", Body=json.dumps(manifest).encode())

    r = w.run("drill")
    assert r.returncode == 1, r.stderr
    assert len(r.error_lines) == 1, r.stderr
    assert "table sales.orders has" in r.stderr and "the backup holds" in r.stderr
    drill = _status(w)["drill"]
    assert drill["outcome"] == "failure" and "sales.orders" in drill["error"]
    bad = w.run("check", "--max-age", "1h")
    assert bad.returncode == 1 and "restore drill failed" in bad.stdout, bad.stdout


def test_drill_without_server_binaries_is_one_clear_line(pg, minio, bucket, make_worker):
    load(pg, "drill_nobin")
    w = make_worker(pg, minio, bucket, "drill_nobin", CNPG_BACKUP_PG_SERVER_DIRS="/nonexistent")
    assert w.run("backup").returncode == 0
    r = w.run("drill")
    assert r.returncode == 1 and len(r.error_lines) == 1, r.stderr
    assert "no PostgreSQL server >= 17 here" in r.stderr and "Traceback" not in r.stderr


def test_drill_counts_a_backup_made_without_recorded_counts(pg, minio, bucket, make_worker, drill_env):
    """Backups taken before drills were enabled carry no counts: the drill counts the verified object."""
    load(pg, "drill_nocounts")
    w = make_worker(pg, minio, bucket, "drill_nocounts", **drill_env)
    assert w.run("backup").returncode == 0
    [entry] = json.loads(w.run("list", "--json").stdout)
    m = json.loads(minio.client().get_object(Bucket=bucket, Key=entry["key"] + ".manifest.json")["Body"].read())
    assert "row_counts" not in m["extra"]
    r = w.run("drill")
    assert r.returncode == 0, r.stderr
    drill = _status(w)["drill"]
    with pg.connect("drill_nocounts") as c:
        orders = c.execute("SELECT count(*) FROM sales.orders").fetchone()[0]
    assert drill["tables"] >= 3 and drill["rows"] >= orders > 0


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_drill_of_encrypted_backups_decrypts_with_the_identity(pg, minio, bucket, make_worker, drill_env, fmt):
    """Row counts read back from the ciphertext (no counts recorded: the drill scans the object)."""
    from testsupport.servers import AGE_IDENTITY, AGE_RECIPIENT

    db = f"drill_age_{fmt}"
    load(pg, db)
    w = make_worker(
        pg, minio, bucket, db, CNPG_BACKUP_FORMAT=fmt, CNPG_BACKUP_AGE_RECIPIENTS=AGE_RECIPIENT, **drill_env
    )
    assert w.run("backup").returncode == 0
    r = w.run("drill")  # without the identity: fails, and says why
    assert r.returncode != 0 and "is encrypted (age) and no identity was given" in r.stderr
    assert _status(w)["drill"]["outcome"] == "failure"
    r = w.run("drill", CNPG_BACKUP_AGE_IDENTITY=AGE_IDENTITY)
    assert r.returncode == 0, r.stderr
    drill = _status(w)["drill"]
    assert drill["outcome"] == "success" and drill["tables"] >= 3 and drill["rows"] > 1000
    assert AGE_IDENTITY not in r.stderr
