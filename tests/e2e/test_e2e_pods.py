"""The synthesized pods, run end to end as real containers of the worker image under their real
securityContext (read-only root, uid/gid 999, no privilege escalation, no capabilities, seccomp),
against real PostgreSQL and MinIO servers."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from testsupport.e2e_helpers import Env, app_cli, fingerprint, one
from testsupport.podrunner import PodRunner, UnsupportedField

pytestmark = pytest.mark.integration


def job_of(cronjob: dict) -> dict:
    """What the CronJob controller creates at a scheduled time: a Job with the jobTemplate's spec."""
    return {
        "kind": "Job",
        "metadata": {"name": cronjob["metadata"]["name"] + "-manual"},
        "spec": copy.deepcopy(cronjob["spec"]["jobTemplate"]["spec"]),
    }


def log_records(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def run_backup(env: Env, vals: dict) -> str:
    """Run the backup CronJob's pod; return the key of the backup it made."""
    before = set(env.backup_objects())
    result = env.runner().run_job(job_of(one(env.synth(vals), "CronJob")))
    assert result.succeeded, result.describe()
    assert [c.name for c in result.containers] == ["wait-for-postgres", "backup"]
    for c in result.containers:  # the manifest's securityContext, as podman was told to enforce it
        flags = " ".join(c.argv)
        for expected in (
            "--user 999:999",
            "--group-add 999",
            "--read-only --read-only-tmpfs=false",
            "--security-opt no-new-privileges",
            "--cap-drop ALL",
            ":/tmp ",
        ):
            assert expected in flags, (expected, c.argv)
        assert "--privileged" not in flags and "seccomp=unconfined" not in flags
    assert any(
        r.get("msg") == "postgres ready" or "ready" in str(r.get("msg"))
        for r in log_records(result["wait-for-postgres"].stderr)
    ), result["wait-for-postgres"].stderr
    new = sorted(set(env.backup_objects()) - before)  # the worker's status object is not a backup
    data = [k for k in new if not k.endswith(".manifest.json")]
    assert len(data) == 1 and data[0] + ".manifest.json" in new, new
    key = data[0]
    manifest = json.loads(env.s3().get_object(Bucket=env.bucket, Key=key + ".manifest.json")["Body"].read())
    head = env.s3().head_object(Bucket=env.bucket, Key=key)
    assert manifest["status"] == "complete"
    assert manifest["database"] == env.database
    assert manifest["object_bytes"] == head["ContentLength"] > 0
    assert manifest["format"] == vals["backup"].get("format", "plain")
    # the image's only client, PostgreSQL 18, dumps every server from 13 to 18
    assert manifest["pg_dump_major"] == 18, manifest
    return key


def test_backup_cronjob_then_restore_job_into_fresh_database(make_env, pg_pool):
    env = make_env(pg_pool.get(17))
    vals = env.values()
    key = run_backup(env, vals)

    fresh = env.database + "_restored"
    env.server.create_database(fresh)
    docs = env.synth(env.values(restore={"object": key.split("/", 1)[1], "force": True, "targetDatabase": fresh}))
    job = one(docs, "Job")
    restore_args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--force" in restore_args and fresh in restore_args
    result = env.runner().run_job(job)
    assert result.succeeded, result.describe()
    assert fingerprint(env.server, fresh) == fingerprint(env.server, env.database)
    done = [r for r in log_records(result["restore"].stderr) if r.get("msg") == "restore complete"]
    assert done and done[0]["database"] == fresh, result["restore"].stderr

    # The same Job re-created later (namespace rebuilt, Job deleted and re-applied) must not restore
    # over what was written since, and must not show Complete either: it fails, saying why.
    with env.server.connect(fresh) as c:
        c.execute("INSERT INTO items (id, name) VALUES (99999, 'written after the restore')")
    again = env.runner().run_job(job)
    assert not again.succeeded
    errors = again["restore"].error_lines()
    assert len(errors) == 1 and "already restored" in errors[0] and "not restoring again" in errors[0], errors
    with env.server.connect(fresh) as c:
        assert c.execute("SELECT count(*) FROM items WHERE id = 99999").fetchone()[0] == 1


def test_backup_before_restore_with_the_pg18_client(make_env, pg_pool):
    env = make_env(pg_pool.get(18))  # the image's PostgreSQL 18 client
    vals = env.values()
    key = run_backup(env, vals)
    original = fingerprint(env.server, env.database)
    with env.server.connect(env.database) as c:
        c.execute("DELETE FROM \"Mixed Case\" WHERE id > 100; UPDATE items SET name = 'changed' WHERE id < 50")
    changed = fingerprint(env.server, env.database)
    assert changed != original

    docs = env.synth(env.values(restore={"object": key.split("/", 1)[1], "force": True, "backupBeforeRestore": True}))
    before = set(env.objects())
    result = env.runner().run_job(one(docs, "Job"))
    assert result.succeeded, result.describe()
    assert fingerprint(env.server, env.database) == original
    # the state it replaced was backed up first, completely
    new = [k for k in sorted(set(env.objects()) - before) if k.endswith(".manifest.json")]
    safety = [k for k in new if "restore" not in k]
    assert len(safety) == 1, new
    manifest = json.loads(env.s3().get_object(Bucket=env.bucket, Key=safety[0])["Body"].read())
    assert manifest["status"] == "complete" and manifest["pg_dump_major"] == 18


def test_oneoff_restore_job_command(make_env, pg_pool):
    env = make_env(pg_pool.get(13))  # older server: the image's PostgreSQL 18 client dumps and restores it
    vals = env.values(backup={"format": "custom"})
    key = run_backup(env, vals)
    fresh = env.database + "_oneoff"
    env.server.create_database(fresh)

    values_file = env.write_values(vals)
    p = app_cli(
        "restore-job", "-f", str(values_file), "--object", key.split("/", 1)[1], "--force", "--target-database", fresh
    )
    assert p.returncode == 0, p.stderr
    job = yaml.safe_load(p.stdout)
    assert job["kind"] == "Job"
    result = env.runner().run_job(job)
    assert result.succeeded, result.describe()
    assert fingerprint(env.server, fresh) == fingerprint(env.server, env.database)


def test_read_only_tmp_fails_with_one_clear_error(make_env, pg_pool):
    """Without the /tmp emptyDir the root filesystem is read-only everywhere: a custom-format restore
    cannot stage its archive. The sandbox must really enforce that, and the worker must say so in one
    line (no traceback), before touching the database."""
    env = make_env(pg_pool.get(13))
    key = run_backup(env, env.values(backup={"format": "custom"}))
    fresh = env.database + "_rofs"
    env.server.create_database(fresh)
    job = one(env.synth(env.values(restore={"object": key.split("/", 1)[1], "targetDatabase": fresh})), "Job")
    spec = job["spec"]["template"]["spec"]
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "tmp"]
    for c in spec["initContainers"] + spec["containers"]:
        c["volumeMounts"] = [m for m in c.get("volumeMounts", []) if m["mountPath"] != "/tmp"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True

    result = env.runner().run_job(job)
    assert not result.succeeded
    restore = result["restore"]
    assert restore.returncode != 0
    errors = restore.error_lines()
    assert len(errors) == 1, restore.stderr
    assert "Traceback" not in restore.stderr
    message = json.loads(errors[0])
    text = message["msg"] + " " + str(message.get("hint", ""))
    assert "Read-only file system" in text and "/tmp" in text, errors[0]
    assert "unexpected error" not in text, errors[0]
    with env.server.connect(fresh) as c:  # the database was not touched
        assert (
            c.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            ).fetchone()[0]
            == 0
        )


# --------------------------------------------------------------------------------------------------
# The runner itself: a field it does not translate is an error, never silently dropped.


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda s: s.update(hostNetwork=True), "hostNetwork"),
        (lambda s: s.update(nodeSelector={"disk": "ssd"}), "nodeSelector"),
        (lambda s: s["containers"][0].update(workingDir="/"), "workingDir"),
        (lambda s: s["containers"][0]["securityContext"].update(procMount="Unmasked"), "procMount"),
        (lambda s: s["securityContext"].update(supplementalGroups=[5]), "supplementalGroups"),
        (lambda s: s["volumes"].append({"name": "ca", "configMap": {"name": "x"}}), "configMap"),
        (
            lambda s: s["volumes"].append({"name": "ca", "secret": {"secretName": "s", "readOnly": True}}),
            "readOnly",
        ),
        (
            lambda s: s["containers"][0]["env"].append({"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "a"}}}),
            "fieldRef",
        ),
        (lambda s: s["volumes"][0]["emptyDir"].update(medium="HugePages"), "HugePages"),
        (lambda s: s["containers"][0]["volumeMounts"][0].update(subPath="x"), "subPath"),
        (lambda s: s.update(automountServiceAccountToken=True), "automountServiceAccountToken"),
    ],
)
def test_runner_refuses_fields_it_does_not_translate(tmp_path, mutate, field):
    from app.chart import synth
    from app.values import config_from_values

    vals = {"cnpg": {"secretName": "s", "database": "d"}, "s3": {"bucket": "bucket-x", "secretName": "s3"}}
    files = synth(config_from_values(vals), tmp_path, warn=lambda _m: None)
    cron = one([d for f in files for d in yaml.safe_load_all(f.read_text()) if d], "CronJob")
    template = cron["spec"]["jobTemplate"]["spec"]["template"]
    fake = {
        "s": {k: "x" for k in ("host", "port", "username", "password")},
        "s3": {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
    }
    runner = PodRunner(fake, "/dev/null")
    runner.plan(template)  # the synthesized template as it is: fully understood
    mutate(template["spec"])
    with pytest.raises(UnsupportedField, match=field):
        runner.plan(template)
