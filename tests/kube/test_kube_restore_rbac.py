"""The declarative restore Job over time, and the ServiceAccount's (lack of) permissions, against a
real kube-apiserver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testsupport.app_helpers import VARIANTS, values
from testsupport.kube_helpers import ALLOWED_KINDS, DIST, apply, dist_docs, objects, resource_versions, synth

pytestmark = pytest.mark.integration

OBJECT_A = "appdb_2024-01-21_02-00-00.sql.gz"
OBJECT_B = "appdb_2024-01-22_02-00-00.sql.gz"


def _restore_jobs(kube, ns: str) -> dict[str, str]:
    """Job name → restored object, for the restore Jobs in the namespace."""
    items = json.loads(
        kube.kubectl("get", "jobs", "-n", ns, "-l", "app.kubernetes.io/component=restore", "-o", "json").stdout
    )["items"]
    return {j["metadata"]["name"]: j["metadata"]["annotations"]["cnpg-pgdump-backup/restore-object"] for j in items}


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_restore_of_a_then_b_never_recreates_a(kube, namespace, tmp_path: Path) -> None:
    with_a = synth(values({"restore": {"object": OBJECT_A, "force": True}}), tmp_path / "a")
    with_b = synth(values({"restore": {"object": OBJECT_B, "force": True}}), tmp_path / "b")
    job_a, job_b = with_a.one("Job")["metadata"]["name"], with_b.one("Job")["metadata"]["name"]
    assert job_a != job_b

    apply(kube, namespace, tmp_path / "a")
    assert _restore_jobs(kube, namespace) == {job_a: f"appdb/{OBJECT_A}"}
    uid_a = objects(kube, namespace)[f"Job/{job_a}"]["metadata"]["uid"]

    out = apply(kube, namespace, tmp_path / "b")  # no "field is immutable": B is a new Job
    assert f"job.batch/{job_b} created" in out.stdout
    assert f"job.batch/{job_a}" not in out.stdout
    assert _restore_jobs(kube, namespace) == {job_a: f"appdb/{OBJECT_A}", job_b: f"appdb/{OBJECT_B}"}
    assert objects(kube, namespace)[f"Job/{job_a}"]["metadata"]["uid"] == uid_a  # the same Job, untouched

    versions = resource_versions(kube, namespace)
    again = apply(kube, namespace, tmp_path / "a")  # going back to A's config: A already ran
    assert all(line.endswith(" unchanged") for line in _lines(again.stdout)), again.stdout
    assert resource_versions(kube, namespace) == versions


def test_restore_object_left_set_blocks_a_settings_change_until_removed(kube, namespace, tmp_path: Path) -> None:
    """What docs/configuration.md (Restore, step 3) says: a Job is immutable, so with restore.object
    still set a change reaching the restore pod is refused for that Job (safely: it is never
    re-created or re-run), and removing restore.object clears it."""
    first = values({"restore": {"object": OBJECT_A}})
    synth(first, tmp_path / "a")
    apply(kube, namespace, tmp_path / "a")
    jobs = _restore_jobs(kube, namespace)
    changed = {"backup": {"retentionDays": 7}, "restore": {"resources": {"limits": {"memory": "2Gi"}}}}
    synth(values(first, changed), tmp_path / "b")
    out = apply(kube, namespace, tmp_path / "b", check=False)
    assert out.returncode == 1 and "field is immutable" in out.stderr
    assert "cronjob.batch/cnpg-backup-cnpg-pgdump-backup configured" in out.stdout  # the rest applied
    assert _restore_jobs(kube, namespace) == jobs

    synth(values(first, changed, {"restore": {"object": ""}}), tmp_path / "c")
    out = apply(kube, namespace, tmp_path / "c")
    assert _restore_jobs(kube, namespace) == jobs  # the finished Job stays as the record


# --- RBAC -------------------------------------------------------------------------------------


def test_no_rbac_objects_are_generated(tmp_path: Path) -> None:
    kinds = {d["kind"] for d in dist_docs()}
    for name, vals in VARIANTS.items():
        kinds |= {d["kind"] for d in synth(vals, tmp_path / name).docs}
    assert kinds <= ALLOWED_KINDS
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def test_the_service_account_can_do_nothing(kube, namespace) -> None:
    apply(kube, namespace, DIST)
    sa = next(d for d in dist_docs() if d["kind"] == "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    who = f"system:serviceaccount:{namespace}:{sa['metadata']['name']}"
    checks = [
        ("get", "secrets"),
        ("list", "secrets"),
        ("watch", "secrets"),
        ("get", "configmaps"),
        ("list", "pods"),
        ("get", "pods/log"),
        ("create", "pods/exec"),
        ("create", "jobs.batch"),
        ("delete", "jobs.batch"),
        ("patch", "cronjobs.batch"),
        ("list", "namespaces"),
        ("create", "serviceaccounts/token"),
        ("get", "serviceaccounts"),
        ("*", "*"),
    ]
    for verb, resource in checks:
        out = kube.kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as={who}", check=False)
        assert (out.returncode, out.stdout.strip()) == (1, "no"), (verb, resource, out.stdout, out.stderr)
    # Control: the check does say yes when a permission exists.
    assert kube.kubectl("auth", "can-i", "get", "secrets", "-n", namespace).stdout.strip() == "yes"

    # Everything it may do is what every authenticated identity may do (discovery, self reviews).
    listed = kube.kubectl("auth", "can-i", "--list", "-n", namespace, f"--as={who}").stdout
    resources = [line.split()[0] for line in listed.splitlines()[1:] if line.strip() and not line.startswith(" ")]
    named = [r for r in resources if not r.startswith("[")]  # non-resource URLs are shown as []
    assert set(named) <= {
        "selfsubjectreviews.authentication.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
    }, listed
