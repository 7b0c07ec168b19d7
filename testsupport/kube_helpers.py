"""What the API-server tests share: synth a configuration into a directory, apply it with the real
kubectl, and build Pods from the pod templates (the only way to see PodSecurity *enforced*: for a
CronJob or Job the server only warns)."""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from testsupport.apiserver import KubeAPIServer, Kubectl
from testsupport.app_helpers import PROMETHEUS_RULE_CRD, REPO, Rendered, pod_templates, render

DIST = REPO / "dist"
# Everything the project may generate. No Role, RoleBinding or ClusterRole: the pods need no API access.
ALLOWED_KINDS = {"ServiceAccount", "Secret", "CronJob", "Job", "PrometheusRule"}


def synth(vals: dict[str, Any], outdir: Path) -> Rendered:
    outdir.mkdir(parents=True, exist_ok=True)
    return render(vals, outdir)


def dist_docs(path: Path = DIST) -> list[dict[str, Any]]:
    return [d for p in sorted(path.glob("*.k8s.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def apply(kube: KubeAPIServer, ns: str, path: Path, *extra: str, check: bool = True) -> Kubectl:
    """`kubectl apply -f <dir>` the way the README says, strictly validated; any warning fails."""
    out = kube.kubectl("apply", "-n", ns, "--validate=strict", "-f", str(path), *extra, check=check)
    if check:
        assert out.warnings == [], f"kubectl apply printed warnings:\n{out.stderr}"
    return out


def run_documented(kube: KubeAPIServer, command: str, check: bool = True) -> Kubectl:
    """Run a kubectl command line exactly as the README prints it (`KUBECTL_APPLYSET=true kubectl ...`)."""
    words = shlex.split(command)
    env = {}
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[0] == "kubectl", command
    out = kube.kubectl(*words[1:], env=env, check=check)
    if check:
        assert out.warnings == [], f"{command} printed warnings:\n{out.stderr}"
    return out


def pods_from_templates(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One Pod per pod template, as the Job controller would create it."""
    pods = []
    for doc in docs:
        for template in pod_templates(doc):
            meta = copy.deepcopy(template.get("metadata") or {})
            meta["name"] = f"{doc['metadata']['name'][:57]}-pod"
            pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template["spec"])})
    return pods


def dry_run_pods(kube: KubeAPIServer, ns: str, pods: list[dict[str, Any]], check: bool = True) -> Kubectl:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": pods})
    return kube.kubectl(
        "create", "-n", ns, "--dry-run=server", "--validate=strict", "-o", "json", "-f", "-", input=body, check=check
    )


def install_crds(kube: KubeAPIServer) -> None:
    """The custom resources the project may generate (monitoring.prometheusRule), as the Prometheus
    Operator defines them, so the API server validates (and prunes) ours against the real schema."""
    kube.kubectl("apply", "--server-side", "-f", str(PROMETHEUS_RULE_CRD))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/prometheusrules.monitoring.coreos.com")


def objects(
    kube: KubeAPIServer, ns: str, kinds: str = "serviceaccounts,secrets,cronjobs,jobs,prometheusrules"
) -> dict[str, dict]:
    """`kind/name` → object, for everything of these kinds in the namespace (minus the default SA)."""
    items = json.loads(kube.kubectl("get", kinds, "-n", ns, "-o", "json", "--show-managed-fields").stdout)["items"]
    return {
        f"{i['kind']}/{i['metadata']['name']}": i
        for i in items
        if not (i["kind"] == "ServiceAccount" and i["metadata"]["name"] == "default")
    }


def resource_versions(kube: KubeAPIServer, ns: str) -> dict[str, str]:
    return {k: v["metadata"]["resourceVersion"] for k, v in objects(kube, ns).items()}


def json_stream(text: str) -> list[dict[str, Any]]:
    """`kubectl create -o json -f <List>` prints one JSON document per object, back to back."""
    decoder, docs, pos = json.JSONDecoder(), [], 0
    text = text.strip()
    while pos < len(text):
        doc, end = decoder.raw_decode(text, pos)
        docs += doc["items"] if doc.get("kind") == "List" else [doc]
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return docs
