"""An S3 endpoint over HTTPS whose certificate a private CA signed (an in-cluster MinIO behind
cert-manager): the worker trusts it through AWS_CA_BUNDLE (what `s3.caSecret` sets in the pods), and
without that CA it stops with one line saying what to set, having stored nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid

import pytest

from testsupport.dataset import fingerprint, load
from testsupport.servers import MinioServer
from testsupport.tls import make_ca

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_bucket(tls_minio) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    tls_minio.client().create_bucket(Bucket=name)
    return name


def _stored(minio: MinioServer, bucket: str) -> list[str]:
    return [o["Key"] for o in minio.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_a_private_ca_in_aws_ca_bundle_backs_up_and_restores(pg, tls_minio, tls_bucket, make_worker):
    assert tls_minio.endpoint.startswith("https://")
    load(pg, "shops3tls")
    w = make_worker(pg, tls_minio, tls_bucket, "shops3tls", AWS_CA_BUNDLE=str(tls_minio.tls.ca_cert))
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(w.run("list", "--json").stdout)
    assert entry["status"] == "complete", entry
    pg.create_database("shops3tls_back")
    r = w.run("restore", "--object", entry["key"], "--target-database", "shops3tls_back")
    assert r.returncode == 0, r.stderr
    with pg.connect("shops3tls") as a, pg.connect("shops3tls_back") as b:
        assert fingerprint(a) == fingerprint(b)


@pytest.mark.parametrize("bundle", ["none", "other-ca"])
def test_an_untrusted_s3_certificate_is_one_line_naming_the_setting(pg, tls_minio, tls_bucket, make_worker, bundle):
    other = make_ca(common_name="a CA that signed nothing here")
    try:
        extra = {"AWS_CA_BUNDLE": str(other.cert)} if bundle == "other-ca" else {}
        w = make_worker(pg, tls_minio, tls_bucket, "postgres", **extra)
        r = w.run("backup")
    finally:
        shutil.rmtree(other.dir, ignore_errors=True)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.error_lines) == 1, r.stderr
    line = r.error_lines[0]
    assert "TLS with S3 failed" in line and "CERTIFICATE_VERIFY_FAILED" in line, line
    assert "s3.caSecret" in line and "AWS_CA_BUNDLE" in line, line
    assert _stored(tls_minio, tls_bucket) == []  # nothing that looks like a backup, nor a lock


def test_a_ca_bundle_that_is_not_there_is_one_line(pg, tls_minio, tls_bucket, make_worker, tmp_path):
    w = make_worker(pg, tls_minio, tls_bucket, "postgres", AWS_CA_BUNDLE=str(tmp_path / "missing.crt"))
    r = w.run("list")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.error_lines) == 1, r.stderr
    assert "AWS_CA_BUNDLE names" in r.error_lines[0] and "missing.crt" in r.error_lines[0], r.error_lines
    assert "s3.caSecret" in r.error_lines[0]


def _part_hashes(server: MinioServer, bucket: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], bytes]:
    """The x-amz-content-sha256 of each part as sent, and the object as stored, of an in-process
    upload through the worker's own client and MultipartUpload."""
    from worker.s3 import MIN_PART, MultipartUpload
    from worker.s3_client import S3Location, make_client

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    if server.tls:
        monkeypatch.setenv("AWS_CA_BUNDLE", str(server.tls.ca_cert))
    loc = S3Location(bucket, endpoint=server.endpoint, region="us-east-1")
    client = make_client(loc)
    sent: list[str] = []
    client.meta.events.register(
        "before-send.s3.UploadPart", lambda request, **_: sent.append(request.headers["X-Amz-Content-SHA256"].decode())
    )
    data = bytes(range(256)) * ((MIN_PART + 4096) // 256)
    up = MultipartUpload(client, loc, "parts-probe").start()
    for i in range(0, len(data), 1 << 20):
        up.write(data[i : i + (1 << 20)])
    up.complete()
    assert server.client().get_object(Bucket=bucket, Key="parts-probe")["Body"].read() == data
    return sent, data


def test_parts_are_signed_over_http_and_left_to_tls_over_https(tls_minio, tls_bucket, minio, bucket, monkeypatch):
    # Over HTTPS TLS authenticates the bytes, so SigV4 does not hash them a second time; over plain
    # HTTP the signature is the only check a part gets on the way, so it stays.
    sent, _ = _part_hashes(tls_minio, tls_bucket, monkeypatch)
    assert sent == ["UNSIGNED-PAYLOAD"] * 2
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    sent, data = _part_hashes(minio, bucket, monkeypatch)
    part = 8 << 20  # MIN_PART: the first part is cut at the first 1 MiB chunk boundary past it
    # two upload threads: the parts may leave in either order
    assert sorted(sent) == sorted([hashlib.sha256(data[:part]).hexdigest(), hashlib.sha256(data[part:]).hexdigest()])
