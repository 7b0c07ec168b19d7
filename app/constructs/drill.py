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
from typing import Any

from cdk8s import Chart
from constructs import Construct

from worker.contract import drill_args

from ..config import Backup
from .backup import cron_job_document
from .plain import document_object
from .pod import WorkerPodProps

__all__ = ["DrillCronJob", "DrillCronJobProps", "drill_args", "drill_cron_job_document"]


@dataclasses.dataclass(frozen=True)
class DrillCronJobProps:
    """One database's restore drill CronJob (verify.enabled): name, labels, schedule, worker pod."""

    name: str  # at most 52 characters (app/naming.py drill_cronjob_name)
    labels: dict[str, str]
    schedule: str  # verify.schedule, spread for this database (BackupTarget.drill_schedule)
    active_deadline_seconds: int | None  # verify.activeDeadlineSeconds; None: no deadline
    backup: Backup  # suspend, history limits, time zone, starting deadline: as the backups
    pod: WorkerPodProps  # postgres=None: a drill never connects to the cluster

    def __post_init__(self) -> None:
        if self.pod.postgres is not None:
            raise ValueError("a restore drill pod must not connect to PostgreSQL (WorkerPodProps.postgres=None)")


class DrillCronJob(Construct):
    """The restore drill CronJob of one database: `cnpg-backup-worker drill` restores its newest
    backup into a scratch server inside the pod; the pod gets no PostgreSQL access at all."""

    def __init__(self, scope: Construct, id: str, *, props: DrillCronJobProps) -> None:
        super().__init__(scope, id)
        self.name = props.name
        self.cron_job = document_object(self, "cronjob", drill_cron_job_document(props, Chart.of(self).namespace))


def drill_cron_job_document(props: DrillCronJobProps, namespace: str | None) -> dict[str, Any]:
    # Forbid: two drills would compete for the pod's /tmp; backoff 0: a failed drill is a finding
    return cron_job_document(
        name=props.name,
        labels=props.labels,
        namespace=namespace,
        schedule=props.schedule,
        backup=props.backup,
        concurrency_policy="Forbid",
        backoff_limit=0,
        active_deadline_seconds=props.active_deadline_seconds,
        pod=props.pod,
    )
