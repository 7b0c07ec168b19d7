"""Encrypted backups end to end in the worker image: the backup CronJob's pod, which holds only the
public key, writes age ciphertext; the restore Job's pod decrypts it with the identity from its Secret."""

from __future__ import annotations

import pytest

from testsupport.e2e_helpers import fingerprint, job_of_cronjob, one
from testsupport.servers import AGE_IDENTITY, AGE_RECIPIENT

pytestmark = pytest.mark.integration


def test_encrypted_backup_cronjob_then_restore_job(make_env, pg_pool):
    env = make_env(pg_pool.get(16))
    env.extra_secrets["e2e-age"] = {"identity": f"# public key: {AGE_RECIPIENT}\n{AGE_IDENTITY}\n"}
    encryption = {"recipients": [AGE_RECIPIENT], "identitySecret": {"name": "e2e-age", "key": "identity"}}
    vals = env.values(encryption=encryption)
    cronjob = one(env.synth(vals), "CronJob")
    assert "AGE-SECRET-KEY" not in str(cronjob) and "identity" not in str(cronjob)
    backup = env.runner().run_job(job_of_cronjob(cronjob))
    assert backup.succeeded, backup.describe()
    [key] = [k for k in env.backup_objects() if not k.endswith(".manifest.json")]
    assert key.endswith(".sql.gz.age")
    assert env.s3().get_object(Bucket=env.bucket, Key=key)["Body"].read(21) == b"age-encryption.org/v1"

    fresh = env.database + "_restored"
    env.server.create_database(fresh)
    docs = env.synth(
        env.values(encryption=encryption, restore={"object": key.split("/", 1)[1], "targetDatabase": fresh})
    )
    result = env.runner().run_job(one(docs, "Job"))
    assert result.succeeded, result.describe()
    assert fingerprint(env.server, fresh) == fingerprint(env.server, env.database)
    assert AGE_IDENTITY not in result["restore"].stderr + result["restore"].stdout
