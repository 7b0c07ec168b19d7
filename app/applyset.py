"""Install, upgrade, prune and uninstall like Helm, with kubectl's ApplySet (kubectl >= 1.27).

`kubectl apply --prune --applyset=<parent>` records what it applied: a parent Secret, and the label
`applyset.kubernetes.io/part-of=<id>` on every object it applies. A later apply of the same set
deletes the members the new dist/ no longer holds (a disabled backup, a removed database). Pruning
only ever looks at objects with that label, which kubectl alone writes, so objects of the namespace
we did not apply (another release, a one-off restore Job, the Jobs a CronJob starts, anything
foreign, even with our app.kubernetes.io labels) are never touched. The legacy
`kubectl apply --prune -l <labels>` was not chosen: it would delete one-off restore Jobs (they carry
the release's labels), and its default kind list misses ServiceAccount and PrometheusRule.

Uninstall is not a kubectl verb for ApplySets: `uninstall` reads the parent Secret (the member
kinds and the id) and deletes exactly the members, then the parent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass

from .identity import CHART_NAME

# The parent is a Secret (kubectl's default parent kind). A dot keeps its name apart from every
# object we generate (DNS labels, no dots), like Helm's own `sh.helm.release.v1.<release>.vN`.
PARENT_PREFIX = f"{CHART_NAME}."
ID_LABEL = "applyset.kubernetes.io/id"
PART_OF_LABEL = "applyset.kubernetes.io/part-of"
KINDS_ANNOTATION = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES_ANNOTATION = "applyset.kubernetes.io/additional-namespaces"
ENABLE_ENV = "KUBECTL_APPLYSET=true"  # ApplySet is still alpha in kubectl: this turns it on


def parent_name(release: str) -> str:
    return f"{PARENT_PREFIX}{release}"


def applyset_id(release: str, namespace: str) -> str:
    """The id kubectl derives for a Secret parent (KEP-3659): base64url(sha256(name.namespace.kind.group))."""
    digest = hashlib.sha256(f"{parent_name(release)}.{namespace}.Secret.".encode()).digest()
    return f"applyset-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}-v1"


def apply_command(release: str, namespace: str, directory: str) -> str:
    """The install/upgrade command for a synthesized directory (the README's, and the tests')."""
    ns = shlex.quote(namespace) if namespace else "<namespace>"
    return f"{ENABLE_ENV} kubectl apply -n {ns} --prune --applyset={parent_name(release)} -f {shlex.quote(directory)}"


class UninstallError(Exception):
    """Uninstall could not read or delete the release (one line; the CLI exits 1)."""


@dataclass(frozen=True)
class Uninstall:
    commands: list[list[str]]  # kubectl argument lists (without the kubectl binary)


def _kubectl(kubectl: str, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([kubectl, *args], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UninstallError(f"uninstall: '{kubectl}' not found (install kubectl or pass --kubectl PATH)") from None


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "no output")


def plan_uninstall(release: str, namespace: str, kubectl: str = "kubectl") -> Uninstall:
    """Read the release's ApplySet parent and return the deletions, members first."""
    parent = parent_name(release)
    got = _kubectl(kubectl, "get", "secret", parent, "-n", namespace, "-o", "json", "--ignore-not-found")
    if got.returncode != 0:
        raise UninstallError(f"uninstall: kubectl get secret {parent} -n {namespace} failed: {_first_line(got.stderr)}")
    if not got.stdout.strip():
        raise UninstallError(
            f"uninstall: release '{release}' not found in namespace '{namespace}' (no Secret {parent}; was it "
            f"applied with --applyset={parent}? check the release name and -n); nothing deleted"
        )
    meta = json.loads(got.stdout)["metadata"]
    found_id = (meta.get("labels") or {}).get(ID_LABEL)
    if found_id != applyset_id(release, namespace):
        raise UninstallError(
            f"uninstall: Secret {parent} in '{namespace}' is not the ApplySet parent kubectl made for this "
            f"release (label {ID_LABEL} is {found_id!r}); nothing deleted"
        )
    annotations = meta.get("annotations") or {}
    kinds = [k for k in annotations.get(KINDS_ANNOTATION, "").split(",") if k]
    namespaces = [namespace] + [n for n in annotations.get(NAMESPACES_ANNOTATION, "").split(",") if n]
    commands = [["delete", "-n", ns, ",".join(kinds), "-l", f"{PART_OF_LABEL}={found_id}"] for ns in namespaces]
    return Uninstall(commands=(commands if kinds else []) + [["delete", "-n", namespace, "secret", parent]])


def uninstall(release: str, namespace: str, kubectl: str = "kubectl", dry_run: bool = False) -> int:
    """Delete the release's objects (or, with dry_run, only print the kubectl commands)."""
    plan = plan_uninstall(release, namespace, kubectl)
    for args in plan.commands:
        print(shlex.join(["kubectl", *args]))
        if dry_run:
            continue
        done = _kubectl(kubectl, *args)
        sys.stdout.write(done.stdout)
        if done.returncode != 0:
            raise UninstallError(f"uninstall: kubectl {args[0]} failed: {_first_line(done.stderr)}")
    return 0
