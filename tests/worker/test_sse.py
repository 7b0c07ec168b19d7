"""Server-side encryption (s3.sse, s3.kmsKeyId) on a MinIO that really encrypts: its built-in KMS
with one key. Every object the worker writes carries it — the backup, its manifest, its records."""

from __future__ import annotations

import base64
import json

import pytest

from testsupport.dataset import load
from testsupport.servers import MinioServer

pytestmark = pytest.mark.integration

KEY_NAME = "cnpg-test-key"


@pytest.fixture
def kms_minio():
    m = MinioServer(kms_key=f"{KEY_NAME}:" + base64.b64encode(bytes(range(32))).decode()).start()
    m.client().create_bucket(Bucket="sse-bucket")
    yield m
    m.destroy()


@pytest.mark.parametrize(("sse", "kms"), [("AES256", ""), ("aws:kms", KEY_NAME)])
def test_every_object_written_is_encrypted(pg, kms_minio, make_worker, sse, kms):
    load(pg, "sseshop")
    extra = {"CNPG_BACKUP_S3_SSE": sse, **({"CNPG_BACKUP_S3_KMS_KEY_ID": kms} if kms else {})}
    w = make_worker(pg, kms_minio, "sse-bucket", "sseshop", **extra)
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    s3 = kms_minio.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sse-bucket")["Contents"]]
    written = [k for k in keys if "/keys/" not in k]  # key reservations are released (deleted)
    assert any(k.endswith(".sql.gz") for k in written) and any("/status/" in k for k in written), keys
    for key in written:
        head = s3.head_object(Bucket="sse-bucket", Key=key)
        assert head.get("ServerSideEncryption") == sse, (key, head.get("ServerSideEncryption"))
        if kms:
            assert KEY_NAME in head.get("SSEKMSKeyId", ""), (key, head.get("SSEKMSKeyId"))
    # and it restores (MinIO decrypts on read)
    pg.create_database("sseshop_copy")
    r = w.run("restore", "--object", "latest", "--target-database", "sseshop_copy")
    assert r.returncode == 0, r.stderr
    assert json.loads(w.run("list", "--json").stdout)[0]["status"] == "complete"


def test_bad_sse_value_is_one_line(pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "postgres", CNPG_BACKUP_S3_SSE="aes")
    r = w.run("backup")
    assert r.returncode == 2 and len(r.error_lines) == 1 and "AES256 or aws:kms" in r.stderr, r.stderr
