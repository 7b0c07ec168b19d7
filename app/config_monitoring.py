"""The `monitoring` section of the configuration, and SecretKeySelector (also cnpg.sslRootCertSecret):
split from app/config.py, which re-exports every name here."""

from __future__ import annotations

from pydantic import Field

from .cron import longest_interval_seconds
from .validation import (
    AnnotationValue,
    HttpUrl,
    LabelValue,
    NamespaceName,
    ObjectName,
    QualifiedName,
    SecretKey,
    StrictModel,
)


class SecretKeySelector(StrictModel):
    _config_path = "cnpg.sslRootCertSecret"
    name: ObjectName = Field(min_length=1, description="Name of the Secret (in the namespace of the pods)")
    key: SecretKey = Field(description="Key within the Secret")


class Pushgateway(StrictModel):
    _config_path = "monitoring.pushgateway"
    # Where the worker pushes its metrics (env CNPG_BACKUP_PUSHGATEWAY_URL); empty: no push.
    url: HttpUrl = Field(
        default="",
        description=(
            "A Prometheus Pushgateway (`http://` or `https://`, a path allowed, no credentials) the "
            "worker pushes its metrics to after every run (env `CNPG_BACKUP_PUSHGATEWAY_URL`, set on the "
            "worker pods only when this is set); empty: no push"
        ),
    )


class PrometheusRule(StrictModel):
    """The generated PrometheusRule (Prometheus Operator): alerts on the worker's pushed metrics and
    on kube-state-metrics' CronJob status, one rule group per database (app/constructs/monitoring.py)."""

    _config_path = "monitoring.prometheusRule"
    enabled: bool = Field(
        default=False,
        description=(
            "Generate a `PrometheusRule` (`monitoring.coreos.com/v1`, the Prometheus Operator's CRD) "
            "`<fullname>-alerts` with one rule group per database, named after its CronJob, and with "
            "`verify.enabled` one more per database, named after its drill CronJob: the alerts of "
            "[Alerts](#alerts) below. Needs `monitoring.pushgateway.url` (without pushed metrics the "
            "alerts could never fire, or fire for ever); with `backup.enabled: false` nothing is "
            "generated and synth warns"
        ),
    )
    # A backup is missing once none succeeded within the schedule's longest gap between two runs
    # times this (1.5: a daily backup is missing after 36 h), so a slow or retried run does not alert.
    slack: float = Field(
        default=1.5,
        gt=1,
        allow_inf_nan=False,
        description=(
            "`CnpgBackupMissing` fires when no backup succeeded within the longest interval between two "
            "runs of the database's schedule times this (> 1): daily `0 2 * * *` → 24 h × 1.5 = 129600 s "
            "(36 h); weekdays `0 2 * * 1-5` → 72 h (Friday to Monday) × 1.5 = 388800 s"
        ),
    )
    # Extra labels on the PrometheusRule object, for the operator's ruleSelector (e.g. release: ...).
    labels: dict[QualifiedName, LabelValue] = Field(
        default_factory=dict,
        description=(
            "Extra labels on the PrometheusRule object, so the operator's `ruleSelector` picks it up "
            "(kube-prometheus-stack: `release: <its release name>`). The generator's own "
            "`app.kubernetes.io/*` labels cannot be overridden"
        ),
    )
    severity: LabelValue = Field(default="warning", min_length=1, description="The `severity` label of every alert")
    # Namespace of the CronJobs, for the kube-state-metrics rule; empty: any namespace.
    namespace: NamespaceName = Field(
        default="",
        description=(
            "The namespace the CronJobs are applied to, matched by the kube-state-metrics rule "
            '(`namespace="…"`). Empty: no namespace matcher, the CronJob name alone (the manifests carry '
            "no namespace)"
        ),
    )

    def missing_after_seconds(self, schedule: str) -> int:
        """Seconds without a successful backup after which CnpgBackupMissing fires."""
        return round(longest_interval_seconds(schedule) * self.slack)


class Heartbeat(StrictModel):
    """A heartbeat ping after every backup run (healthchecks.io style: GET <url>, <url>/fail)."""

    _config_path = "monitoring.heartbeat"
    # The URL carries a secret (the check's id): it reaches the pods only as a secretKeyRef.
    url_secret: SecretKeySelector | None = Field(
        default=None,
        description=(
            "`{name, key}` of a Secret key holding a heartbeat URL (healthchecks.io style): after every "
            "backup run the worker GETs the URL on success and `<url>/fail` on failure. The URL carries a "
            "secret (the check's id), so it reaches the backup and drill pods only as "
            "`CNPG_BACKUP_HEARTBEAT_URL` ← `secretKeyRef`; there is no key for a literal URL, and none "
            "ever appears in `dist/`"
        ),
    )


class Webhook(StrictModel):
    """A JSON message (Slack-compatible `text`) after a failed backup run, and after a good one
    with notify_success."""

    _config_path = "monitoring.webhook"
    # The URL carries a secret (the webhook's token): it reaches the pods only as a secretKeyRef.
    url_secret: SecretKeySelector | None = Field(
        default=None,
        description=(
            "`{name, key}` of a Secret key holding a webhook URL (Slack, Mattermost or any receiver of "
            "JSON with a `text` field): after a failed backup run the worker POSTs a message naming the "
            "database and the error. Reaches the backup and drill pods only as `CNPG_BACKUP_WEBHOOK_URL` "
            "← `secretKeyRef`, like the heartbeat"
        ),
    )
    notify_success: bool = Field(
        default=False,
        description=(
            'Also POST after a successful run (key, size, flags); `CNPG_BACKUP_NOTIFY_SUCCESS: "true"`, '
            "absent when false. Needs `monitoring.webhook.urlSecret`"
        ),
    )


class Monitoring(StrictModel):
    _config_path = "monitoring"
    annotations: dict[QualifiedName, AnnotationValue] = Field(
        default_factory=dict, description="Annotations on the backup/restore/drill pod templates"
    )
    # Extensions.
    pushgateway: Pushgateway = Field(
        default_factory=Pushgateway, description="Where the worker pushes its metrics after every run"
    )
    prometheus_rule: PrometheusRule = Field(
        default_factory=PrometheusRule,
        description="The generated PrometheusRule (Prometheus Operator) alerting on the backups and drills",
    )
    heartbeat: Heartbeat = Field(
        default_factory=Heartbeat,
        description="A heartbeat ping after every backup run (healthchecks.io style: GET `<url>`, `<url>/fail`)",
    )
    webhook: Webhook = Field(
        default_factory=Webhook,
        description=(
            "A JSON message (Slack-compatible `text`) after a failed backup run, and after a good one "
            "with `notifySuccess`"
        ),
    )
