"""The public construct: everything one Config produces, to be placed in any cdk8s chart.

    from cdk8s import App, Chart
    from cnpg_pgdump_backup import CnpgPgdumpBackup, CnpgPgdumpBackupProps, Config

    chart = Chart(App(), "shop", namespace="shop")
    CnpgPgdumpBackup(chart, "backup", props=CnpgPgdumpBackupProps(config=Config(...)))

(In the repository the package is `app`: `from app import ...`.) `python -m app synth` places it
in a chart of its own (app/chart.py), so both produce the same objects.
"""

from __future__ import annotations

import dataclasses

from cdk8s import ApiObject, Chart
from constructs import Construct

from . import naming, oneoff, yaml_text
from . import props as derive
from .config import Config
from .constructs.backup import BackupCronJob, BackupCronJobProps, backup_cron_job_document
from .constructs.drill import DrillCronJob, DrillCronJobProps, drill_cron_job_document
from .constructs.monitoring import BackupAlerts
from .constructs.restore import RestoreJob
from .constructs.secrets import ManagedS3Secret
from .constructs.service_account import WorkerServiceAccount
from .pod_props import s3_credentials
from .rules import config_warnings
from .targets import backup_targets, restore_target


@dataclasses.dataclass(frozen=True)
class CnpgPgdumpBackupProps:
    """What CnpgPgdumpBackup is built from.

    config: the validated configuration (``Config(...)`` in Python, or
    ``app.values.load_values([...])`` / ``config_from_values({...})`` for values files); it raises
    ConfigError, one line per problem, when something is wrong, so a Config is always complete.
    """

    config: Config
    # For app/chart.py: the CronJobs come back as YAML text in `rendered` instead of being cdk8s
    # objects (the kernel hand-over is most of a fleet's synth time); the chart writes them itself.
    render_cron_jobs: bool = False


class CnpgPgdumpBackup(Construct):
    """pg_dump backups of CloudNativePG databases to S3: the ServiceAccount (serviceAccount.create),
    the managed S3 Secret (literal s3 keys only), one backup CronJob per database (and one restore
    drill CronJob per database with verify.enabled), the PrometheusRule alerting on them
    (monitoring.prometheusRule.enabled), and the declarative restore Job when restore.object is set.

    A Construct, not a Chart: its objects belong to the chart it is placed in and take that
    chart's namespace (none when the chart has none: apply with ``kubectl apply -n``). Object
    names come from the config (global.*), so they do not depend on construct ids or on the
    chart's resource-name hashing. With a chart namespace and an empty
    monitoring.prometheusRule.namespace, the alert rules match the CronJobs in that namespace.
    global.namespace is what `python -m app synth` gives its own chart; here the chart decides, and
    a global.namespace that differs from it is reported in ``warnings``.

    ``warnings`` holds what `synth` prints as warnings for this config (e.g. literal S3 keys);
    a library user decides where they go.
    """

    def __init__(self, scope: Construct, id: str, *, props: CnpgPgdumpBackupProps) -> None:
        super().__init__(scope, id)
        cfg = props.config
        self.config = cfg
        self.warnings: list[str] = config_warnings(cfg)
        # (kind, name) of each CronJob and Job, in the order written: what synth's summary names
        # (read back from here, not by parsing the YAML it wrote: that cost 15 s for 1,000 databases)
        self.workloads: list[tuple[str, str]] = []
        chart_namespace = Chart.of(self).namespace
        if cfg.global_.namespace and cfg.global_.namespace != chart_namespace:
            self.warnings.append(
                f"global.namespace {cfg.global_.namespace!r} is not used: the objects take the namespace of "
                f"the chart they are placed in ({chart_namespace or 'none'})"
            )
        credentials = s3_credentials(cfg)
        if cfg.service_account.create:
            WorkerServiceAccount(self, "service-account", props=derive.service_account(cfg))
        if credentials.managed and credentials.secret_name:
            ManagedS3Secret(self, "s3-secret", props=derive.managed_s3_secret(cfg, credentials.secret_name))
        # The YAML of the CronJobs (render_cron_jobs), to go after the cdk8s objects created so far
        # (counted, not re-derived from the conditions above); empty when cdk8s writes them.
        self.rendered: list[str] = []
        self.rendered_after = (
            sum(1 for c in self.node.find_all() if ApiObject.is_api_object(c)) if props.render_cron_jobs else 0
        )
        if cfg.backup.enabled:
            cron_jobs: list[tuple[str, BackupCronJobProps | DrillCronJobProps]] = []
            for target in backup_targets(cfg):
                cron_jobs.append(
                    (f"backup-{target.name or 'default'}", derive.backup_cronjob(cfg, target, credentials))
                )
                if cfg.verify.enabled:
                    cron_jobs.append(
                        (f"drill-{target.name or 'default'}", derive.drill_cronjob(cfg, target, credentials))
                    )
            self.rendered = _rendered([p for _, p in cron_jobs], chart_namespace) if props.render_cron_jobs else []
            for construct_id, cron_job in cron_jobs:
                if not self.rendered:
                    if isinstance(cron_job, DrillCronJobProps):
                        DrillCronJob(self, construct_id, props=cron_job)
                    else:
                        BackupCronJob(self, construct_id, props=cron_job)
                self.workloads.append(("CronJob", cron_job.name))
            if cfg.monitoring.prometheus_rule.enabled:
                rule = derive.prometheus_rule(cfg)
                if not rule.namespace and chart_namespace:
                    rule = dataclasses.replace(rule, namespace=chart_namespace)
                BackupAlerts(self, "alerts", props=rule)
        if cfg.restore_requested:
            target = restore_target(cfg)
            name = naming.restore_job_name(cfg, target)
            restore = RestoreJob(self, "restore", props=oneoff.restore_job_props(cfg, target, name, credentials))
            self.workloads.append(("Job", restore.name))


def _rendered(cron_jobs: list[BackupCronJobProps | DrillCronJobProps], namespace: str | None) -> list[str]:
    """The CronJobs' YAML as cdk8s writes it, or [] when one of them holds a value app/yaml_text.py
    leaves to cdk8s (then cdk8s writes them all, so their order does not change)."""
    try:
        return [
            yaml_text.document(
                drill_cron_job_document(p, namespace)
                if isinstance(p, DrillCronJobProps)
                else backup_cron_job_document(p, namespace)
            )
            for p in cron_jobs
        ]
    except yaml_text.NotPlain:
        return []
