"""The chart: composes the constructs for a Config and writes them to a dist/ directory (the
declarative workflow; the one-off Jobs of the imperative one: app/oneoff.py, without cdk8s)."""

from __future__ import annotations

from pathlib import Path

from cdk8s import App, Chart
from constructs import Construct

import app  # noqa: F401 - sets the jsii environment before cdk8s is imported
from app import naming, oneoff, props
from app.config import Config
from app.constructs.backup import BackupCronJob
from app.constructs.drill import DrillCronJob
from app.constructs.monitoring import BackupAlerts
from app.constructs.plain import without_runtime_type_checks
from app.constructs.restore import RestoreJob
from app.constructs.secrets import ManagedS3Secret
from app.constructs.service_account import WorkerServiceAccount
from app.identity import CHART_NAME
from app.oneoff import Warn, warn_stderr
from app.pod_props import s3_credentials
from app.rules import config_warnings
from app.targets import backup_targets, restore_target

OUTPUT_SUFFIX = ".k8s.yaml"


class BackupChart(Chart):
    """Everything one config produces: ServiceAccount, managed S3 Secret, one backup CronJob per
    database (and one restore drill CronJob per database with verify.enabled), the PrometheusRule
    alerting on them (monitoring.prometheusRule.enabled), and the declarative restore Job when
    restore.object is set."""

    def __init__(self, scope: Construct, id: str, *, cfg: Config) -> None:
        super().__init__(scope, id, disable_resource_name_hashes=True, namespace=cfg.global_.namespace or None)
        credentials = s3_credentials(cfg)
        if cfg.service_account.create:
            WorkerServiceAccount(self, "service-account", props=props.service_account(cfg))
        if credentials.managed and credentials.secret_name:
            ManagedS3Secret(self, "s3-secret", props=props.managed_s3_secret(cfg, credentials.secret_name))
        if cfg.backup.enabled:
            for target in backup_targets(cfg):
                BackupCronJob(
                    self, f"backup-{target.name or 'default'}", props=props.backup_cronjob(cfg, target, credentials)
                )
                if cfg.verify.enabled:
                    DrillCronJob(
                        self, f"drill-{target.name or 'default'}", props=props.drill_cronjob(cfg, target, credentials)
                    )
            if cfg.monitoring.prometheus_rule.enabled:
                BackupAlerts(self, "alerts", props=props.prometheus_rule(cfg))
        if cfg.restore_requested:
            target = restore_target(cfg)
            name = naming.restore_job_name(cfg, target)
            RestoreJob(self, "restore", props=oneoff.restore_job_props(cfg, target, name, credentials))


def synth(cfg: Config, outdir: str | Path = "dist", warn: Warn = warn_stderr) -> list[Path]:
    """Write the manifests for `cfg` to `outdir` and return the files written.

    Old *.k8s.yaml files are removed first: a resource dropped from the config must not linger in
    dist/ and be re-applied by `kubectl apply -f dist/`. Other files in outdir are left alone.
    """
    for message in config_warnings(cfg):
        warn(message)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob(f"*{OUTPUT_SUFFIX}"):
        stale.unlink()
    application = App(outdir=str(outdir), output_file_extension=OUTPUT_SUFFIX)
    with without_runtime_type_checks():
        BackupChart(application, CHART_NAME, cfg=cfg)
    application.synth()
    return sorted(outdir.glob(f"*{OUTPUT_SUFFIX}"))
