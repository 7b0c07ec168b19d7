"""Typed k8s structs written as one plain JSON document, for objects synthesized by the hundred.

A `k8s.KubeCronJob` built from structs costs the jsii kernel (a node process) a round trip per
construct plus the struct tree's conversion on both sides: about 0.1 s per database, 35 s for a
fleet of 1,000 on a busy machine. The constructs still build the typed structs (mypy and the
imports' own checks see every field), but this module turns them into the JSON the kernel would
have produced (jsii names, None dropped, keys sorted as cdk8s sorts them, Quantity as its string)
and hands the kernel one ApiObject with one patch. The manifests are byte-identical
(tests/app snapshots). `python -m app synth` goes one step further for the CronJobs: it writes
that JSON as YAML itself (app/yaml_text.py, app/chart.py), and the kernel never sees them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import jsii._type_checking
from cdk8s import ApiObject, ApiObjectMetadata, JsonPatch
from constructs import Construct

from ..bindings import k8s

# A jsii object's value (Quantity, IntOrString) by its reference id: each is asked for once.
_values: dict[str, Any] = {}


def to_json(value: Any) -> Any:
    """`value` (a k8s struct, list, dict or scalar) as the JSON cdk8s writes for it."""
    mapping = getattr(type(value), "__jsii_name_mapping__", None)
    if mapping is not None:
        fields = {mapping[k]: to_json(v) for k, v in value._values.items() if v is not None}
        return {k: fields[k] for k in sorted(fields)}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(value[k]) for k in sorted(value) if value[k] is not None}
    ref = getattr(value, "__jsii_ref__", None)
    if ref is not None:
        if ref.ref not in _values:
            if not isinstance(value, k8s.Quantity | k8s.IntOrString):
                raise TypeError(f"no plain JSON for {type(value).__name__}")
            _values[ref.ref] = value.value
        return _values[ref.ref]
    return value


def document_object(scope: Construct, id: str, doc: dict[str, Any]) -> ApiObject:
    """An ApiObject that cdk8s writes as `doc` (apiVersion, kind, metadata with name, labels and
    annotations, and spec): the spec goes to the kernel as one patch."""
    metadata = doc["metadata"]
    obj = ApiObject(
        scope,
        id,
        api_version=doc["apiVersion"],
        kind=doc["kind"],
        metadata=ApiObjectMetadata(
            name=metadata["name"], labels=metadata.get("labels"), annotations=metadata.get("annotations")
        ),
    )
    obj.add_json_patch(JsonPatch.add("/spec", doc["spec"]))
    return obj


@contextlib.contextmanager
def without_runtime_type_checks() -> Iterator[None]:
    """Skip the jsii imports' runtime type checks (typeguard, on every field of every struct,
    about 400 per database: half of a fleet's synth time in Python) while building a chart.
    The constructs are checked statically (mypy --strict) and by the tests, which build them
    with the checks on; `python -O` skips the same checks. A jsii without this hook is only slower."""
    if not hasattr(jsii._type_checking, "_resolved_check"):
        yield
        return
    saved = jsii._type_checking._resolved_check
    jsii._type_checking._resolved_check = _no_check
    try:
        yield
    finally:
        jsii._type_checking._resolved_check = saved


def _no_check(argname: str, value: object, expected_type: Any) -> None:
    return None
