"""The synthesized pods, run from the freshly built image, against an S3 endpoint that speaks HTTPS
only, with a certificate a private CA signed (an in-cluster MinIO behind cert-manager): `s3.caSecret`
mounts that CA where AWS_CA_BUNDLE points, and a backup → restore round trip comes back equal."""

from __future__ import annotations

import json
import uuid

import pytest

from testsupport.e2e_helpers import DATASET_SQL, Env, fingerprint, job_of_cronjob, one

pytestmark = pytest.mark.integration


def test_s3_behind_a_private_ca_backup_cronjob_then_restore_job(podman, pg_pool, tls_minio, tmp_path):
    assert tls_minio.endpoint.startswith("https://")
    server = pg_pool.get(17)
    database = f"e2e_{uuid.uuid4().hex[:8]}"
    server.create_database(database)
    with server.connect(database) as c:
        c.execute(DATASET_SQL)
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    tls_minio.client().create_bucket(Bucket=bucket)
    env = Env(server, tls_minio, bucket, database, podman, tmp_path)
    env.extra_secrets["minio-ca"] = {"ca.crt": tls_minio.tls.ca_pem()}
    s3 = {"caSecret": {"name": "minio-ca", "key": "ca.crt"}}

    cron = one(env.synth(env.values(s3=s3)), "CronJob")
    result = env.runner().run_job(job_of_cronjob(cron))
    assert result.succeeded, result.describe()
    [key] = [k for k in env.backup_objects() if not k.endswith(".manifest.json")]
    manifest = json.loads(env.s3().get_object(Bucket=bucket, Key=key + ".manifest.json")["Body"].read())
    assert manifest["status"] == "complete", manifest

    fresh = database + "_restored"
    server.create_database(fresh)
    job = one(env.synth(env.values(s3=s3, restore={"object": key.split("/", 1)[1], "targetDatabase": fresh})), "Job")
    result = env.runner().run_job(job)
    assert result.succeeded, result.describe()
    assert fingerprint(server, fresh) == fingerprint(server, database)

    # the same pods without the CA: one line saying what to set, nothing stored
    before = env.backup_objects()
    result = env.runner().run_job(job_of_cronjob(one(env.synth(env.values(backup={"backoffLimit": 0})), "CronJob")))
    assert not result.succeeded
    failed = result.containers[-1]
    errors = failed.error_lines()
    assert len(errors) == 1 and "s3.caSecret" in errors[0] and "Traceback" not in failed.stderr, failed.stderr
    assert env.backup_objects() == before
