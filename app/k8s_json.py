"""The Kubernetes structs the worker pod is built from, as plain JSON dicts instead of jsii objects.

Why: the pod spec (app/constructs/pod.py) must also be rendered where Node.js is not installed
(`python -m app job ...` at 2 AM, app/jobs.py), and the generated `imports.k8s` starts Node.js on
import. These constructors take the same snake_case keyword arguments as `imports.k8s` and return
what cdk8s would write for them: camelCase keys, unset (None) fields left out. The constructs embed
the result unchanged (app/constructs/embed.py), so dist/ and the one-off Jobs come from one
implementation. Only the structs the pod spec uses are listed, so a typo in a struct name is an
AttributeError (and a mypy error). A misspelled field is not caught here: cdk8s drops it from dist/
while the printed Job keeps it, and tests/app/test_oneoff_jobs.py fails on the difference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Json = dict[str, Any]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _struct(kind: str) -> Callable[..., Json]:
    def build(**fields: Any) -> Json:
        return {camel(key): value for key, value in fields.items() if value is not None}

    build.__name__ = build.__qualname__ = kind
    return build


class Quantity(str):
    """A quantity is written as its string, but stays marked: the typed cdk8s objects run an
    embedded template through their converters, which read a quantity as `{"value": ...}`."""

    @classmethod
    def from_string(cls, value: str) -> Quantity:
        return cls(value)


def sorted_json(value: Any, quantity: Callable[[Quantity], Any] = str) -> Any:
    """Plain JSON with keys sorted at every level, as cdk8s writes every object (so an embedded
    template and a typed struct give the same YAML text); `quantity` writes each Quantity."""
    if isinstance(value, Quantity):
        return quantity(value)
    if isinstance(value, dict):
        return {key: sorted_json(value[key], quantity) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_json(item, quantity) for item in value]
    return value


Affinity = _struct("Affinity")
Capabilities = _struct("Capabilities")
Container = _struct("Container")
EmptyDirVolumeSource = _struct("EmptyDirVolumeSource")
EnvVar = _struct("EnvVar")
EnvVarSource = _struct("EnvVarSource")
KeyToPath = _struct("KeyToPath")
LabelSelector = _struct("LabelSelector")
LabelSelectorRequirement = _struct("LabelSelectorRequirement")
LocalObjectReference = _struct("LocalObjectReference")
NodeAffinity = _struct("NodeAffinity")
NodeSelector = _struct("NodeSelector")
NodeSelectorRequirement = _struct("NodeSelectorRequirement")
NodeSelectorTerm = _struct("NodeSelectorTerm")
ObjectMeta = _struct("ObjectMeta")
PodAffinity = _struct("PodAffinity")
PodAffinityTerm = _struct("PodAffinityTerm")
PodAntiAffinity = _struct("PodAntiAffinity")
PodSecurityContext = _struct("PodSecurityContext")
PodSpec = _struct("PodSpec")
PodTemplateSpec = _struct("PodTemplateSpec")
PreferredSchedulingTerm = _struct("PreferredSchedulingTerm")
ResourceRequirements = _struct("ResourceRequirements")
SeccompProfile = _struct("SeccompProfile")
SecretKeySelector = _struct("SecretKeySelector")
SecretVolumeSource = _struct("SecretVolumeSource")
SecurityContext = _struct("SecurityContext")
Toleration = _struct("Toleration")
Volume = _struct("Volume")
VolumeMount = _struct("VolumeMount")
WeightedPodAffinityTerm = _struct("WeightedPodAffinityTerm")
JobSpec = _struct("JobSpec")
