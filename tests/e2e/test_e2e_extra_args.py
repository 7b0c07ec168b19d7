"""backup.extraArgs end to end: the synthesized backup CronJob's pod, in the worker image, dumps
without the excluded schema, and the restore Job brings back everything else."""

from __future__ import annotations

import json

import pytest

from testsupport.e2e_helpers import job_of_cronjob, one

pytestmark = pytest.mark.integration


def test_excluded_schema_is_left_out_of_backup_and_restore(make_env, pg_pool):
    env = make_env(pg_pool.get(17))
    extra = ["--exclude-schema=extra", "--no-owner"]
    vals = env.values(backup={"extraArgs": extra})
    backup = env.runner().run_job(job_of_cronjob(one(env.synth(vals), "CronJob")))
    assert backup.succeeded, backup.describe()
    [key] = [k for k in env.backup_objects() if not k.endswith(".manifest.json")]
    manifest = json.loads(env.s3().get_object(Bucket=env.bucket, Key=key + ".manifest.json")["Body"].read())
    assert manifest["extra"]["pg_dump_extra_args"] == extra

    fresh = env.database + "_copy"
    env.server.create_database(fresh)
    restore = env.runner().run_job(
        one(env.synth(env.values(restore={"object": key.split("/", 1)[1], "targetDatabase": fresh})), "Job")
    )
    assert restore.succeeded, restore.describe()
    with env.server.connect(fresh) as c:
        schemas = {r[0] for r in c.execute("SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_'").fetchall()}
        assert "extra" not in schemas and "public" in schemas
        assert c.execute("SELECT count(*) FROM items").fetchone()[0] == 20000


def test_refused_option_fails_the_backup_pod_with_one_line(make_env, pg_pool):
    """synth refuses it; a hand-edited manifest reaches the worker, which refuses it before pg_dump."""
    env = make_env(pg_pool.get(17))
    job = job_of_cronjob(one(env.synth(env.values()), "CronJob"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "CNPG_BACKUP_DUMP_EXTRA_ARGS", "value": '["--format=directory"]'})
    result = env.runner().run_job(job)
    assert not result.succeeded
    [line] = result["backup"].error_lines()
    assert "CNPG_BACKUP_DUMP_EXTRA_ARGS[0]: --format: refused: set by the worker (backup.format)" in line, line
    assert env.backup_objects() == []
