"""Helm's lifecycle with kubectl's ApplySet, against a real kube-apiserver: the README's apply
command prunes what the config no longer produces, and `python -m app uninstall` removes one
release, never anything else in the namespace (see app/applyset.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import cli
from app.applyset import apply_command, parent_name
from testsupport.app_helpers import TWO_CLUSTERS, values
from testsupport.kube_helpers import objects, run_documented

pytestmark = pytest.mark.integration

RULE = {
    "monitoring": {
        "pushgateway": {"url": "http://prometheus-pushgateway.monitoring.svc:9091"},
        "prometheusRule": {"enabled": True},
    }
}


def _synth(release: str, namespace: str, vals: dict[str, Any], tmp_path: Path, *flags: str) -> Path:
    """`python -m app synth RELEASE -n NS -f values.yaml -o DIR`, the way the README runs it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(vals))
    outdir = tmp_path / "dist"
    assert cli.main(["synth", release, "-n", namespace, "-f", str(values_file), "-o", str(outdir), *flags]) == 0
    return outdir


def _install(kube, release: str, namespace: str, vals: dict[str, Any], tmp_path: Path, *flags: str) -> str:
    outdir = _synth(release, namespace, vals, tmp_path, *flags)
    return run_documented(kube, apply_command(release, namespace, str(outdir))).stdout


def _foreign(kube, namespace: str) -> set[str]:
    """Objects the namespace holds that no release of ours applied, including a CronJob and a Secret
    carrying our own app.kubernetes.io labels (a copy someone made by hand)."""
    labels = {"app.kubernetes.io/instance": "cnpg-backup", "app.kubernetes.io/managed-by": "cdk8s"}
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "appdb-app", "labels": labels},
            "stringData": {"password": "x"},
        },
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-backup-creds"}, "stringData": {"k": "v"}},
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "someone-elses", "labels": labels},
            "spec": {
                "schedule": "0 1 * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                                "containers": [
                                    {
                                        "name": "c",
                                        "image": "busybox",
                                        "securityContext": {
                                            "allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]},
                                            "runAsUser": 1000,
                                        },
                                    }
                                ],
                            }
                        }
                    }
                },
            },
        },
    ]
    for doc in docs:
        kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))
    return {f"{d['kind']}/{d['metadata']['name']}" for d in docs}


def test_disabling_backup_prunes_its_cronjob_and_rule_and_nothing_foreign(
    kube, namespace, tmp_path: Path, capsys
) -> None:
    foreign = _foreign(kube, namespace)
    _install(kube, "prod", namespace, values(RULE), tmp_path / "v1")
    ours = {
        "ServiceAccount/prod-cnpg-pgdump-backup",
        "CronJob/prod-cnpg-pgdump-backup",
        "PrometheusRule/prod-cnpg-pgdump-backup-alerts",
    }
    record = {f"Secret/{parent_name('prod')}"}  # the ApplySet's parent: kubectl's record of the release
    assert set(objects(kube, namespace)) == ours | record | foreign

    # A one-off restore (README: restore-job ... | kubectl apply -f -) carries the release's labels
    # but is not part of the release: it must survive the prune.
    capsys.readouterr()
    values_file = str(tmp_path / "v1" / "values.yaml")
    assert cli.main(["restore-job", "prod", "-n", namespace, "-f", values_file, "--object", "latest"]) == 0
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=capsys.readouterr().out)
    oneoff = set(objects(kube, namespace, "jobs"))
    assert len(oneoff) == 1

    out = _install(kube, "prod", namespace, values(RULE), tmp_path / "v2", "--set", "backup.enabled=false")
    assert "cronjob.batch/prod-cnpg-pgdump-backup pruned" in out, out
    assert "prometheusrule.monitoring.coreos.com/prod-cnpg-pgdump-backup-alerts pruned" in out, out
    assert set(objects(kube, namespace)) == {"ServiceAccount/prod-cnpg-pgdump-backup"} | record | foreign | oneoff


def test_removing_a_database_prunes_only_its_cronjob(kube, namespace, tmp_path: Path) -> None:
    foreign = _foreign(kube, namespace)
    _install(kube, "prod", namespace, values(TWO_CLUSTERS), tmp_path / "v1")
    billing = objects(kube, namespace)["CronJob/prod-cnpg-pgdump-backup-billing"]["metadata"]["resourceVersion"]
    assert "CronJob/prod-cnpg-pgdump-backup-orders" in objects(kube, namespace)

    only_billing = values(TWO_CLUSTERS)
    only_billing["databases"] = only_billing["databases"][1:]
    # docs/verify-before-apply.md: the same command with --dry-run=server shows what it would prune
    outdir = _synth("prod", namespace, only_billing, tmp_path / "v2")
    preview = run_documented(kube, apply_command("prod", namespace, str(outdir)) + " --dry-run=server").stdout
    assert "cronjob.batch/prod-cnpg-pgdump-backup-orders pruned (server dry run)" in preview, preview
    assert "CronJob/prod-cnpg-pgdump-backup-orders" in objects(kube, namespace)

    out = run_documented(kube, apply_command("prod", namespace, str(outdir))).stdout
    assert "cronjob.batch/prod-cnpg-pgdump-backup-orders pruned" in out, out
    after = objects(kube, namespace)
    assert (
        set(after)
        == {
            "ServiceAccount/prod-cnpg-pgdump-backup",
            "CronJob/prod-cnpg-pgdump-backup-billing",
            f"Secret/{parent_name('prod')}",
        }
        | foreign
    )
    assert after["CronJob/prod-cnpg-pgdump-backup-billing"]["metadata"]["resourceVersion"] == billing


def _uninstall(kube, monkeypatch, *args: str) -> int:
    """`python -m app uninstall ...` with the test server's kubectl and kubeconfig."""
    for name, value in kube.kubectl_env().items():
        monkeypatch.setenv(name, value)
    return cli.main(["uninstall", *args, "--kubectl", str(kube.kubectl_bin)])


def test_uninstall_removes_one_release_and_nothing_else(kube, namespace, tmp_path: Path, monkeypatch, capsys) -> None:
    foreign = _foreign(kube, namespace)
    _install(kube, "prod", namespace, values(RULE), tmp_path / "prod")
    _install(kube, "staging", namespace, values(TWO_CLUSTERS), tmp_path / "staging")
    staging = {k for k in objects(kube, namespace) if "staging-" in k}
    assert len(staging) == 3
    # prod's one-off restore is not part of the release: uninstall leaves it (like a Job a Helm hook left)
    capsys.readouterr()
    values_file = str(tmp_path / "prod" / "values.yaml")
    assert cli.main(["restore-job", "prod", "-n", namespace, "-f", values_file, "--object", "latest"]) == 0
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=capsys.readouterr().out)
    foreign |= set(objects(kube, namespace, "jobs"))
    assert len(foreign) == 4
    before = objects(kube, namespace, "serviceaccounts,secrets,cronjobs,jobs,prometheusrules")

    capsys.readouterr()
    assert _uninstall(kube, monkeypatch, "prod", "-n", namespace, "--dry-run") == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and all(line.startswith("kubectl delete -n ") for line in printed), printed
    assert objects(kube, namespace).keys() == before.keys(), "--dry-run deleted something"

    assert _uninstall(kube, monkeypatch, "prod", "-n", namespace) == 0
    assert set(objects(kube, namespace)) == staging | foreign | {f"Secret/{parent_name('staging')}"}

    # Nothing left to uninstall: one line, exit 1, and still nothing else deleted.
    capsys.readouterr()
    assert _uninstall(kube, monkeypatch, "prod", "-n", namespace) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "release 'prod' not found" in err, err
    assert set(objects(kube, namespace)) == staging | foreign | {f"Secret/{parent_name('staging')}"}


def test_an_install_applied_without_applyset_is_adopted_then_pruned(kube, namespace, tmp_path: Path) -> None:
    """Upgrading from the old README (`kubectl apply -n NS -f dist/`, no ApplySet): the first apply
    with the new command takes the objects over, so the next one prunes them like any other."""
    outdir = _synth("prod", namespace, values(TWO_CLUSTERS), tmp_path / "old")
    kube.kubectl("apply", "-n", namespace, "-f", str(outdir))
    _install(kube, "prod", namespace, values(TWO_CLUSTERS), tmp_path / "v1")
    only_billing = values(TWO_CLUSTERS)
    only_billing["databases"] = only_billing["databases"][1:]
    out = _install(kube, "prod", namespace, only_billing, tmp_path / "v2")
    assert "cronjob.batch/prod-cnpg-pgdump-backup-orders pruned" in out, out
    assert "CronJob/prod-cnpg-pgdump-backup-orders" not in objects(kube, namespace)


def test_clearing_restore_object_prunes_the_declarative_restore_job(kube, namespace, tmp_path: Path) -> None:
    """README: the declarative restore Job goes with the next apply once restore.object is removed."""
    _install(kube, "prod", namespace, values({"restore": {"object": "latest"}}), tmp_path / "v1")
    (job,) = objects(kube, namespace, "jobs")
    assert job.startswith("Job/prod-cnpg-pgdump-backup-restore-")
    out = _install(kube, "prod", namespace, values(), tmp_path / "v2")
    assert f"job.batch/{job.split('/')[1]} pruned" in out, out
    assert objects(kube, namespace, "jobs") == {}
