"""Restore drills (verify.enabled): one CronJob per backed-up database, `<backup CronJob>-drill`.

Each run restores the newest complete backup into a throw-away PostgreSQL server the worker starts
inside its own pod, under /tmp, and compares every table's row count with the backup's
(worker/drill.py). The pod never connects to the production cluster: its WorkerPodProps carry no
PostgresAccess, so it gets no CNPG Secret, host or password and no init container waiting for the
database.
- concurrencyPolicy Forbid: two drills of one database would only compete for the pod's disk.
- backoffLimit 0: a failed drill is a finding to look at (CnpgBackupDrillFailed), not to retry.
- suspended with the backups (backup.suspend): a rebuilt cluster's backups are not drilled either.
"""

from __future__ import annotations

import dataclasses

from constructs import Construct

from app.config import Backup
from app.constructs.pod import WorkerPodProps, pod_template
from imports import k8s
from worker.contract import drill_args

__all__ = ["DrillCronJob", "DrillCronJobProps", "drill_args"]


@dataclasses.dataclass(frozen=True)
class DrillCronJobProps:
    name: str  # at most 52 characters (app/naming.py drill_cronjob_name)
    labels: dict[str, str]
    schedule: str  # verify.schedule
    active_deadline_seconds: int | None  # verify.activeDeadlineSeconds; None: no deadline
    backup: Backup  # suspend, history limits, time zone, starting deadline: as the backups
    pod: WorkerPodProps  # postgres=None: a drill never connects to the cluster

    def __post_init__(self) -> None:
        if self.pod.postgres is not None:
            raise ValueError("a restore drill pod must not connect to PostgreSQL (WorkerPodProps.postgres=None)")


class DrillCronJob(Construct):
    def __init__(self, scope: Construct, id: str, *, props: DrillCronJobProps) -> None:
        super().__init__(scope, id)
        backup, labels = props.backup, props.labels
        self.name = props.name
        self.cron_job = k8s.KubeCronJob(
            self,
            "cronjob",
            metadata=k8s.ObjectMeta(name=self.name, labels=labels),
            spec=k8s.CronJobSpec(
                schedule=props.schedule,
                suspend=backup.suspend or None,
                time_zone=backup.time_zone,
                concurrency_policy="Forbid",
                successful_jobs_history_limit=backup.successful_jobs_history_limit,
                failed_jobs_history_limit=backup.failed_jobs_history_limit,
                starting_deadline_seconds=backup.starting_deadline_seconds,
                job_template=k8s.JobTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=labels),
                    spec=k8s.JobSpec(
                        backoff_limit=0,
                        active_deadline_seconds=props.active_deadline_seconds,
                        template=pod_template(props.pod, labels),
                    ),
                ),
            ),
        )
