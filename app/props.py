"""From one Config to each construct's props: the only place that reads the whole config for the
constructs. Each construct sees just its typed props (cdk8s-plus style), so it can be built and
tested on its own (tests/app/test_constructs.py)."""

from __future__ import annotations

from worker import contract

from . import naming
from .config import Config
from .constructs.backup import BackupCronJobProps
from .constructs.drill import DrillCronJobProps, drill_args
from .constructs.monitoring import DatabaseAlertsProps, DrillAlertsProps, PrometheusRuleProps
from .constructs.pod import S3Credentials
from .constructs.secrets import ManagedS3SecretProps
from .constructs.service_account import ServiceAccountProps
from .cron import longest_interval_seconds
from .pod_props import postgres_access, superuser_access, worker_pod
from .targets import BackupTarget, backup_targets


def service_account(cfg: Config) -> ServiceAccountProps:
    return ServiceAccountProps(
        name=naming.service_account_name(cfg),
        labels=naming.labels(cfg, "service-account"),
        annotations=dict(cfg.service_account.annotations),
    )


def managed_s3_secret(cfg: Config, name: str) -> ManagedS3SecretProps:
    s3 = cfg.s3
    if s3.access_key_id is None or s3.secret_access_key is None:
        raise ValueError("a managed S3 Secret needs s3.accessKeyId and s3.secretAccessKey")
    return ManagedS3SecretProps(
        name=name,
        labels=naming.labels(cfg, "s3-credentials"),
        access_key_id=s3.access_key_id,
        secret_access_key=s3.secret_access_key,
    )


def backup_cronjob(cfg: Config, target: BackupTarget, credentials: S3Credentials) -> BackupCronJobProps:
    return BackupCronJobProps(
        name=naming.cronjob_name(cfg, target),
        labels=naming.labels(cfg, "backup", target),
        schedule=target.schedule,
        active_deadline_seconds=cfg.backup.deadline_for(target.schedule),
        backup=cfg.backup,
        pod=worker_pod(
            cfg,
            target,
            postgres=postgres_access(cfg, target),
            container_name="backup",
            args=contract.backup_args(),
            resources=cfg.backup.resources,
            credentials=credentials,
            notify=True,
            encrypts=True,
            dumps=True,
            superuser=superuser_access(cfg, target) if cfg.backup.globals.enabled else None,
            globals_backup=cfg.backup.globals.enabled,
        ),
    )


def drill_cronjob(cfg: Config, target: BackupTarget, credentials: S3Credentials) -> DrillCronJobProps:
    verify = cfg.verify
    return DrillCronJobProps(
        name=naming.drill_cronjob_name(cfg, target),
        labels=naming.labels(cfg, "drill", target),
        schedule=target.drill_schedule,
        active_deadline_seconds=verify.active_deadline_seconds or None,
        backup=cfg.backup,
        pod=worker_pod(
            cfg,
            target,
            postgres=None,  # a drill restores into its own throw-away server, never the cluster
            container_name="drill",
            args=drill_args(),
            resources=verify.resources,
            credentials=credentials,
            tmp_size_limit=verify.tmp_size_limit,
            notify=True,
            decrypts=True,
        ),
    )


def prometheus_rule(cfg: Config) -> PrometheusRuleProps:
    rule = cfg.monitoring.prometheus_rule
    return PrometheusRuleProps(
        name=naming.prometheus_rule_name(cfg),
        labels={**rule.labels, **naming.labels(cfg, "alerts")},  # the config refuses overlaps
        severity=rule.severity,
        namespace=rule.namespace,
        slack=rule.slack,
        databases=[
            DatabaseAlertsProps(
                group=naming.cronjob_name(cfg, target),
                cronjob=naming.cronjob_name(cfg, target),
                bucket=cfg.s3.bucket,
                # the worker pushes the prefix normalized (worker/metrics.py)
                prefix=contract.normalize_prefix(target.prefix),
                database=target.database,
                schedule=target.schedule,
                longest_interval_seconds=longest_interval_seconds(target.schedule),
                missing_after_seconds=rule.missing_after_seconds(target.schedule),
                drill=drill_alerts(cfg, target) if cfg.verify.enabled else None,
            )
            for target in backup_targets(cfg)
        ],
    )


def drill_alerts(cfg: Config, target: BackupTarget) -> DrillAlertsProps:
    schedule = target.drill_schedule
    return DrillAlertsProps(
        group=naming.drill_cronjob_name(cfg, target),
        cronjob=naming.drill_cronjob_name(cfg, target),
        schedule=schedule,
        longest_interval_seconds=longest_interval_seconds(schedule),
        missing_after_seconds=cfg.monitoring.prometheus_rule.missing_after_seconds(schedule),
    )
