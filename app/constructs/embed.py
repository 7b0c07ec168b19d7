"""Put JSON built without cdk8s (the pod template of app/constructs/pod.py, the restore Job's spec of
app/jobs.py) into a typed cdk8s object."""

from __future__ import annotations

from cdk8s import ApiObject, JsonPatch

from ..k8s_json import Json, sorted_json


def embed_json(api_object: ApiObject, path: str, value: Json) -> None:
    """Set `path` (a JSON pointer, e.g. /spec/template) of `api_object` to `value`. Applied as a
    JSON patch after cdk8s has sorted the object's keys, so the value is sorted the same way:
    the YAML is byte-identical to typed structs'. The typed object then passes its
    whole JSON through its generated converters (imports/k8s), which drop fields they do not know
    and read a quantity as {"value": ...}: hence the quantities' form here."""
    api_object.add_json_patch(JsonPatch.add(path, sorted_json(value, quantity=lambda q: {"value": str(q)})))
