"""The generated PrometheusRule (monitoring.prometheusRule): absent unless enabled, one rule group per
database whose selectors match what the worker pushes, thresholds from the schedule, and the shape
the Prometheus Operator's CRD accepts. Whether the rules fire when they should is
tests/app/test_alert_rules.py (promtool)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from app.config import Config, Monitoring, PrometheusRule
from app.constructs.monitoring import duration
from app.cron import longest_interval_seconds, shortest_interval_seconds
from app.rules import config_warnings
from app.values import config_from_values
from testsupport.app_helpers import PROMETHEUS_RULE_CRD, TWO_CLUSTERS, VARIANTS, Rendered, render, values
from worker import contract

PUSHGATEWAY_URL = "http://prometheus-pushgateway.monitoring.svc:9091"
ENABLED = {"monitoring": {"pushgateway": {"url": PUSHGATEWAY_URL}, "prometheusRule": {"enabled": True}}}
WORKER = 'job="cnpg_pgdump_backup", bucket="my-backups-bucket"'


def _rule(out: Rendered) -> dict[str, Any]:
    return out.one("PrometheusRule")


def _rules(group: dict[str, Any], alert: str) -> list[dict[str, Any]]:
    return [r for r in group["rules"] if r["alert"] == alert]


def _env_names(out: Rendered) -> set[str]:
    return {
        e["name"] for d in out.docs if d["kind"] in ("CronJob", "Job") for c in _pod_containers(d) for e in c["env"]
    }


def _pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    pod = spec["template"]["spec"]
    return list(pod["initContainers"]) + list(pod["containers"])


def test_defaults() -> None:
    monitoring = Monitoring()
    assert monitoring.pushgateway.url == ""
    rule = monitoring.prometheus_rule
    assert (rule.enabled, rule.slack, rule.labels, rule.severity, rule.namespace) == (False, 1.5, {}, "warning", "")


def test_no_rule_and_no_push_by_default(tmp_path: Path) -> None:
    out = render(values(), tmp_path)
    assert out.kind("PrometheusRule") == []
    assert contract.PUSHGATEWAY.env not in _env_names(out)
    assert "monitoring.coreos.com" not in out.text


def test_pushgateway_alone_sets_the_env_on_every_worker_container_but_no_rule(tmp_path: Path) -> None:
    out = render(
        values({"monitoring": {"pushgateway": {"url": PUSHGATEWAY_URL}}, "restore": {"object": "latest"}}), tmp_path
    )
    assert out.kind("PrometheusRule") == []
    containers = [c for d in out.docs if d["kind"] in ("CronJob", "Job") for c in _pod_containers(d)]
    assert len(containers) == 4  # init + backup, init + restore
    for container in containers:
        env = {e["name"]: e for e in container["env"]}
        assert env[contract.PUSHGATEWAY.env] == {"name": contract.PUSHGATEWAY.env, "value": PUSHGATEWAY_URL}


def test_enabled_rule_for_the_default_daily_schedule(tmp_path: Path) -> None:
    out = render(VARIANTS["prometheus_rule"], tmp_path)
    rule = _rule(out)
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["name"] == "cnpg-backup-cnpg-pgdump-backup-alerts"
    assert "namespace" not in rule["metadata"]  # like every object: applied with -n
    labels = rule["metadata"]["labels"]
    assert labels["release"] == "kube-prometheus-stack"
    assert labels["app.kubernetes.io/component"] == "alerts"
    [group] = rule["spec"]["groups"]
    assert group["name"] == "cnpg-backup-cnpg-pgdump-backup"  # the CronJob's name
    assert [r["alert"] for r in group["rules"]] == [
        "CnpgBackupMissing",
        "CnpgBackupMissing",
        "CnpgBackupMissing",
        "CnpgBackupFailed",
        "CnpgBackupFlagged",
    ]
    sel = '{job="cnpg_pgdump_backup", bucket="my-backups-bucket", prefix="appdb", database="appdb"}'
    exprs = {(r["alert"], r["labels"].get("check")): r["expr"] for r in group["rules"]}
    assert exprs == {
        ("CnpgBackupMissing", "last-success-age"): (
            f"time() - cnpg_pgdump_backup_last_success_timestamp_seconds{sel} > 129600"
        ),
        ("CnpgBackupMissing", "metrics-absent"): f"absent(cnpg_pgdump_backup_last_success_timestamp_seconds{sel})",
        ("CnpgBackupMissing", "cronjob-last-success"): (
            'time() - kube_cronjob_status_last_successful_time{namespace="databases", '
            'cronjob="cnpg-backup-cnpg-pgdump-backup"} > 129600'
        ),
        ("CnpgBackupFailed", None): f"cnpg_pgdump_backup_last_run_success{sel} == 0",
        ("CnpgBackupFlagged", None): f"cnpg_pgdump_backup_last_flagged{sel} == 1",
    }
    # the metric names are the contract's, not retyped here by accident
    for name in (contract.METRIC_LAST_SUCCESS, contract.METRIC_LAST_RUN_OK, contract.METRIC_FLAGGED):
        assert name in out.text
    assert f'job="{contract.METRICS_JOB}"' in out.text
    # only the absent() check waits (a new deployment gets one interval × slack for its first backup)
    assert [r.get("for") for r in group["rules"]] == [None, "1d12h", None, None, None]
    for r in group["rules"]:
        base = {"severity": "warning", "bucket": "my-backups-bucket", "prefix": "appdb", "database": "appdb"}
        assert {k: v for k, v in r["labels"].items() if k != "check"} == base
        assert set(r["annotations"]) == {"summary", "description"}


@pytest.mark.parametrize(
    ("schedule", "slack", "seconds"),
    [
        ("0 2 * * *", 1.5, 129600),  # daily: 24 h × 1.5 = 36 h
        ("0 2 * * 1-5", 1.5, 388800),  # weekdays: Friday to Monday is 72 h
        ("0 */6 * * *", 2, 43200),
        ("0 2,3 * * *", 1.5, 124200),  # the longest gap (23 h), not the shortest (1 h)
        ("@weekly", 1.25, 756000),
        ("0 3 1 * *", 1.5, 4017600),  # monthly: 31 days at most
    ],
)
def test_missing_threshold_is_the_longest_gap_times_slack(
    schedule: str, slack: float, seconds: int, tmp_path: Path
) -> None:
    overrides = {"backup": {"schedule": schedule}, "monitoring": {"prometheusRule": {"slack": slack}}}
    rule = _rule(render(values(ENABLED, overrides), tmp_path))
    [group] = rule["spec"]["groups"]
    for r in _rules(group, "CnpgBackupMissing"):
        if r["labels"]["check"] == "metrics-absent":
            assert r["for"] == duration(seconds)
        else:
            assert r["expr"].endswith(f"> {seconds}")
    assert PrometheusRule(slack=slack).missing_after_seconds(schedule) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"), [(129600, "1d12h"), (388800, "4d12h"), (5400, "1h30m"), (90061, "1d1h1m1s"), (0, "0s")]
)
def test_prometheus_durations(seconds: int, text: str) -> None:
    assert duration(seconds) == text


def test_longest_and_shortest_interval_share_one_calendar() -> None:
    assert (shortest_interval_seconds("0 2 * * 1-5"), longest_interval_seconds("0 2 * * 1-5")) == (86400, 259200)
    assert (shortest_interval_seconds("0 2,3 * * *"), longest_interval_seconds("0 2,3 * * *")) == (3600, 82800)
    assert longest_interval_seconds("0 0 29 2 *") == 4 * 365 * 86400 + 86400  # leap days: four years apart
    assert longest_interval_seconds("@hourly") == shortest_interval_seconds("@hourly") == 3600


def test_one_group_per_database(tmp_path: Path) -> None:
    rule = _rule(render(values(TWO_CLUSTERS, ENABLED), tmp_path))
    groups = {g["name"]: g for g in rule["spec"]["groups"]}
    assert set(groups) == {"cnpg-backup-cnpg-pgdump-backup-orders", "cnpg-backup-cnpg-pgdump-backup-billing"}
    for name, database, threshold in (("orders", "orders", 129600), ("billing", "billing", 388800)):
        group = groups[f"cnpg-backup-cnpg-pgdump-backup-{name}"]
        sel = f'{{{WORKER}, prefix="appdb/{name}", database="{database}"}}'
        assert [r["expr"] for r in _rules(group, "CnpgBackupFailed")] == [
            f"cnpg_pgdump_backup_last_run_success{sel} == 0"
        ]
        missing = {r["labels"]["check"]: r["expr"] for r in _rules(group, "CnpgBackupMissing")}
        assert missing["last-success-age"].endswith(f"{sel} > {threshold}")
        # no namespace configured: the kube-state-metrics rule matches the CronJob name alone
        assert missing["cronjob-last-success"] == (
            f'time() - kube_cronjob_status_last_successful_time{{cronjob="cnpg-backup-cnpg-pgdump-backup-{name}"}}'
            f" > {threshold}"
        )
        assert all(r["labels"]["database"] == database for r in group["rules"])


def test_prefix_as_the_worker_pushes_it_and_severity(tmp_path: Path) -> None:
    override = {"s3": {"prefix": "clusters/appdb/"}, "monitoring": {"prometheusRule": {"severity": "critical"}}}
    [group] = _rule(render(values(ENABLED, override), tmp_path))["spec"]["groups"]
    assert all('prefix="clusters/appdb"' in r["expr"] for r in group["rules"] if "cnpg_pgdump" in r["expr"])
    assert {r["labels"]["severity"] for r in group["rules"]} == {"critical"}


def test_empty_prefix_matches_the_label_absent(tmp_path: Path) -> None:
    [group] = _rule(render(values(ENABLED, {"s3": {"prefix": ""}}), tmp_path))["spec"]["groups"]
    [failed] = _rules(group, "CnpgBackupFailed")
    assert 'prefix=""' in failed["expr"]  # PromQL: an empty value matches series without the label
    assert "prefix" not in failed["labels"]


def test_odd_database_names_are_escaped(tmp_path: Path) -> None:
    odd = 'we"ird\\{{db}}'
    [group] = _rule(render(values(ENABLED, {"cnpg": {"database": odd}}), tmp_path))["spec"]["groups"]
    [failed] = _rules(group, "CnpgBackupFailed")
    assert 'database="we\\"ird\\\\{{db}}"' in failed["expr"]
    # label and annotation values are Go templates: a literal `{{` is written as a template printing it
    assert '{{ "{{" }}db}}' in failed["annotations"]["summary"]
    assert failed["labels"]["database"] == 'we"ird\\{{ "{{" }}db}}'  # promtool: test_alert_rules.py


def test_rule_labels_merge_with_the_standard_ones(tmp_path: Path) -> None:
    override = {"monitoring": {"prometheusRule": {"labels": {"release": "kps", "team": "db"}}}}
    labels = _rule(render(values(ENABLED, override), tmp_path))["metadata"]["labels"]
    assert labels["release"] == "kps" and labels["team"] == "db"
    assert labels["app.kubernetes.io/managed-by"] == "cdk8s"


def test_enabled_without_backups_warns_and_generates_no_rule(tmp_path: Path) -> None:
    vals = values(ENABLED, {"backup": {"enabled": False}, "restore": {"object": "latest"}})
    out = render(vals, tmp_path)
    assert out.kind("PrometheusRule") == []
    assert any("no PrometheusRule is generated" in w for w in out.warnings)
    cfg: Config = config_from_values(vals)
    assert any("monitoring.prometheusRule.enabled" in w for w in config_warnings(cfg))


# --- restore drills (verify.enabled): a drill group per database, none without drills ---------------


def test_no_drill_alerts_without_drills(tmp_path: Path) -> None:
    """CnpgBackupDrillFailed without drill CronJobs would only ever watch drills run by hand; the
    drill group comes with verify.enabled."""
    rule = _rule(render(values(TWO_CLUSTERS, ENABLED), tmp_path))
    assert [g["name"] for g in rule["spec"]["groups"]] == [
        "cnpg-backup-cnpg-pgdump-backup-orders",
        "cnpg-backup-cnpg-pgdump-backup-billing",
    ]
    assert "Drill" not in yaml.safe_dump(rule) and contract.METRIC_DRILL_OK not in yaml.safe_dump(rule)


def test_a_drill_group_per_database_with_drills(tmp_path: Path) -> None:
    drills = {"verify": {"enabled": True, "schedule": "0 4 * * 6"}}  # Saturdays: 7 days × 1.5 = 10d12h
    out = render(values(TWO_CLUSTERS, ENABLED, drills), tmp_path)
    groups = {g["name"]: g for g in _rule(out)["spec"]["groups"]}
    base = "cnpg-backup-cnpg-pgdump-backup"
    assert list(groups) == [f"{base}-orders", f"{base}-orders-drill", f"{base}-billing", f"{base}-billing-drill"]
    # each drill group is named after its drill CronJob, which exists
    assert {n for n in groups if n.endswith("-drill")} <= {c["metadata"]["name"] for c in out.kind("CronJob")}
    for name in ("orders", "billing"):
        assert "Drill" not in yaml.safe_dump(groups[f"{base}-{name}"])
        group = groups[f"{base}-{name}-drill"]
        sel = f'{{{WORKER}, prefix="appdb/{name}", database="{name}"}}'
        exprs = {(r["alert"], r["labels"].get("check")): r["expr"] for r in group["rules"]}
        assert exprs == {
            ("CnpgBackupDrillFailed", None): f"cnpg_pgdump_backup_drill_success{sel} == 0",
            ("CnpgBackupDrillMissing", "last-drill-age"): (
                f"time() - cnpg_pgdump_backup_drill_timestamp_seconds{sel} > 907200"
            ),
            ("CnpgBackupDrillMissing", "metrics-absent"): f"absent(cnpg_pgdump_backup_drill_timestamp_seconds{sel})",
        }
        assert [r.get("for") for r in group["rules"]] == [None, None, "10d12h"]
        for r in group["rules"]:
            assert {k: v for k, v in r["labels"].items() if k != "check"} == {
                "severity": "warning",
                "bucket": "my-backups-bucket",
                "prefix": f"appdb/{name}",
                "database": name,
            }
        assert "verify.tmpSizeLimit" in group["rules"][1]["annotations"]["description"]
    assert contract.METRIC_DRILL_LAST in out.text
    _validate_against_crd(_rule(out))


# --- the Prometheus Operator's CRD -----------------------------------------------------------


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD's structural schema as strict JSON schema: an object with `properties` takes no
    other keys (the API server prunes or, with --validate=strict, refuses them)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def _validate_against_crd(doc: dict[str, Any]) -> None:
    crd = next(d for d in yaml.safe_load_all(PROMETHEUS_RULE_CRD.read_text()) if d)
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert crd["spec"]["names"]["kind"] == "PrometheusRule" and crd["spec"]["group"] == "monitoring.coreos.com"
    assert doc["apiVersion"] == f"{crd['spec']['group']}/{version['name']}"
    # No check_schema: a few of the CRD's patterns are Go regexps (`^(?i)(abort|warn)?$`) that
    # Python's `re` refuses; they only constrain fields the generator does not write.
    jsonschema.Draft202012Validator(_strict(version["schema"]["openAPIV3Schema"])).validate(doc)


@pytest.mark.parametrize("vals", [VARIANTS["prometheus_rule"], values(TWO_CLUSTERS, ENABLED)], ids=["one", "two"])
def test_rule_satisfies_the_operators_crd(vals: dict[str, Any], tmp_path: Path) -> None:
    _validate_against_crd(_rule(render(vals, tmp_path)))


def test_crd_check_catches_a_misspelt_field(tmp_path: Path) -> None:
    doc = copy.deepcopy(_rule(render(VARIANTS["prometheus_rule"], tmp_path)))
    doc["spec"]["groups"][0]["rules"][1]["for_"] = doc["spec"]["groups"][0]["rules"][1].pop("for")
    with pytest.raises(jsonschema.ValidationError):
        _validate_against_crd(doc)
    doc = copy.deepcopy(_rule(render(VARIANTS["prometheus_rule"], tmp_path)))
    doc["spec"]["groups"][0]["rules"][1]["for"] = "36 hours"
    with pytest.raises(jsonschema.ValidationError):
        _validate_against_crd(doc)
