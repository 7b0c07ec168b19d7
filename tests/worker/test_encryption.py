"""Client-side encryption (age) end to end on real servers: the object holds only ciphertext, the
manifest records the recipients and the ciphertext's SHA-256, and a restore with the right identity
gives the database back; a wrong, missing or damaged key/object is refused before the target is
touched, and the identity never appears in the output."""

from __future__ import annotations

import hashlib
import json

import pytest

from testsupport.dataset import fingerprint, load
from worker import crypt

pytestmark = pytest.mark.integration

AGE_MAGIC = b"age-encryption.org/v1"


@pytest.fixture(scope="module")
def keys():
    return [crypt.generate() for _ in range(3)]  # (identity, public key)


def _backup(server, minio, bucket, make_worker, keys, *extra: str):
    load(server, "shop")
    with server.connect("shop") as c:
        before = fingerprint(c)
    w = make_worker(server, minio, bucket, "shop", CNPG_BACKUP_AGE_RECIPIENTS=f"{keys[0][1]}, {keys[1][1]}")
    r = w.run("backup", *extra)
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(w.run("list", "--json").stdout)
    return w, entry["key"], before


def _object(minio, bucket, key) -> bytes:
    return minio.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def _manifest(minio, bucket, key) -> dict:
    return json.loads(_object(minio, bucket, key + ".manifest.json"))


@pytest.mark.parametrize(
    ("major", "args", "suffix"),
    [
        (18, (), ".sql.gz.age"),
        (18, ("--compression", "zstd"), ".sql.zst.age"),
        (13, ("--format", "custom"), ".dump.age"),
    ],
)
def test_encrypted_round_trip(major, args, suffix, pg_pool, minio, bucket, make_worker, keys):
    server = pg_pool.get(major)
    w, key, before = _backup(server, minio, bucket, make_worker, keys, *args)
    assert key.endswith(suffix)
    body = _object(minio, bucket, key)
    assert body.startswith(AGE_MAGIC)
    assert b"CREATE TABLE" not in body and b"PGDMP" not in body
    m = _manifest(minio, bucket, key)
    assert m["encryption"] == {"scheme": "age", "recipients": [keys[0][1], keys[1][1]]}
    assert m["sha256"] == hashlib.sha256(body).hexdigest() and m["object_bytes"] == len(body)

    # the second recipient's identity, from the Secret's variable
    server.create_database("shop_restored")
    r = w.run(
        "restore", "--object", "latest", "--target-database", "shop_restored", CNPG_BACKUP_AGE_IDENTITY=keys[1][0]
    )
    assert r.returncode == 0, r.stderr
    assert "checked=age," in r.stderr
    assert keys[1][0] not in r.stderr + r.stdout
    with server.connect("shop_restored") as c:
        assert fingerprint(c) == before


def test_identity_file_and_backup_before_restore_stay_encrypted(pg, minio, bucket, make_worker, keys, tmp_path):
    w, key, before = _backup(pg, minio, bucket, make_worker, keys)
    f = tmp_path / "age.key"
    f.write_text(f"# public key: {keys[0][1]}\n{keys[0][0]}\n")
    r = w.run("restore", "--object", key, "--identity-file", str(f), "--force", "--backup-before-restore")
    assert r.returncode == 0, r.stderr
    listed = json.loads(w.run("list", "--json").stdout)
    assert len(listed) == 2 and all(e["key"].endswith(".sql.gz.age") for e in listed)
    with pg.connect("shop") as c:
        assert fingerprint(c) == before


def _target(server, name="target"):
    server.create_database(name)
    with server.connect(name) as c:
        c.execute("CREATE TABLE keep_me (id int); INSERT INTO keep_me SELECT generate_series(1, 10)")
        return _contents(c)


def _contents(conn):
    tables = conn.execute(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY 1"
    ).fetchall()
    return tables, conn.execute("SELECT sum(id) FROM keep_me").fetchone()


def _unchanged(server, name, before):
    with server.connect(name) as c:
        assert _contents(c) == before


def test_wrong_identity_is_refused_before_the_target_is_touched(pg, minio, bucket, make_worker, keys):
    w, key, _ = _backup(pg, minio, bucket, make_worker, keys)
    before = _target(pg)
    r = w.run("restore", "--object", key, "--target-database", "target", "--force", CNPG_BACKUP_AGE_IDENTITY=keys[2][0])
    assert r.returncode != 0
    assert len(r.error_lines) == 1, r.stderr
    assert "is encrypted for other age recipients" in r.stderr and "Traceback" not in r.stderr
    assert keys[2][0] not in r.stderr
    _unchanged(pg, "target", before)


def test_missing_identity_is_refused_before_anything(pg, minio, bucket, make_worker, keys):
    w, key, _ = _backup(pg, minio, bucket, make_worker, keys)
    before = _target(pg)
    r = w.run("restore", "--object", "latest", "--target-database", "target", "--force")
    assert r.returncode != 0
    assert "is encrypted (age) and no identity was given" in r.stderr
    assert "object verified" not in r.stderr
    _unchanged(pg, "target", before)


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_ciphertext_with_a_matching_manifest_is_refused(damage, pg, minio, bucket, make_worker, keys):
    """Even when the manifest's checksum is made to match, age's authentication catches it."""
    w, key, _ = _backup(pg, minio, bucket, make_worker, keys)
    body = bytearray(_object(minio, bucket, key))
    if damage == "truncated":
        body = body[: len(body) - 100]
    else:
        body[len(body) // 2] ^= 0x40
    s3 = minio.client()
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    m = _manifest(minio, bucket, key)
    m.update(sha256=hashlib.sha256(body).hexdigest(), object_bytes=len(body))
    s3.put_object(Bucket=bucket, Key=key + ".manifest.json", Body=json.dumps(m).encode())
    before = _target(pg)
    r = w.run("restore", "--object", key, "--target-database", "target", "--force", CNPG_BACKUP_AGE_IDENTITY=keys[0][0])
    assert r.returncode != 0
    assert "fails age decryption" in r.stderr, r.stderr
    _unchanged(pg, "target", before)


def test_a_bad_recipient_fails_the_backup_before_any_upload(pg, minio, bucket, make_worker):
    load(pg, "shop")
    w = make_worker(pg, minio, bucket, "shop", CNPG_BACKUP_AGE_RECIPIENTS="age1definitelynotakey")
    r = w.run("backup")
    assert r.returncode != 0 and "is not an age recipient" in r.stderr
    # only the failed run's status record: no object, no upload
    keys = [o["Key"] for o in minio.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["backups/.cnpg-backup/status/shop.json"]
    assert not minio.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
