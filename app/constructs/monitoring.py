"""Generated alerting: one PrometheusRule (the Prometheus Operator's `monitoring.coreos.com/v1`) with
one rule group per backed-up database, and with restore drills (verify.enabled) one more per database
for its drills.

The alerts read what the worker pushes to a Pushgateway (job `contract.METRICS_JOB`, grouping labels
bucket/prefix/database; worker/contract.py "Metrics") and, for a missing backup, also
kube-state-metrics' CronJob status, which needs no push at all. cdk8s has no import for the CRD, so
the object is a plain `ApiObject` built from the typed dataclasses below.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from cdk8s import ApiObject, ApiObjectMetadata, JsonPatch
from constructs import Construct

from worker import contract

API_VERSION = "monitoring.coreos.com/v1"
KIND = "PrometheusRule"
# kube-state-metrics: when the CronJob last completed a Job successfully (unix time).
KSM_CRONJOB_LAST_SUCCESS = "kube_cronjob_status_last_successful_time"

ALERT_MISSING = "CnpgBackupMissing"
ALERT_FAILED = "CnpgBackupFailed"
ALERT_FLAGGED = "CnpgBackupFlagged"
ALERT_DRILL_FAILED = "CnpgBackupDrillFailed"
ALERT_DRILL_MISSING = "CnpgBackupDrillMissing"
# CnpgBackupMissing has three rules and CnpgBackupDrillMissing two, told apart by this label.
CHECK_LABEL = "check"
CHECK_AGE = "last-success-age"
CHECK_ABSENT = "metrics-absent"
CHECK_CRONJOB = "cronjob-last-success"
CHECK_DRILL_AGE = "last-drill-age"


@dataclasses.dataclass(frozen=True)
class DrillAlertsProps:
    """A database's restore drills (verify.enabled): their own rule group."""

    group: str  # the rule group's name: unique within the PrometheusRule (the drill CronJob's name)
    cronjob: str  # the drill CronJob
    schedule: str  # verify.schedule, spread for this database (BackupTarget.drill_schedule)
    longest_interval_seconds: int  # the longest gap between two runs of `schedule`
    missing_after_seconds: int  # no drill ended for longer than this: CnpgBackupDrillMissing


@dataclasses.dataclass(frozen=True)
class DatabaseAlertsProps:
    """One backed-up database, as the worker labels its pushed metrics and as its CronJob is named."""

    group: str  # the rule group's name: unique within the PrometheusRule
    cronjob: str  # the database's CronJob (kube-state-metrics' `cronjob` label)
    bucket: str  # grouping label `bucket`: s3.bucket
    prefix: str  # grouping label `prefix`: the database's object prefix, as the worker normalizes it
    database: str  # grouping label `database`: the PostgreSQL database name
    schedule: str
    longest_interval_seconds: int  # the longest gap between two runs of `schedule`
    missing_after_seconds: int  # no successful backup for longer than this: CnpgBackupMissing
    drill: DrillAlertsProps | None = None  # None: no drills, no drill rule group


@dataclasses.dataclass(frozen=True)
class PrometheusRuleProps:
    """The PrometheusRule: its name and labels, the databases it watches, severity, slack and the
    CronJobs' namespace for the kube-state-metrics rule."""

    name: str
    labels: dict[str, str]  # the standard labels plus monitoring.prometheusRule.labels
    severity: str
    namespace: str  # the CronJobs' namespace for the kube-state-metrics rule; "": no namespace matcher
    slack: float  # only quoted in the descriptions; the thresholds are in `databases`
    databases: list[DatabaseAlertsProps]


@dataclasses.dataclass(frozen=True)
class AlertRule:
    """One Prometheus alerting rule (a `spec.groups[].rules[]` item of a PrometheusRule)."""

    alert: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]
    for_: str | None = None  # a Prometheus duration

    def to_json(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.alert, "expr": self.expr}
        if self.for_:
            rule["for"] = self.for_
        return {**rule, "labels": dict(self.labels), "annotations": dict(self.annotations)}


@dataclasses.dataclass(frozen=True)
class RuleGroup:
    """A `spec.groups[]` item: one database's backup rules, or its drill rules."""

    name: str
    rules: list[AlertRule]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rules": [r.to_json() for r in self.rules]}


def duration(seconds: int) -> str:
    """A Prometheus duration, largest units first: 129600 -> `1d12h`, 5400 -> `1h30m`."""
    if seconds <= 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{count}{unit}"
    return out


def _string(value: str) -> str:
    """A PromQL string literal (Go escapes: JSON's are a subset)."""
    return json.dumps(value, ensure_ascii=False)


def matchers(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{name}={_string(value)}" for name, value in pairs) + "}"


def worker_selector(db: DatabaseAlertsProps) -> str:
    """The series the worker pushes for this database: its job and all three grouping labels."""
    return matchers(
        [("job", contract.METRICS_JOB), ("bucket", db.bucket), ("prefix", db.prefix), ("database", db.database)]
    )


def cronjob_selector(db: DatabaseAlertsProps, namespace: str) -> str:
    return matchers(([("namespace", namespace)] if namespace else []) + [("cronjob", db.cronjob)])


def _literal(text: str) -> str:
    """User-provided text inside a rule's label or annotation value, which Prometheus expands as a
    Go template: a literal `{{` becomes a template printing it."""
    return text.replace("{{", '{{ "{{" }}')


def _where(db: DatabaseAlertsProps) -> str:
    return _literal(f'database "{db.database}" in s3://{db.bucket}/{db.prefix + "/" if db.prefix else ""}')


def _why(what: str, schedule: str, longest_interval_seconds: int, slack: float, after: str) -> str:
    every = duration(longest_interval_seconds)
    return _literal(f"{what} `{schedule}` runs at least every {every}, × {slack:g} = {after}")


def _qualified(namespace: str, cronjob: str) -> str:
    return _literal(f"{namespace}/{cronjob}" if namespace else cronjob)


@dataclasses.dataclass(frozen=True)
class _DatabaseRule:
    """Builds a database's rules: each labelled with the severity and its bucket, prefix and database."""

    labels: dict[str, str]

    @classmethod
    def of(cls, db: DatabaseAlertsProps, severity: str) -> _DatabaseRule:
        # Rule label values are Go templates too (expanded per alert).
        identity = (("bucket", db.bucket), ("prefix", db.prefix), ("database", db.database))
        return cls({"severity": severity} | {k: _literal(v) for k, v in identity if v})

    def __call__(
        self, alert: str, expr: str, summary: str, description: str, check: str = "", for_: str | None = None
    ) -> AlertRule:
        extra = {CHECK_LABEL: check} if check else {}
        annotations = {"summary": summary, "description": description}
        return AlertRule(alert=alert, expr=expr, labels=self.labels | extra, annotations=annotations, for_=for_)


def database_rules(db: DatabaseAlertsProps, severity: str, namespace: str, slack: float) -> RuleGroup:
    sel, rule, where = worker_selector(db), _DatabaseRule.of(db, severity), _where(db)
    limit, after = db.missing_after_seconds, duration(db.missing_after_seconds)
    why = _why("schedule", db.schedule, db.longest_interval_seconds, slack, after)
    cronjob = _qualified(namespace, db.cronjob)
    missing = f"No successful backup of database {_literal(db.database)} for more than {after}"

    return RuleGroup(
        name=db.group,
        rules=[
            rule(
                ALERT_MISSING,
                f"time() - {contract.METRIC_LAST_SUCCESS}{sel} > {limit}",
                missing,
                f"The newest successful backup of {where} ended {{{{ $value | humanizeDuration }}}} ago ({why}).",
                CHECK_AGE,
            ),
            # The Pushgateway keeps a pushed value until it is deleted, so the age check above sees
            # every stale backup; this one sees no value at all (never a success, the worker cannot
            # reach the Pushgateway, a Pushgateway restarted without persistence, Prometheus not
            # scraping it). `for` instead of absent_over_time: a new deployment gets the same time
            # for its first backup as a running one gets between two.
            rule(
                ALERT_MISSING,
                f"absent({contract.METRIC_LAST_SUCCESS}{sel})",
                missing,
                f"Prometheus has had no {contract.METRIC_LAST_SUCCESS} for {where} for {after} ({why}): no "
                "backup succeeded, the worker cannot reach monitoring.pushgateway.url, or Prometheus does not "
                "scrape the Pushgateway with honor_labels.",
                CHECK_ABSENT,
                for_=after,
            ),
            rule(
                ALERT_MISSING,
                f"time() - {KSM_CRONJOB_LAST_SUCCESS}{cronjob_selector(db, namespace)} > {limit}",
                missing,
                f"The backup CronJob {cronjob} of {where} last completed a Job successfully "
                f"{{{{ $value | humanizeDuration }}}} ago, says kube-state-metrics ({why}).",
                CHECK_CRONJOB,
            ),
            rule(
                ALERT_FAILED,
                f"{contract.METRIC_LAST_RUN_OK}{sel} == 0",
                f"The last backup of database {_literal(db.database)} failed",
                f"The last backup run of {where} failed; its Job's log says why (kubectl logs on the newest "
                f"failed Job of CronJob {cronjob}).",
            ),
            rule(
                ALERT_FLAGGED,
                f"{contract.METRIC_FLAGGED}{sel} == 1",
                f"The newest backup of database {_literal(db.database)} is flagged",
                f"The newest backup of {where} is stored but flagged: the database had no user tables, or the "
                "dump shrank by more than backup.flagShrinkPercent against the previous backup. "
                "`restore --object latest` passes over it; check the database.",
            ),
        ],
    )


def drill_rules(
    db: DatabaseAlertsProps, drill: DrillAlertsProps, severity: str, namespace: str, slack: float
) -> RuleGroup:
    """The drills' group: the last one failed, or none has reported for the drill schedule's longest
    gap × slack — a drill killed before it can report (out of memory; /tmp over its limit, which the
    kubelet answers by evicting the pod at once) never pushes a failure, so CnpgBackupDrillFailed
    alone would stay silent."""
    sel, rule, where = worker_selector(db), _DatabaseRule.of(db, severity), _where(db)
    limit, after = drill.missing_after_seconds, duration(drill.missing_after_seconds)
    why = _why("drill schedule", drill.schedule, drill.longest_interval_seconds, slack, after)
    cronjob = _qualified(namespace, drill.cronjob)
    missing = f"No restore drill of database {_literal(db.database)} has reported for more than {after}"
    causes = (
        f"the drill CronJob {cronjob} is suspended, or its runs are killed before they report (out of memory: "
        "verify.resources; /tmp full: verify.tmpSizeLimit), or its pods cannot start"
    )

    return RuleGroup(
        name=drill.group,
        rules=[
            rule(
                ALERT_DRILL_FAILED,
                f"{contract.METRIC_DRILL_OK}{sel} == 0",
                f"The restore drill of database {_literal(db.database)} failed",
                f"The last restore drill of {where} failed: its newest backup could not be restored and verified "
                f"(kubectl logs on the newest failed Job of CronJob {cronjob}).",
            ),
            rule(
                ALERT_DRILL_MISSING,
                f"time() - {contract.METRIC_DRILL_LAST}{sel} > {limit}",
                missing,
                f"The last restore drill of {where} ended {{{{ $value | humanizeDuration }}}} ago ({why}): {causes}.",
                CHECK_DRILL_AGE,
            ),
            rule(
                ALERT_DRILL_MISSING,
                f"absent({contract.METRIC_DRILL_LAST}{sel})",
                missing,
                f"Prometheus has had no {contract.METRIC_DRILL_LAST} for {where} for {after} ({why}): no drill has "
                f"reported yet — {causes} — or the worker cannot reach monitoring.pushgateway.url.",
                CHECK_ABSENT,
                for_=after,
            ),
        ],
    )


def rule_groups(props: PrometheusRuleProps) -> list[RuleGroup]:
    groups: list[RuleGroup] = []
    for db in props.databases:
        groups.append(database_rules(db, props.severity, props.namespace, props.slack))
        if db.drill is not None:
            groups.append(drill_rules(db, db.drill, props.severity, props.namespace, props.slack))
    return groups


class BackupAlerts(Construct):
    """The PrometheusRule: one rule group per database of `props.databases`, and one per database
    with drills."""

    def __init__(self, scope: Construct, id: str, *, props: PrometheusRuleProps) -> None:
        super().__init__(scope, id)
        self.groups = rule_groups(props)
        self.rule = ApiObject(
            self,
            "prometheus-rule",
            api_version=API_VERSION,
            kind=KIND,
            metadata=ApiObjectMetadata(name=props.name, labels=props.labels),
        )
        self.rule.add_json_patch(JsonPatch.add("/spec", {"groups": [g.to_json() for g in self.groups]}))
