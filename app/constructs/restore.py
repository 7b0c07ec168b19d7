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

from constructs import Construct

from ..bindings import k8s
from ..jobs import RestoreJobProps, restore_args, restore_job_metadata, restore_job_spec
from .embed import embed_json

__all__ = ["RestoreJob", "RestoreJobProps", "restore_args"]


class RestoreJob(Construct):
    """The Job of app/jobs.py `restore_job`, as a cdk8s object: the same metadata and spec (the one
    `python -m app job restore` prints without Node.js), typed where cdk8s checks it."""

    def __init__(self, scope: Construct, id: str, *, props: RestoreJobProps) -> None:
        super().__init__(scope, id)
        self.name = props.name
        metadata = restore_job_metadata(props)
        self.job = k8s.KubeJob(
            self,
            "job",
            metadata=k8s.ObjectMeta(
                name=metadata["name"], labels=metadata["labels"], annotations=metadata["annotations"]
            ),
            spec=k8s.JobSpec(template=k8s.PodTemplateSpec()),  # the JSON spec, embedded below
        )
        embed_json(self.job, "/spec", restore_job_spec(props))
