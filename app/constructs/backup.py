"""The scheduled backup: one CronJob per database."""

from __future__ import annotations

import dataclasses
from typing import Any

from cdk8s import Chart
from constructs import Construct

from ..bindings import k8s
from ..config import Backup
from ..k8s_json import sorted_json
from .plain import document_object, to_json
from .pod import WorkerPodProps, pod_template


@dataclasses.dataclass(frozen=True)
class BackupCronJobProps:
    """One database's backup CronJob: its name, labels, schedule and worker pod (app/props.py builds
    it from a Config)."""

    name: str  # at most 52 characters (app/naming.py)
    labels: dict[str, str]
    schedule: str
    active_deadline_seconds: int | None  # Backup.deadline_for(schedule)
    backup: Backup  # history limits, concurrency, deadlines, time zone, backoff
    pod: WorkerPodProps


def cron_job_document(
    *,
    name: str,
    labels: dict[str, str],
    namespace: str | None,
    schedule: str,
    backup: Backup,
    concurrency_policy: str,
    backoff_limit: int,
    active_deadline_seconds: int | None,
    pod: WorkerPodProps,
) -> dict[str, Any]:
    """A CronJob running one worker pod, as the JSON document cdk8s writes for it (metadata as
    ApiObject writes it: keys sorted, empty labels left out, the chart's namespace). The backup's
    and the drill's share suspend, time zone, history limits and starting deadline (from `backup`)."""
    spec = to_json(
        k8s.CronJobSpec(
            schedule=schedule,
            suspend=backup.suspend or None,
            time_zone=backup.time_zone,
            concurrency_policy=concurrency_policy,
            successful_jobs_history_limit=backup.successful_jobs_history_limit,
            failed_jobs_history_limit=backup.failed_jobs_history_limit,
            # A run missed by more than this (controller down, cluster upgrade) is skipped
            # rather than started late into business hours; the next schedule runs normally.
            starting_deadline_seconds=backup.starting_deadline_seconds,
            job_template=k8s.JobTemplateSpec(
                metadata=k8s.ObjectMeta(labels=labels),
                spec=k8s.JobSpec(
                    backoff_limit=backoff_limit,
                    active_deadline_seconds=active_deadline_seconds,
                    template=k8s.PodTemplateSpec(),  # the JSON pod template, set below
                ),
            ),
        )
    )
    # the pod template is JSON already (app/constructs/pod.py), sorted like cdk8s sorts; the key
    # exists, so it keeps its sorted place
    spec["jobTemplate"]["spec"]["template"] = sorted_json(pod_template(pod, labels))
    metadata = {"labels": dict(sorted(labels.items())) or None, "name": name, "namespace": namespace or None}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {k: v for k, v in metadata.items() if v is not None},
        "spec": spec,
    }


class BackupCronJob(Construct):
    """The backup CronJob of one database: `cnpg-backup-worker backup` on `props.schedule`, after the
    init container that waits for PostgreSQL."""

    def __init__(self, scope: Construct, id: str, *, props: BackupCronJobProps) -> None:
        super().__init__(scope, id)
        self.name = props.name
        self.cron_job = document_object(self, "cronjob", backup_cron_job_document(props, Chart.of(self).namespace))


def backup_cron_job_document(props: BackupCronJobProps, namespace: str | None) -> dict[str, Any]:
    return cron_job_document(
        name=props.name,
        labels=props.labels,
        schedule=props.schedule,
        backup=props.backup,
        concurrency_policy=props.backup.concurrency_policy,
        backoff_limit=props.backup.backoff_limit,
        namespace=namespace,
        active_deadline_seconds=props.active_deadline_seconds,
        pod=props.pod,
    )
