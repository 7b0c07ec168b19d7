"""The Jobs as plain JSON, without cdk8s or Node.js: the restore Job (the construct in
app/constructs/restore.py embeds the same spec) and the one-off operations Jobs (`list`, `status`,
`check`) of `python -m app job`, which must be printable at 2 AM from any machine with Python.

A one-off operations Job reads the bucket only: its pod has no PostgresAccess (no CNPG Secret, no
wait for the database), so it works while the cluster is down, and it sends no heartbeat or webhook
(it is not a backup run). It runs with the backups' ServiceAccount, security context and S3
settings/Secret: nothing new to create or grant.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from worker import contract

from . import k8s_json as k8s
from .config import Restore
from .constructs.pod import WorkerPodProps, pod_template
from .k8s_json import Json, sorted_json
from .naming import RESTORE_OBJECT_ANNOTATION

# A finished one-off operations Job (and its log) is kept this long, then the TTL controller removes
# it, so repeated checks do not pile up. Not for restores: their Job is the record (restore.py).
ONEOFF_TTL_SECONDS = 24 * 3600
# Listing or checking reads a few small objects; a run still going after this is stuck on S3.
ONEOFF_DEADLINE_SECONDS = 600


def restore_args(object_key: str, run_id: str, request: Restore) -> list[str]:
    return contract.restore_args(
        object_key,
        run_id,
        force=request.force,
        backup_before_restore=request.backup_before_restore,
        target_database=request.target_database,
        allow_unverified=request.allow_unverified,
        jobs=request.jobs,
        create_database=request.create_database,
        restore_globals=request.globals,
    )


@dataclasses.dataclass(frozen=True)
class RestoreJobProps:
    name: str  # also the worker's run id
    labels: dict[str, str]
    object_key: str  # shown as an annotation: what this Job restores
    pod: WorkerPodProps  # its args come from restore_args(object_key, name, request)


@dataclasses.dataclass(frozen=True)
class OneOffJobProps:
    """A `list`, `status` or `check` run of the worker, once."""

    name: str
    labels: dict[str, str]
    pod: WorkerPodProps  # postgres=None: reads the bucket only


def restore_job_metadata(props: RestoreJobProps) -> Json:
    return k8s.ObjectMeta(
        name=props.name, labels=props.labels, annotations={RESTORE_OBJECT_ANNOTATION: props.object_key}
    )


def restore_job_spec(props: RestoreJobProps) -> Json:
    # backoffLimit 0 and no TTL: see app/constructs/restore.py
    return k8s.JobSpec(backoff_limit=0, template=pod_template(props.pod, props.labels))


def _job(metadata: Json, spec: Json) -> Json:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def restore_job(props: RestoreJobProps) -> Json:
    return _job(restore_job_metadata(props), restore_job_spec(props))


def oneoff_job(props: OneOffJobProps) -> Json:
    if props.pod.postgres is not None:
        raise ValueError("a one-off list/status/check pod reads the bucket only (WorkerPodProps.postgres=None)")
    spec = k8s.JobSpec(
        # a failed check is an answer, not something to retry
        backoff_limit=0,
        active_deadline_seconds=ONEOFF_DEADLINE_SECONDS,
        ttl_seconds_after_finished=ONEOFF_TTL_SECONDS,
        template=pod_template(props.pod, props.labels),
    )
    return _job(k8s.ObjectMeta(name=props.name, labels=props.labels), spec)


def to_yaml(doc: Json) -> str:
    """One manifest as YAML, keys ordered as cdk8s writes them (apiVersion, kind, metadata, then
    sorted), so `python -m app job` output reads like dist/."""
    plain: dict[str, Any] = sorted_json(doc)
    first = ("apiVersion", "kind", "metadata")
    ordered: dict[str, Any] = {key: plain[key] for key in first if key in plain}
    ordered.update((key, value) for key, value in plain.items() if key not in first)
    return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False, width=10_000)
