"""Put the JSON pod template (app/constructs/pod.py) into a typed cdk8s object."""

from __future__ import annotations

from cdk8s import ApiObject, JsonPatch

from app.k8s_json import Json, sorted_json


def embed_pod_template(api_object: ApiObject, path: str, template: Json) -> None:
    """Set `path` (a JSON pointer, e.g. /spec/template) of `api_object` to `template`. Applied as a
    JSON patch after cdk8s has sorted the object's keys, so the template is sorted the same way:
    the YAML is byte-identical to a typed k8s.PodTemplateSpec's. The typed object then passes its
    whole JSON through its generated converters (imports/k8s), which drop fields they do not know
    and read a quantity as {"value": ...}: hence the quantities' form here."""
    api_object.add_json_patch(JsonPatch.add(path, sorted_json(template, quantity=lambda q: {"value": str(q)})))
