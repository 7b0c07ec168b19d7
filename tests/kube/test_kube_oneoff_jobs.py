"""The operator's commands against a real kube-apiserver: the one-off Jobs `python -m app job ...`
prints are accepted (strict validation, PodSecurity `restricted` enforced on their pods) next to an
applied dist/, and the ad-hoc backup command synth prints creates a Job from the CronJob, also
with names at the length limit."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest
import yaml

from app import cli
from testsupport.app_helpers import TWO_CLUSTERS, values
from testsupport.kube_helpers import apply, dry_run_pods, objects, pods_from_templates, synth

pytestmark = pytest.mark.integration

# Long names: the printed Job names and the ad-hoc Job name must still fit 63 characters.
VALUES = values(
    TWO_CLUSTERS,
    {"global": {"fullnameOverride": "a-long-fullname-for-the-production-backups-of-orders"}},
    {"verify": {"enabled": True}},
)


def _printed(capsys: pytest.CaptureFixture[str], values_file: Path, *argv: str) -> str:
    assert cli.main([*argv, "-f", str(values_file)]) == 0
    out, _ = capsys.readouterr()
    return out


def test_printed_jobs_are_accepted_and_restricted(
    kube, namespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synth(VALUES, tmp_path / "dist")
    apply(kube, namespace, tmp_path / "dist")
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(VALUES))
    printed = [
        _printed(capsys, values_file, "job", "list", "--database", "orders"),
        _printed(capsys, values_file, "job", "status", "--database", "billing", "--json"),
        _printed(capsys, values_file, "job", "check", "--database", "orders"),
        _printed(capsys, values_file, "job", "restore", "--database", "billing", "--object", "latest"),
    ]
    docs = [yaml.safe_load(text) for text in printed]
    for text in printed:
        out = kube.kubectl("create", "-n", namespace, "--validate=strict", "-f", "-", input=text)
        assert out.warnings == [], out.stderr  # PodSecurity `restricted` warns for a Job's pod template
    created = objects(kube, namespace, "jobs")
    for doc in docs:
        job = created[f"Job/{doc['metadata']['name']}"]
        assert (
            job["spec"]["template"]["spec"]["serviceAccountName"]
            == doc["spec"]["template"]["spec"]["serviceAccountName"]
        )
    # the pods themselves, as the Job controller would create them: PodSecurity enforced
    dry_run_pods(kube, namespace, pods_from_templates(docs))


def test_printed_adhoc_backup_command_creates_a_job(
    kube, namespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(VALUES))
    assert cli.main(["synth", "-f", str(values_file), "-o", str(tmp_path / "dist")]) == 0
    lines = capsys.readouterr().out.splitlines()
    apply(kube, namespace, tmp_path / "dist")
    commands = [line.split(": run it now: ")[1] for line in lines if line.startswith("CronJob ")]
    assert len(commands) == 4  # two backups, two drills
    for command in commands:
        argv = shlex.split(command.replace("$(date +%s)", str(int(time.time()))))
        assert argv[:3] == ["kubectl", "create", "job"]
        out = kube.kubectl(*argv[1:], "-n", namespace)
        assert out.returncode == 0, out.stderr
    jobs = objects(kube, namespace, "jobs")
    assert len(jobs) == 4
    for job in jobs.values():
        assert len(job["metadata"]["name"]) <= 63
        [owner] = job["metadata"]["ownerReferences"]
        assert owner["kind"] == "CronJob" and job["metadata"]["name"].startswith(owner["name"][:40])
