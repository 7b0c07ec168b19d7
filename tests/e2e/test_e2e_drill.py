"""The restore-drill CronJob's pod, run from the image under its real securityContext: it restores
the newest backup into the PostgreSQL server it starts inside its own sandbox (uid 999, read-only
root, /tmp only), compares row counts, and records the result — without any access to the
production server (its pod has no PostgreSQL credentials at all)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_e2e_pods import job_of, run_backup
from testsupport.e2e_helpers import Env

pytestmark = pytest.mark.integration


def _drill_cronjob(docs: list[dict]) -> dict:
    [cron] = [d for d in docs if d["kind"] == "CronJob" and d["metadata"]["name"].endswith("-drill")]
    return cron


@pytest.mark.parametrize(("major", "fmt"), [(17, "plain"), (13, "custom")])
def test_drill_pod_restores_the_newest_backup_in_its_own_sandbox(make_env, pg_pool, major, fmt):
    env: Env = make_env(pg_pool.get(major))
    vals = env.values(backup={"format": fmt}, verify={"enabled": True, "tmpSizeLimit": "1Gi"})
    docs = env.synth(vals)
    key = run_backup(env, env.values(backup={"format": fmt}))
    cron = _drill_cronjob(docs)
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env_names = {e["name"] for c in spec["containers"] for e in c.get("env", [])}
    assert not env_names & {"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD"}, env_names  # never the production server
    result = env.runner().run_job(job_of(cron))
    assert result.succeeded, result.describe()
    records = [json.loads(line) for line in result.containers[-1].stderr.splitlines() if line.startswith("{")]
    passed = [r for r in records if r.get("msg") == "drill passed"]
    assert passed and passed[0]["key"] == key and passed[0]["tables"] >= 3, result.containers[-1].stderr
    status = json.loads(
        env.s3()
        .get_object(Bucket=env.bucket, Key=f"{env.PREFIX}/.cnpg-backup/status/{env.database}.json")["Body"]
        .read()
    )
    assert status["drill"]["outcome"] == "success" and status["drill"]["key"] == key
