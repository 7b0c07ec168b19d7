"""The generated IAM policies and lifecycle rules (`python -m app iam-policy`, `lifecycle`) on a real
MinIO, which enforces IAM policies: a user holding ONLY the backup policy backs up and prunes, one
holding ONLY the restore policy restores but can neither back up nor delete, and neither reads
anything outside its database's objects."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import botocore.exceptions
import pytest

from app import aws_lifecycle, aws_policy
from app.config import S3, Backup, Cnpg, Config
from testsupport.dataset import fingerprint, load
from testsupport.helpers import keys
from testsupport.minio_admin import MinioUsers
from testsupport.servers import setting

pytestmark = pytest.mark.integration

PREFIX = "prod/shop"
DATABASE = "iamshop"
OTHER_KEY = "other/otherdb_2024-01-01_00-00-00.sql.gz"  # another database's backup, same bucket


def _config(bucket: str, **backup: int) -> Config:
    return Config(
        cnpg=Cnpg(secret_name="shop-app", database=DATABASE),
        s3=S3(bucket=bucket, prefix=PREFIX),
        backup=Backup(**backup),
    )


@pytest.fixture
def users(minio):
    u = MinioUsers(minio)
    yield u
    u.remove_all()


@pytest.fixture
def shop(pg, minio, bucket):
    """The database, and a bucket that also holds another database's backup."""
    load(pg, DATABASE)
    minio.client().put_object(Bucket=bucket, Key=OTHER_KEY, Body=b"someone else's backup")
    return pg


def _user(users: MinioUsers, bucket: str, role: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    document = aws_policy.policy(_config(bucket), role)  # type: ignore[arg-type]
    return users.add(f"{role}-{tag}", f"secret-{tag}-{role}", f"cnpg-{role}-{tag}", document)


def _denied(call) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call()
    assert err.value.response["Error"]["Code"] == "AccessDenied", err.value.response["Error"]


def _outside_is_denied(s3, bucket: str) -> None:
    _denied(lambda: s3.get_object(Bucket=bucket, Key=OTHER_KEY))
    _denied(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="other/"))
    _denied(lambda: s3.list_objects_v2(Bucket=bucket))  # the whole bucket
    _denied(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/"))  # only `<db>_` and the records
    _denied(lambda: s3.put_object(Bucket=bucket, Key="other/otherdb_2099-01-01_00-00-00.sql.gz", Body=b"x"))
    _denied(lambda: s3.put_object(Bucket=bucket, Key=f"{PREFIX}/unrelated.txt", Body=b"x"))
    _denied(lambda: s3.delete_object(Bucket=bucket, Key=OTHER_KEY))


def _plant_abandoned_upload(minio, bucket: str) -> tuple[str, str]:
    """A multipart upload a killed worker left behind, with its (long stale) heartbeat marker."""
    s3 = minio.client()
    key = f"{PREFIX}/{DATABASE}_2020-01-02_00-00-00.sql.gz"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    marker = f"{PREFIX}/.cnpg-backup/uploads/{hashlib.sha256(upload_id.encode()).hexdigest()[:24]}.json"
    doc = {"key": key, "upload_id": upload_id, "host": "gone", "pid": 1, "heartbeat": "2020-01-02T00:00:00+00:00"}
    s3.put_object(Bucket=bucket, Key=marker, Body=json.dumps(doc).encode())
    return key, marker


def test_backup_policy_alone_backs_up_prunes_drills_and_reads_nothing_else(shop, minio, bucket, users, make_worker):
    creds = _user(users, bucket, "backup")
    old = f"{PREFIX}/{DATABASE}_2020-01-01_00-00-00.sql.gz"  # a chart-era backup, due for retention
    minio.client().put_object(Bucket=bucket, Key=old, Body=b"old")
    upload_key, marker = _plant_abandoned_upload(minio, bucket)
    drill = {"CNPG_BACKUP_PG_SERVER_DIRS": setting("CNPG_TEST_PG_SERVER_DIRS"), "CNPG_BACKUP_RECORD_ROW_COUNTS": "true"}
    w = make_worker(shop, minio, bucket, DATABASE, prefix=PREFIX, CNPG_BACKUP_RETENTION_DAYS="1", **drill, **creds)

    r = w.run("backup", "--with-globals", "true")  # the roles too: P/.globals/ is in the policy
    assert r.returncode == 0, r.stderr
    listed = json.loads(w.run("list", "--json").stdout)
    assert [e["status"] for e in listed] == ["complete"], listed
    assert [e["status"] for e in json.loads(w.run("list", "--globals", "--json").stdout)] == ["complete"]
    present = keys(minio, bucket)
    assert old not in present and marker not in present, present  # retention deleted, marker removed
    assert not minio.client().list_multipart_uploads(Bucket=bucket, Prefix=upload_key).get("Uploads")
    assert any(k == f"{PREFIX}/.cnpg-backup/status/{DATABASE}.json" for k in present), present
    assert w.run("check", "--max-age", "1h").returncode == 0
    assert w.run("prune", "--retention-days", "1").returncode == 0
    r = w.run("drill")  # the drill pods use the same credentials: it records its result in the manifest
    assert r.returncode == 0 and "drill passed" in r.stderr, r.stderr

    _outside_is_denied(users.client(creds), bucket)


def test_restore_policy_alone_restores_and_cannot_back_up_or_delete(shop, minio, bucket, users, make_worker):
    root = make_worker(shop, minio, bucket, DATABASE, prefix=PREFIX)
    assert root.run("backup").returncode == 0
    creds = _user(users, bucket, "restore")
    w = make_worker(shop, minio, bucket, DATABASE, prefix=PREFIX, **creds)
    target = f"{DATABASE}_iam_{uuid.uuid4().hex[:6]}"
    shop.create_database(target)

    run_id = f"iam-{uuid.uuid4().hex[:6]}"
    r = w.run("restore", "--object", "latest", "--target-database", target, "--run-id", run_id)
    assert r.returncode == 0, r.stderr
    with shop.connect(DATABASE) as c:
        expected = fingerprint(c)
    with shop.connect(target) as c:
        assert fingerprint(c) == expected
    present = keys(minio, bucket, f"{PREFIX}/.cnpg-backup/")
    assert f"{PREFIX}/.cnpg-backup/restores/{run_id}.json" in present, present  # the run is recorded
    assert not [k for k in present if "/pending/" in k], present  # and the pending record removed
    # the record is read back: the same run does not restore twice
    again = w.run("restore", "--object", "latest", "--target-database", target, "--run-id", run_id, "--force")
    assert again.returncode == 1 and "already restored" in again.stderr, again.stderr
    assert w.run("list", "--json").returncode == 0 and w.run("status").returncode == 0

    backup = w.run("backup")
    assert backup.returncode != 0 and "denied" in backup.stderr.lower(), backup.stderr
    s3 = users.client(creds)
    backup_key = json.loads(w.run("list", "--json").stdout)[0]["key"]
    _denied(lambda: s3.delete_object(Bucket=bucket, Key=backup_key))
    _denied(lambda: s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{DATABASE}_2099-01-01_00-00-00.sql.gz", Body=b"x"))
    _denied(lambda: s3.put_object(Bucket=bucket, Key=f"{PREFIX}/.cnpg-backup/status/{DATABASE}.json", Body=b"{}"))
    _outside_is_denied(s3, bucket)


def test_lifecycle_rules_are_accepted_and_read_back(minio, bucket):
    document = aws_lifecycle.lifecycle(_config(bucket, retention_days=7))
    s3 = minio.client()
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=document)
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Filter"] == {"Prefix": f"{PREFIX}/{DATABASE}_"} and rule["Expiration"] == {"Days": 7}
    assert rule["Status"] == "Enabled" and rule["ID"] == document["Rules"][0]["ID"]
    # MinIO accepts AbortIncompleteMultipartUpload but does not implement it (it drops it, and cleans
    # stale uploads by itself); AWS applies it.
    assert "AbortIncompleteMultipartUpload" not in rule


def test_parallel_backup_and_restore_under_the_generated_policies(shop, minio, bucket, users, make_worker):
    """A parallel backup's parts (`<key>.part<i>`) stay under `<prefix>/<db>_`: the backup role writes,
    prunes and aborts them; the restore role reads them (and HEADs a missing one as missing)."""
    with shop.connect(DATABASE) as c:
        for t in ("big_a", "big_b"):
            c.execute(
                f"CREATE TABLE {t} AS SELECT g AS id, repeat(md5(g::text), 3) AS v FROM generate_series(1, 20000) g"
            )
    backup = make_worker(
        shop, minio, bucket, DATABASE, prefix=PREFIX, CNPG_BACKUP_FORMAT="custom", **_user(users, bucket, "backup")
    )
    for _ in range(2):
        r = backup.run("backup", "--dump-jobs", "3", "--keep-daily", "1")
        assert r.returncode == 0, r.stderr
        time.sleep(1.1)
    [entry] = json.loads(backup.run("list", "--json").stdout)  # retention deleted the first one, parts too
    assert entry["parts"] == 3 and entry["status"] == "complete", entry
    assert len([k for k in keys(minio, bucket, f"{PREFIX}/{DATABASE}_") if ".part" in k]) == 2
    restore = make_worker(shop, minio, bucket, DATABASE, prefix=PREFIX, **_user(users, bucket, "restore"))
    target = f"{DATABASE}_par_{uuid.uuid4().hex[:6]}"
    shop.create_database(target)
    r = restore.run("restore", "--object", "latest", "--target-database", target, "--jobs", "2")
    assert r.returncode == 0, r.stderr
    with shop.connect(DATABASE) as a, shop.connect(target) as b:
        assert fingerprint(a) == fingerprint(b)
