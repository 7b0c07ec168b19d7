"""`kubectl apply -f dist/` against a real kube-apiserver (v1.34, built by tools/install-servers.sh kube),
into namespaces that enforce PodSecurity `restricted`.

A JSON-schema check does not see what the server enforces: field validation, semantic validation
(cron syntax, immutable fields), defaulting that makes a second apply differ, PodSecurity admission.
No controller runs, so CronJobs and Jobs are created for real (nothing reconciles them) and Pods are
only dry-run (server-side: full admission, nothing stored).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from testsupport.app_helpers import DRILL_VARIANTS, VARIANTS, values
from testsupport.kube_helpers import (
    ALLOWED_KINDS,
    DIST,
    apply,
    dist_docs,
    dry_run_pods,
    json_stream,
    objects,
    pods_from_templates,
    resource_versions,
    synth,
)

pytestmark = pytest.mark.integration


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _assert_admitted_pods(kube, ns: str, docs: list[dict[str, Any]]) -> None:
    pods = pods_from_templates(docs)
    if not pods:
        return
    out = dry_run_pods(kube, ns, pods, check=False)
    assert out.returncode == 0, f"the server refused a Pod built from a pod template:\n{out.stderr}"
    assert out.warnings == [], out.stderr
    items = json_stream(out.stdout)
    assert len(items) == len(pods)
    for pod in items:
        # No API credentials reach the container: no projected kube-api-access volume is injected.
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert not [v for v in pod["spec"].get("volumes", []) if v["name"].startswith("kube-api-access")]


# --- the committed dist/ ----------------------------------------------------------------------


def test_dist_server_side_dry_run_is_clean(kube, namespace) -> None:
    """The command docs/verify-before-apply.md gives users, against an empty namespace."""
    out = kube.kubectl("apply", "-n", namespace, "--dry-run=server", "--validate=strict", "-f", str(DIST))
    assert out.warnings == [], out.stderr
    assert all(line.endswith("created (server dry run)") for line in _lines(out.stdout)), out.stdout
    assert objects(kube, namespace) == {}, "a dry run stored something"


def test_dist_applies_cleanly_and_twice_changes_nothing(kube, namespace) -> None:
    docs = dist_docs()
    first = apply(kube, namespace, DIST)
    assert len(_lines(first.stdout)) == len(docs)
    assert all(line.endswith(" created") for line in _lines(first.stdout)), first.stdout
    _assert_admitted_pods(kube, namespace, docs)
    before = objects(kube, namespace)

    second = apply(kube, namespace, DIST)
    assert len(_lines(second.stdout)) == len(docs)
    assert all(line.endswith(" unchanged") for line in _lines(second.stdout)), second.stdout
    after = objects(kube, namespace)
    assert {k: v["metadata"]["resourceVersion"] for k, v in after.items()} == {
        k: v["metadata"]["resourceVersion"] for k, v in before.items()
    }
    for obj in after.values():
        managers = {m["manager"] for m in obj["metadata"].get("managedFields", [])}
        assert managers == {"kubectl-client-side-apply"}, (obj["metadata"]["name"], managers)


# --- every snapshot variant -------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_applies_restricted_without_warnings_and_idempotently(
    variant: str, kube, namespace, tmp_path: Path
) -> None:
    out = synth(VARIANTS[variant], tmp_path / "dist")
    assert {d["kind"] for d in out.docs} <= ALLOWED_KINDS
    first = apply(kube, namespace, tmp_path / "dist")
    assert all(line.endswith(" created") for line in _lines(first.stdout)), first.stdout
    _assert_admitted_pods(kube, namespace, out.docs)
    versions = resource_versions(kube, namespace)
    assert len(versions) == len(out.docs)

    second = apply(kube, namespace, tmp_path / "dist")
    assert all(line.endswith(" unchanged") for line in _lines(second.stdout)), second.stdout
    assert resource_versions(kube, namespace) == versions  # nothing written, no new restore Job


def test_restore_drills_apply_restricted_without_warnings_and_idempotently(kube, namespace, tmp_path: Path) -> None:
    out = synth(DRILL_VARIANTS["restore_drills"], tmp_path / "dist")
    drills = [d for d in out.kind("CronJob") if d["metadata"]["name"].endswith("-drill")]
    assert len(drills) == 2
    first = apply(kube, namespace, tmp_path / "dist")
    assert all(line.endswith(" created") for line in _lines(first.stdout)), first.stdout
    _assert_admitted_pods(kube, namespace, out.docs)  # the drill pods too, under PodSecurity restricted
    stored = objects(kube, namespace)
    for drill in drills:
        spec = stored[f"CronJob/{drill['metadata']['name']}"]["spec"]
        assert spec["concurrencyPolicy"] == "Forbid" and spec["jobTemplate"]["spec"]["backoffLimit"] == 0
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert "initContainers" not in pod
        assert not [e for e in pod["containers"][0]["env"] if e["name"] in ("PGHOST", "PGPASSWORD", "PGUSER")]
    rule = stored["PrometheusRule/cnpg-backup-cnpg-pgdump-backup-alerts"]
    assert [g["name"] for g in rule["spec"]["groups"]] == [
        "cnpg-backup-cnpg-pgdump-backup-orders",
        "cnpg-backup-cnpg-pgdump-backup-orders-drill",
        "cnpg-backup-cnpg-pgdump-backup-billing",
        "cnpg-backup-cnpg-pgdump-backup-billing-drill",
    ]
    versions = resource_versions(kube, namespace)
    second = apply(kube, namespace, tmp_path / "dist")
    assert all(line.endswith(" unchanged") for line in _lines(second.stdout)), second.stdout
    assert resource_versions(kube, namespace) == versions


def test_server_side_apply_twice_has_no_conflicts_and_changes_nothing(kube, namespace, tmp_path: Path) -> None:
    """GitOps tools apply server-side; the second apply must be a no-op write."""
    synth(VARIANTS["managed_s3_secret"], tmp_path / "a")
    synth(values(VARIANTS["managed_s3_secret"], {"restore": {"object": "latest"}}), tmp_path / "b")
    for path in (tmp_path / "a", tmp_path / "b"):
        args = ("--server-side", "--field-manager=cnpg-pgdump-backup")
        apply(kube, namespace, path, *args)
        versions = resource_versions(kube, namespace)
        again = apply(kube, namespace, path, *args)
        assert "conflict" not in again.stderr.lower()
        assert resource_versions(kube, namespace) == versions


# --- PodSecurity is enforced for real: the negative controls -------------------------------------


def _weakened(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    docs = copy.deepcopy(docs)
    for doc in docs:
        if doc["kind"] == "CronJob":
            spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    return docs


def test_a_non_compliant_pod_is_refused_and_a_cronjob_warns(kube, namespace) -> None:
    apply(kube, namespace, DIST)  # the ServiceAccount the Pods name must exist
    bad = _weakened(dist_docs())
    pods = pods_from_templates(bad)
    out = dry_run_pods(kube, namespace, pods, check=False)
    assert out.returncode != 0
    assert "Forbidden" in out.stderr and 'violates PodSecurity "restricted:latest"' in out.stderr
    assert "allowPrivilegeEscalation != false" in out.stderr

    cronjob = next(d for d in bad if d["kind"] == "CronJob")
    warned = kube.kubectl(
        "apply", "-n", namespace, "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(cronjob)
    )
    assert warned.returncode == 0
    assert any('would violate PodSecurity "restricted:latest"' in w for w in warned.warnings), warned.stderr


# --- the server really validates --------------------------------------------------------------


def _cronjob() -> dict[str, Any]:
    return copy.deepcopy(next(d for d in dist_docs() if d["kind"] == "CronJob"))


def test_unknown_field_is_rejected(kube, namespace) -> None:
    doc = _cronjob()
    doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    out = kube.kubectl(
        "apply", "-n", namespace, "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(doc), check=False
    )
    assert out.returncode != 0
    assert 'unknown field "spec.jobTemplate.spec.template.spec.containers[0].imagePulPolicy"' in out.stderr


def test_bad_cron_schedule_is_rejected(kube, namespace) -> None:
    doc = _cronjob()
    doc["spec"]["schedule"] = "0 2 * *"
    out = kube.kubectl(
        "apply", "-n", namespace, "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(doc), check=False
    )
    assert out.returncode != 0
    assert "spec.schedule" in out.stderr and "Invalid value" in out.stderr


def test_bad_time_zone_is_rejected(kube, namespace) -> None:
    doc = _cronjob()
    doc["spec"]["timeZone"] = "Mars/Olympus_Mons"
    out = kube.kubectl(
        "apply", "-n", namespace, "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(doc), check=False
    )
    assert out.returncode != 0 and "spec.timeZone" in out.stderr


# --- quantities: the manifests carry the server's spelling ---------------------------------------


def test_canonical_quantity_is_what_the_server_stores(kube, namespace) -> None:
    """app.validation.canonical_quantity must agree with apimachinery, or every apply reports
    `configured` for a resource value written differently (as `2000m` did): whatever the manifest
    says must come back from the server unchanged, and mean the same as the user's spelling."""
    from app.validation import canonical_quantity

    spellings = [
        "2000m",
        "0.5Gi",
        "1024Ki",
        "1.5",
        "1000k",
        "1Gi",
        "256Mi",
        "100m",
        "0.1",
        "1500000",
        "0.5Ki",
        "1e3",
        "1E6",
        "1000Ki",
        "1.0001Ki",
        "2",
        "1000Mi",
        "1.5Gi",
        "12e2",
        "1000",
        "1000M",
        "0.1n",
        "1.2345678901",
        "3e-3",
        "4096",
        "1048576",
        "7Ti",
        "0.25",
        "64M",
        "0",
    ]
    apply(kube, namespace, DIST)  # the ServiceAccount
    pod = pods_from_templates(dist_docs())[0]
    base = pod["spec"]["containers"][0]
    pod["spec"]["initContainers"] = []

    def stored(quantities: list[str]) -> list[str]:
        pod["spec"]["containers"] = [
            {**copy.deepcopy(base), "name": f"c{i}", "resources": {"limits": {"cpu": q}}}
            for i, q in enumerate(quantities)
        ]
        containers = json_stream(dry_run_pods(kube, namespace, [pod]).stdout)[0]["spec"]["containers"]
        assert [c["resources"]["requests"]["cpu"] for c in containers] == [
            c["resources"]["limits"]["cpu"] for c in containers
        ]
        return [c["resources"]["limits"]["cpu"] for c in containers]

    canonical = [canonical_quantity(s) for s in spellings]
    # What the manifests carry comes back unchanged: a second apply finds nothing to patch.
    assert stored(canonical) == canonical
    # And it is the server's own form of the user's spelling (the server keeps a few spellings
    # verbatim when it considers them canonical already, such as `1E6`).
    for spelling, server, ours in zip(spellings, stored(spellings), canonical, strict=True):
        assert server in (ours, spelling), spelling
