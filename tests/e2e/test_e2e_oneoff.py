"""The one-off operations Jobs (`python -m app job list|status|check`) run as real pods of the worker
image against MinIO: what an operator gets at 2 AM without S3 keys on the laptop."""

from __future__ import annotations

import json

import pytest
import yaml

from testsupport.e2e_helpers import app_cli, job_of_cronjob, one

pytestmark = pytest.mark.integration


def _printed_job(values_file, *argv: str) -> dict:
    p = app_cli("job", *argv, "-f", str(values_file))
    assert p.returncode == 0, p.stderr
    return yaml.safe_load(p.stdout)


def test_list_status_and_check_jobs_read_the_bucket(make_env, pg_pool):
    env = make_env(pg_pool.get(16))
    vals = env.values()
    backup = env.runner().run_job(job_of_cronjob(one(env.synth(vals), "CronJob")))
    assert backup.succeeded, backup.describe()
    [key] = [k for k in env.backup_objects() if not k.endswith(".manifest.json")]
    values_file = env.write_values(vals)

    listed = env.runner().run_job(_printed_job(values_file, "list", "--json"))
    assert listed.succeeded, listed.describe()
    # the pod only reads the bucket: no init container waiting for PostgreSQL
    assert [c.name for c in listed.containers] == ["list"]
    rows = json.loads(listed["list"].stdout)
    assert [(r["key"], r["status"]) for r in rows] == [(key, "complete")]

    status = env.runner().run_job(_printed_job(values_file, "status", "--json"))
    assert status.succeeded, status.describe()
    assert key in status["status"].stdout

    check = env.runner().run_job(_printed_job(values_file, "check"))  # default --max-age: the alert's
    assert check.succeeded, check.describe()
    assert check["check"].stdout.startswith("OK"), check["check"].stdout

    # a failed check is a failed Job, with one line saying why
    too_small = env.runner().run_job(_printed_job(values_file, "check", "--min-bytes", str(10**12)))
    assert not too_small.succeeded
    [line] = too_small["check"].stdout.strip().splitlines()
    assert line.startswith("CRITICAL") and key.rsplit("/", 1)[1] in line, line
