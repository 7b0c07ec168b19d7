"""The scheduled backup: one CronJob per database."""

from __future__ import annotations

from constructs import Construct

from app import naming
from app.config import BackupTarget, Config
from app.constructs.pod import S3Credentials, WorkerPodProps, pod_template
from imports import k8s
from worker import contract


class BackupCronJob(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cfg: Config,
        target: BackupTarget,
        credentials: S3Credentials,
    ) -> None:
        super().__init__(scope, id)
        backup = cfg.backup
        labels = naming.labels(cfg, "backup", target)
        props = WorkerPodProps(
            cfg=cfg,
            target=target,
            container_name="backup",
            args=contract.backup_args(),
            resources=backup.resources,
            credentials=credentials,
            service_account_name=naming.service_account_name(cfg),
        )
        self.name = naming.cronjob_name(cfg, target)
        self.cron_job = k8s.KubeCronJob(
            self,
            "cronjob",
            metadata=k8s.ObjectMeta(name=self.name, labels=labels),
            spec=k8s.CronJobSpec(
                schedule=target.schedule,
                time_zone=backup.time_zone,
                concurrency_policy=backup.concurrency_policy,
                successful_jobs_history_limit=backup.successful_jobs_history_limit,
                failed_jobs_history_limit=backup.failed_jobs_history_limit,
                # A run missed by more than this (controller down, cluster upgrade) is skipped
                # rather than started late into business hours; the next schedule runs normally.
                starting_deadline_seconds=backup.starting_deadline_seconds,
                job_template=k8s.JobTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=labels),
                    spec=k8s.JobSpec(
                        backoff_limit=backup.backoff_limit,
                        active_deadline_seconds=backup.active_deadline_seconds,
                        template=pod_template(props, labels),
                    ),
                ),
            ),
        )
