"""The generated alerts, evaluated by Prometheus' own rule engine: `promtool check rules` on the
PrometheusRule's `spec.groups` written as a rule file, and `promtool test rules` with synthetic series
shaped like the worker's pushed metrics (via a Pushgateway scraped with honor_labels) and
kube-state-metrics' CronJob status. Every alert has a case where it must fire, with its exact labels
and annotations, and one where it must not.

promtool is Debian's (package `prometheus`), installed by `bash tools/install-servers.sh monitoring`.
The configuration: two databases, `orders` daily (`0 2 * * *`: missing after 36 h) and `billing` on
weekdays (`30 3 * * 1-5`: Friday to Monday is 72 h, missing after 108 h), slack 1.5, and restore drills
of both daily (`verify.schedule` `0 5 * * *`: no drill reported for 36 h is missing).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from testsupport.app_helpers import TWO_CLUSTERS, render, values
from testsupport.servers import setting
from worker import contract

pytestmark = pytest.mark.integration

INSTALL_HINT = "run `bash tools/install-servers.sh monitoring` (installs Debian's prometheus, which has promtool)"
CONFIG = values(
    TWO_CLUSTERS,
    {
        "monitoring": {
            "pushgateway": {"url": "http://prometheus-pushgateway.monitoring.svc:9091"},
            "prometheusRule": {"enabled": True, "namespace": "databases"},
        },
        "verify": {"enabled": True, "schedule": "0 5 * * *"},
    },
)
BUCKET = "my-backups-bucket"
SAMPLES = "x720"  # every 10 minutes for 120 h
STALE = f"0{SAMPLES}"  # a value of 0 throughout: the last success at t=0
FRESH = f"0+600{SAMPLES}"  # the value is the current time: a success just now, all along


@pytest.fixture(scope="module")
def promtool() -> str:
    try:
        path = setting("CNPG_TEST_PROMTOOL")
    except pytest.fail.Exception:
        pytest.fail(f"CNPG_TEST_PROMTOOL is not set and not recorded in the tools cache: {INSTALL_HINT}", pytrace=False)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: {INSTALL_HINT}", pytrace=False)
    return path


def _rule_file(vals: dict[str, Any], directory: Path) -> Path:
    """The PrometheusRule's spec.groups as a Prometheus rule file (what the operator writes)."""
    [rule] = render(vals, directory / "dist").kind("PrometheusRule")
    path = directory / "cnpg-pgdump-backup.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def rule_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _rule_file(CONFIG, tmp_path_factory.mktemp("rules"))


def _run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)


Check = tuple[str, str, list[dict[str, Any]]]  # eval time, alert name, the alerts expected then


def _test_rules(
    promtool: str, rules: Path, tmp_path: Path, name: str, series: dict[str, str], checks: list[Check]
) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` with one test group: these series (every 10 minutes), these checks."""
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "10m",
        "tests": [
            {
                "name": name,
                "interval": "10m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": [
                    {"eval_time": at, "alertname": alert, "exp_alerts": expected} for at, alert, expected in checks
                ],
            }
        ],
    }
    test_file = tmp_path / f"{name}.test.yaml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False, allow_unicode=True))
    return _run(promtool, "test", "rules", str(test_file))


# --- synthetic series --------------------------------------------------------------------------


def worker(metric: str, db: str, bucket: str = BUCKET) -> str:
    """A series the worker pushed for database `db`, as Prometheus scrapes it off the Pushgateway."""
    return (
        f'{metric}{{job="cnpg_pgdump_backup", instance="pushgateway:9091", bucket="{bucket}", '
        f'prefix="appdb/{db}", database="{db}"}}'
    )


def cronjob(db: str, namespace: str = "databases") -> str:
    return (
        f'kube_cronjob_status_last_successful_time{{job="kube-state-metrics", namespace="{namespace}", '
        f'cronjob="cnpg-backup-cnpg-pgdump-backup-{db}"}}'
    )


# --- the alerts expected, labels and annotations exact ------------------------------------------

WHY = {
    "orders": "schedule `0 2 * * *` runs at least every 1d, × 1.5 = 1d12h",
    "billing": "schedule `30 3 * * 1-5` runs at least every 3d, × 1.5 = 4d12h",
}
AFTER = {"orders": "1d12h", "billing": "4d12h"}


def _where(db: str) -> str:
    return f'database "{db}" in s3://{BUCKET}/appdb/{db}/'


def _rule_labels(db: str, **extra: str) -> dict[str, str]:
    return {"severity": "warning", "bucket": BUCKET, "prefix": f"appdb/{db}", "database": db, **extra}


def _pushed_labels(db: str) -> dict[str, str]:
    return {"job": "cnpg_pgdump_backup", "instance": "pushgateway:9091"}


def missing_age(db: str, ago: str) -> dict[str, Any]:
    return {
        "exp_labels": _rule_labels(db, check="last-success-age") | _pushed_labels(db),
        "exp_annotations": {
            "summary": f"No successful backup of database {db} for more than {AFTER[db]}",
            "description": f"The newest successful backup of {_where(db)} ended {ago} ago ({WHY[db]}).",
        },
    }


def missing_absent(db: str) -> dict[str, Any]:
    return {
        "exp_labels": _rule_labels(db, check="metrics-absent", job="cnpg_pgdump_backup"),
        "exp_annotations": {
            "summary": f"No successful backup of database {db} for more than {AFTER[db]}",
            "description": f"Prometheus has had no cnpg_pgdump_backup_last_success_timestamp_seconds for {_where(db)} "
            f"for {AFTER[db]} ({WHY[db]}): no backup succeeded, the worker cannot reach monitoring.pushgateway.url, "
            "or Prometheus does not scrape the Pushgateway with honor_labels.",
        },
    }


def missing_cronjob(db: str, ago: str) -> dict[str, Any]:
    return {
        "exp_labels": _rule_labels(db, check="cronjob-last-success")
        | {"job": "kube-state-metrics", "namespace": "databases", "cronjob": f"cnpg-backup-cnpg-pgdump-backup-{db}"},
        "exp_annotations": {
            "summary": f"No successful backup of database {db} for more than {AFTER[db]}",
            "description": f"The backup CronJob databases/cnpg-backup-cnpg-pgdump-backup-{db} of {_where(db)} last "
            f"completed a Job successfully {ago} ago, says kube-state-metrics ({WHY[db]}).",
        },
    }


def failed(db: str) -> dict[str, Any]:
    return {
        "exp_labels": _rule_labels(db) | _pushed_labels(db),
        "exp_annotations": {
            "summary": f"The last backup of database {db} failed",
            "description": f"The last backup run of {_where(db)} failed; its Job's log says why (kubectl logs on "
            f"the newest failed Job of CronJob databases/cnpg-backup-cnpg-pgdump-backup-{db}).",
        },
    }


def flagged(db: str) -> dict[str, Any]:
    return {
        "exp_labels": _rule_labels(db) | _pushed_labels(db),
        "exp_annotations": {
            "summary": f"The newest backup of database {db} is flagged",
            "description": f"The newest backup of {_where(db)} is stored but flagged: the database had no user "
            "tables, or the dump shrank by more than backup.flagShrinkPercent against the previous backup. "
            "`restore --object latest` passes over it; check the database.",
        },
    }


def drill_failed(db: str) -> dict[str, Any]:
    return {
        "exp_labels": _rule_labels(db) | _pushed_labels(db),
        "exp_annotations": {
            "summary": f"The restore drill of database {db} failed",
            "description": f"The last restore drill of {_where(db)} failed: its newest backup could not be "
            f"restored and verified (kubectl logs on the newest failed Job of CronJob "
            f"databases/cnpg-backup-cnpg-pgdump-backup-{db}-drill).",
        },
    }


DRILL_WHY = "drill schedule `0 5 * * *` runs at least every 1d, × 1.5 = 1d12h"


def _drill_causes(db: str) -> str:
    return (
        f"the drill CronJob databases/cnpg-backup-cnpg-pgdump-backup-{db}-drill is suspended, or its runs are "
        "killed before they report (out of memory: verify.resources; /tmp full: verify.tmpSizeLimit), or its "
        "pods cannot start"
    )


def drill_missing_age(db: str, ago: str) -> dict[str, Any]:
    return {
        "exp_labels": _rule_labels(db, check="last-drill-age") | _pushed_labels(db),
        "exp_annotations": {
            "summary": f"No restore drill of database {db} has reported for more than 1d12h",
            "description": f"The last restore drill of {_where(db)} ended {ago} ago ({DRILL_WHY}): {_drill_causes(db)}.",
        },
    }


def drill_missing_absent(db: str) -> dict[str, Any]:
    return {
        "exp_labels": _rule_labels(db, check="metrics-absent", job="cnpg_pgdump_backup"),
        "exp_annotations": {
            "summary": f"No restore drill of database {db} has reported for more than 1d12h",
            "description": f"Prometheus has had no cnpg_pgdump_backup_drill_timestamp_seconds for {_where(db)} for "
            f"1d12h ({DRILL_WHY}): no drill has reported yet — {_drill_causes(db)} — or the worker cannot reach "
            "monitoring.pushgateway.url.",
        },
    }


# One promtool test group per case: input series, then (eval time, alert, alerts expected).
CASES: dict[str, tuple[dict[str, str], list[Check]]] = {
    # Both last successes at t=0. 20 h under a daily schedule is fine, 40 h is not; the weekday
    # database may go 100 h (a long weekend and then some), not 110 h.
    "missing-last-success-age": (
        {
            worker(contract.METRIC_LAST_SUCCESS, "orders"): STALE,
            worker(contract.METRIC_LAST_SUCCESS, "billing"): STALE,
        },
        [
            ("20h", "CnpgBackupMissing", []),
            ("40h", "CnpgBackupMissing", [missing_age("orders", "1d 16h 0m 0s")]),
            ("100h", "CnpgBackupMissing", [missing_age("orders", "4d 4h 0m 0s")]),
            (
                "110h",
                "CnpgBackupMissing",
                [missing_age("billing", "4d 14h 0m 0s"), missing_age("orders", "4d 14h 0m 0s")],
            ),
        ],
    ),
    # A new success at 30 h resets the age: nothing at 40 h, and again nothing at 60 h (30 h old).
    "missing-cleared-by-a-new-success": (
        {
            worker(contract.METRIC_LAST_SUCCESS, "orders"): "0x180 108000x540",
            worker(contract.METRIC_LAST_SUCCESS, "billing"): FRESH,
        },
        [
            ("35h", "CnpgBackupMissing", []),
            ("40h", "CnpgBackupMissing", []),
            ("60h", "CnpgBackupMissing", []),
            ("70h", "CnpgBackupMissing", [missing_age("orders", "1d 16h 0m 0s")]),
        ],
    ),
    # The worker's metrics are fresh, but kube-state-metrics says the orders CronJob last succeeded at
    # t=0. A CronJob of the same name in another namespace must not count (nor alert).
    "missing-cronjob-last-success": (
        {
            worker(contract.METRIC_LAST_SUCCESS, "orders"): FRESH,
            worker(contract.METRIC_LAST_SUCCESS, "billing"): FRESH,
            cronjob("orders"): STALE,
            cronjob("orders", namespace="other"): STALE,
            cronjob("billing"): FRESH,
        },
        [
            ("20h", "CnpgBackupMissing", []),
            ("40h", "CnpgBackupMissing", [missing_cronjob("orders", "1d 16h 0m 0s")]),
        ],
    ),
    # Nothing pushed for either database (a series of the same database in another bucket does not
    # count): pending until each database's threshold, then firing.
    "missing-metrics-absent": (
        {
            worker(contract.METRIC_LAST_SUCCESS, "orders", bucket="another-bucket"): FRESH,
            cronjob("orders"): FRESH,
            cronjob("billing"): FRESH,
        },
        [
            ("20h", "CnpgBackupMissing", []),
            ("35h", "CnpgBackupMissing", []),
            ("37h", "CnpgBackupMissing", [missing_absent("orders")]),
            ("107h", "CnpgBackupMissing", [missing_absent("orders")]),
            ("110h", "CnpgBackupMissing", [missing_absent("billing"), missing_absent("orders")]),
        ],
    ),
    # orders' last run fails at 10 h; billing's keeps succeeding.
    "failed": (
        {
            worker(contract.METRIC_LAST_RUN_OK, "orders"): "1x60 0x60",
            worker(contract.METRIC_LAST_RUN_OK, "billing"): "1x120",
        },
        [("5h", "CnpgBackupFailed", []), ("15h", "CnpgBackupFailed", [failed("orders")])],
    ),
    # billing's newest backup is flagged from 10 h on.
    "flagged": (
        {
            worker(contract.METRIC_FLAGGED, "orders"): "0x120",
            worker(contract.METRIC_FLAGGED, "billing"): "0x60 1x60",
        },
        [("5h", "CnpgBackupFlagged", []), ("15h", "CnpgBackupFlagged", [flagged("billing")])],
    ),
    # billing's restore drill fails at 10 h.
    "drill-failed": (
        {
            worker(contract.METRIC_DRILL_OK, "orders"): "1x120",
            worker(contract.METRIC_DRILL_OK, "billing"): "1x60 0x60",
        },
        [("5h", "CnpgBackupDrillFailed", []), ("15h", "CnpgBackupDrillFailed", [drill_failed("billing")])],
    ),
    # orders' last drill ended at t=0 and none since (killed every night before it could report);
    # billing's drills report all along.
    "drill-missing-last-drill-age": (
        {
            worker(contract.METRIC_DRILL_LAST, "orders"): STALE,
            worker(contract.METRIC_DRILL_LAST, "billing"): FRESH,
        },
        [
            ("30h", "CnpgBackupDrillMissing", []),
            ("40h", "CnpgBackupDrillMissing", [drill_missing_age("orders", "1d 16h 0m 0s")]),
        ],
    ),
    # No drill of orders ever reported (one in another bucket does not count): pending until 36 h.
    "drill-missing-metrics-absent": (
        {
            worker(contract.METRIC_DRILL_LAST, "orders", bucket="another-bucket"): FRESH,
            worker(contract.METRIC_DRILL_LAST, "billing"): FRESH,
        },
        [
            ("35h", "CnpgBackupDrillMissing", []),
            ("37h", "CnpgBackupDrillMissing", [drill_missing_absent("orders")]),
        ],
    ),
}


def test_promtool_accepts_the_rule_file(promtool: str, rule_file: Path) -> None:
    out = _run(promtool, "check", "rules", str(rule_file))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 16 rules found" in out.stdout  # per database 5 backup rules and 3 drill rules


def test_odd_names_are_quoted_and_kept_literal(promtool: str, tmp_path: Path) -> None:
    """A database name with quotes, a backslash, template braces and non-ASCII letters: the rules
    parse, select the series pushed under that name, and print the name as it is."""
    odd, prefix = 'we"ird\\{{db}} ünï', "x y/z"
    entry = {"name": "odd", "database": odd, "secretName": "odd-app", "prefix": prefix}
    rules = _rule_file(values(CONFIG, {"databases": [entry]}), tmp_path)
    out = _run(promtool, "check", "rules", str(rules))
    assert out.returncode == 0, out.stdout + out.stderr
    series = (
        f'{contract.METRIC_LAST_RUN_OK}{{job="cnpg_pgdump_backup", bucket="{BUCKET}", prefix="{prefix}", '
        f"database={json.dumps(odd, ensure_ascii=False)}}}"
    )
    expected = {
        "exp_labels": {
            "severity": "warning",
            "job": "cnpg_pgdump_backup",
            "bucket": BUCKET,
            "prefix": prefix,
            "database": odd,
        },
        "exp_annotations": {
            "summary": f"The last backup of database {odd} failed",
            "description": f'The last backup run of database "{odd}" in s3://{BUCKET}/{prefix}/ failed; its Job\'s '
            "log says why (kubectl logs on the newest failed Job of CronJob databases/cnpg-backup-cnpg-pgdump-backup-odd).",
        },
    }
    out = _test_rules(promtool, rules, tmp_path, "odd", {series: "0x12"}, [("1h", "CnpgBackupFailed", [expected])])
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_alerts_fire_exactly_when_they_should(case: str, promtool: str, rule_file: Path, tmp_path: Path) -> None:
    series, checks = CASES[case]
    out = _test_rules(promtool, rule_file, tmp_path, case, series, checks)
    assert out.returncode == 0, f"promtool test rules ({case}):\n{out.stdout}{out.stderr}"
    assert "SUCCESS" in out.stdout
