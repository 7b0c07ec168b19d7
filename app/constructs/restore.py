"""The restore Job.

Run-once by design: a restore overwrites a database, so it must never happen again by accident.
- The name is derived from the request (database, object, flags), so re-applying the same
  dist/ finds the existing Job and changes nothing; a new request is a new Job.
- No ttlSecondsAfterFinished: the finished Job is the record that the restore happened. With a
  TTL it would be deleted and the next `kubectl apply -f dist/` would create it, restoring again.
- backoffLimit 0: a failed restore leaves a half-restored database; a human decides what next.
- `--run-id <job name>`: the worker records each run-id in S3 and refuses a second run, so even
  a deleted and re-applied Job does not restore twice.
"""

from __future__ import annotations

import dataclasses

from constructs import Construct

from worker import contract

from ..bindings import k8s
from ..config import Restore
from ..naming import RESTORE_OBJECT_ANNOTATION
from .pod import WorkerPodProps, pod_template


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
    )


@dataclasses.dataclass(frozen=True)
class RestoreJobProps:
    """The restore Job: its name (also the worker's run id, so a re-applied Job never restores twice),
    labels, the object it restores (shown as an annotation) and its worker pod."""

    name: str  # also the worker's run id
    labels: dict[str, str]
    object_key: str  # shown as an annotation: what this Job restores
    pod: WorkerPodProps  # its args come from restore_args(object_key, name, request)


class RestoreJob(Construct):
    """A run-once restore Job (`backoffLimit: 0`, no TTL): `cnpg-backup-worker restore` of one backup
    into one database. Used by the declarative restore and by `restore-job`."""

    def __init__(self, scope: Construct, id: str, *, props: RestoreJobProps) -> None:
        super().__init__(scope, id)
        self.name = props.name
        self.job = k8s.KubeJob(
            self,
            "job",
            metadata=k8s.ObjectMeta(
                name=props.name,
                labels=props.labels,
                annotations={RESTORE_OBJECT_ANNOTATION: props.object_key},
            ),
            spec=k8s.JobSpec(backoff_limit=0, template=pod_template(props.pod, props.labels)),
        )
