"""Each construct on its own, from its typed props only (cdk8s `Testing`), besides the whole-chart
snapshots: what a construct writes follows from its props, and nothing else reaches it."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import cdk8s
import pytest
from pydantic import SecretStr

from app.config import S3, Backup, Cnpg, Resources, SecretKeySelector, SecurityContext
from app.constructs.backup import BackupCronJob, BackupCronJobProps
from app.constructs.drill import DrillCronJob, DrillCronJobProps, drill_args
from app.constructs.monitoring import BackupAlerts, DatabaseAlertsProps, DrillAlertsProps, PrometheusRuleProps
from app.constructs.pod import Notifications, PostgresAccess, S3Credentials, WorkerPodProps
from app.constructs.restore import RestoreJob, RestoreJobProps
from app.constructs.secrets import ManagedS3Secret, ManagedS3SecretProps
from app.constructs.service_account import ServiceAccountProps, WorkerServiceAccount
from app.targets import BackupTarget
from testsupport.app_helpers import validate_strict
from worker import contract

LABELS = {"app.kubernetes.io/name": "cnpg-pgdump-backup"}
TARGET = BackupTarget(
    name=None,
    database="orders",
    secret_name="orders-app",
    service_name="",
    prefix="orders",
    schedule="15 3 * * *",
    drill_schedule="0 5 * * 0",
)


POSTGRES = PostgresAccess(
    secret_name="orders-app",
    service_name="",
    cnpg=Cnpg(ssl_mode="verify-full", ssl_root_cert_secret=SecretKeySelector(name="ca", key="ca.crt")),
    wait_timeout_seconds=42,
)


def _pod(args: list[str], **overrides: Any) -> WorkerPodProps:
    fields: dict[str, Any] = {
        "target": TARGET,
        "postgres": POSTGRES,
        "container_name": "worker",
        "args": args,
        "resources": Resources(),
        "credentials": S3Credentials(secret_name="s3-creds", managed=False),
        "service_account_name": "backup-sa",
        "backup": Backup(format="custom", compression_level=6),
        "s3": S3(bucket="bkt", region="eu-west-1", endpoint="https://s3.example"),
        "security_context": SecurityContext(run_as_user=1234),
        "annotations": {"prometheus.io/scrape": "false"},
    }
    fields.update(overrides)
    return WorkerPodProps(**fields)


def _synth(build: Any) -> list[dict[str, Any]]:
    chart = cdk8s.Testing.chart()
    build(chart)
    docs = [d for d in cdk8s.Testing.synth(chart) if d]
    for d in docs:
        validate_strict(d)
    return docs


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_service_account_from_its_props() -> None:
    props = ServiceAccountProps(name="sa-1", labels=LABELS, annotations={"eks.amazonaws.com/role-arn": "arn:x"})
    [doc] = _synth(lambda c: WorkerServiceAccount(c, "sa", props=props))
    assert doc["kind"] == "ServiceAccount" and doc["metadata"]["name"] == "sa-1"
    assert doc["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:x"}
    assert doc["automountServiceAccountToken"] is False


def test_managed_secret_holds_the_keys_base64_in_data_only() -> None:
    props = ManagedS3SecretProps(
        name="s3", labels=LABELS, access_key_id=SecretStr("AKIAEXAMPLE"), secret_access_key=SecretStr("s3cr3t/key")
    )
    [doc] = _synth(lambda c: ManagedS3Secret(c, "secret", props=props))
    assert "stringData" not in doc
    decoded = {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}
    assert decoded == {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t/key"}


def test_suspended_backup_cronjob() -> None:
    props = BackupCronJobProps(
        name="orders-backup",
        labels=LABELS,
        schedule=TARGET.schedule,
        active_deadline_seconds=None,
        backup=Backup(suspend=True),
        pod=_pod(contract.backup_args()),
    )
    [doc] = _synth(lambda c: BackupCronJob(c, "backup", props=props))
    assert doc["spec"]["suspend"] is True and "activeDeadlineSeconds" not in doc["spec"]["jobTemplate"]["spec"]


def test_backup_cronjob_from_its_props() -> None:
    props = BackupCronJobProps(
        name="orders-backup",
        labels=LABELS,
        schedule=TARGET.schedule,
        active_deadline_seconds=1234,
        backup=Backup(concurrency_policy="Replace", backoff_limit=4),
        pod=_pod(contract.backup_args()),
    )
    [doc] = _synth(lambda c: BackupCronJob(c, "backup", props=props))
    spec = doc["spec"]
    assert (doc["kind"], doc["metadata"]["name"], spec["schedule"]) == ("CronJob", "orders-backup", "15 3 * * *")
    assert spec["concurrencyPolicy"] == "Replace" and spec["jobTemplate"]["spec"]["backoffLimit"] == 4
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 1234  # the props' value, not Backup's
    assert "suspend" not in spec
    pod = spec["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "false"}
    [init], [main] = pod["spec"]["initContainers"], pod["spec"]["containers"]
    assert init["args"] == ["wait", "--timeout", "42"] and main["args"] == ["backup"]
    env = _env(main)
    # the pod's own props, not the CronJob's `backup` section, decide the worker's settings
    assert (env["CNPG_BACKUP_FORMAT"], env["CNPG_BACKUP_COMPRESSION_LEVEL"]) == ("custom", "6")
    assert env["PGSSLROOTCERT"] == "/etc/cnpg-backup/ca/ca.crt" and env["CNPG_BACKUP_S3_PREFIX"] == "orders"
    assert env["PGPASSWORD"] == {"secretKeyRef": {"name": "orders-app", "key": "password"}}
    assert pod["spec"]["securityContext"]["runAsUser"] == 1234


def test_restore_job_from_its_props() -> None:
    key = "orders/orders_2024-01-21_02-00-00.sql.gz"
    args = contract.restore_args(key, "restore-1", force=True)
    props = RestoreJobProps(name="restore-1", labels=LABELS, object_key=key, pod=_pod(args, annotations={}))
    [doc] = _synth(lambda c: RestoreJob(c, "restore", props=props))
    assert doc["kind"] == "Job" and doc["metadata"]["annotations"] == {"cnpg-pgdump-backup/restore-object": key}
    assert doc["spec"]["backoffLimit"] == 0 and "ttlSecondsAfterFinished" not in doc["spec"]
    assert doc["spec"]["template"]["spec"]["containers"][0]["args"] == args
    assert "annotations" not in doc["spec"]["template"]["metadata"]


def test_prometheus_rule_from_its_props() -> None:
    orders = DatabaseAlertsProps(
        group="g-orders",
        cronjob="cj-orders",
        bucket="bkt",
        prefix="orders",
        database="orders",
        schedule=TARGET.schedule,
        longest_interval_seconds=300,
        missing_after_seconds=1000,  # whatever the props say, not derived again from the schedule
    )
    props = PrometheusRuleProps(
        name="alerts-1",
        labels=LABELS | {"release": "kps"},
        severity="page",
        namespace="",
        slack=3,
        databases=[orders, dataclasses.replace(orders, group="g-billing", database="billing", prefix="")],
    )
    [doc] = _synth(lambda c: BackupAlerts(c, "alerts", props=props))
    assert (doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) == (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        "alerts-1",
    )
    assert doc["metadata"]["labels"] == {"app.kubernetes.io/name": "cnpg-pgdump-backup", "release": "kps"}
    first, second = doc["spec"]["groups"]
    assert (first["name"], second["name"]) == ("g-orders", "g-billing")
    age, absent, cronjob = first["rules"][:3]
    assert age["expr"].endswith('{job="cnpg_pgdump_backup", bucket="bkt", prefix="orders", database="orders"} > 1000')
    assert absent["for"] == "16m40s"
    assert cronjob["expr"] == 'time() - kube_cronjob_status_last_successful_time{cronjob="cj-orders"} > 1000'
    assert "runs at least every 5m, × 3 = 16m40s" in age["annotations"]["description"]
    assert {r["labels"]["severity"] for g in (first, second) for r in g["rules"]} == {"page"}
    assert 'prefix="", database="billing"' in second["rules"][3]["expr"]


def _drill_props(**pod_overrides: Any) -> DrillCronJobProps:
    return DrillCronJobProps(
        name="orders-drill",
        labels=LABELS,
        schedule="0 5 * * 0",
        active_deadline_seconds=600,
        # whatever the backup section says about retries and concurrency, a drill runs once, alone
        backup=Backup(
            suspend=True,
            concurrency_policy="Allow",
            backoff_limit=4,
            successful_jobs_history_limit=1,
            failed_jobs_history_limit=7,
            time_zone="Europe/Berlin",
            starting_deadline_seconds=120,
        ),
        pod=_pod(drill_args(), **{"postgres": None, "tmp_size_limit": "20Gi", **pod_overrides}),
    )


def test_drill_cronjob_from_its_props() -> None:
    [doc] = _synth(lambda c: DrillCronJob(c, "drill", props=_drill_props()))
    spec = doc["spec"]
    assert (doc["kind"], doc["metadata"]["name"], spec["schedule"]) == ("CronJob", "orders-drill", "0 5 * * 0")
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["timeZone"]) == ("Forbid", True, "Europe/Berlin")
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (1, 7)
    assert spec["startingDeadlineSeconds"] == 120
    job = spec["jobTemplate"]["spec"]
    assert (job["backoffLimit"], job["activeDeadlineSeconds"]) == (0, 600)
    pod = job["template"]["spec"]
    assert "initContainers" not in pod
    [main] = pod["containers"]
    assert main["args"] == ["drill"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "20Gi"}}]
    env = _env(main)
    # no connection to PostgreSQL: not even the TLS settings, though the pod props' Cnpg had a CA
    assert [n for n in env if n.startswith("PG")] == ["PGDATABASE"] and env["PGDATABASE"] == "orders"
    refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in main["env"] if "valueFrom" in e]
    assert refs == ["s3-creds", "s3-creds"] and "orders-app" not in str(doc)
    assert (env["CNPG_BACKUP_S3_BUCKET"], env["CNPG_BACKUP_S3_PREFIX"], env["CNPG_BACKUP_S3_ENDPOINT"]) == (
        "bkt",
        "orders",
        "https://s3.example",
    )
    assert env["HOME"] == env["TMPDIR"] == "/tmp"


def test_drill_props_refuse_a_pod_that_connects_to_postgres() -> None:
    with pytest.raises(ValueError, match="must not connect to PostgreSQL"):
        _drill_props(postgres=POSTGRES)


def test_notifications_are_secret_key_refs_from_the_pod_props() -> None:
    notify = Notifications(
        heartbeat_url=SecretKeySelector(name="hb", key="url"),
        webhook_url=SecretKeySelector(name="wh", key="slack"),
        notify_success=True,
    )
    props = BackupCronJobProps(
        name="orders-backup",
        labels=LABELS,
        schedule=TARGET.schedule,
        active_deadline_seconds=None,
        backup=Backup(),
        pod=_pod(contract.backup_args(), notifications=notify),
    )
    [doc] = _synth(lambda c: BackupCronJob(c, "backup", props=props))
    for container in (
        doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"]
        + doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    ):
        env = _env(container)
        assert env[contract.HEARTBEAT_URL.env] == {"secretKeyRef": {"name": "hb", "key": "url"}}
        assert env[contract.WEBHOOK_URL.env] == {"secretKeyRef": {"name": "wh", "key": "slack"}}
        assert env[contract.NOTIFY_SUCCESS.env] == "true"
    # none by default
    [doc] = _synth(lambda c: DrillCronJob(c, "drill", props=_drill_props()))
    env = _env(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0])
    assert not {contract.HEARTBEAT_URL.env, contract.WEBHOOK_URL.env, contract.NOTIFY_SUCCESS.env} & set(env)


def test_prometheus_rule_drill_group_from_its_props() -> None:
    orders = DatabaseAlertsProps(
        group="g-orders",
        cronjob="cj-orders",
        bucket="bkt",
        prefix="orders",
        database="orders",
        schedule=TARGET.schedule,
        longest_interval_seconds=300,
        missing_after_seconds=1000,
    )
    drill = DrillAlertsProps(
        group="g-orders-drill",
        cronjob="cj-orders-drill",
        schedule="0 5 * * 0",
        longest_interval_seconds=600,
        missing_after_seconds=2000,  # whatever the props say
    )
    props = PrometheusRuleProps(
        name="alerts-1",
        labels=LABELS,
        severity="page",
        namespace="db",
        slack=3,
        databases=[
            dataclasses.replace(orders, drill=drill),
            dataclasses.replace(orders, group="g-billing", database="billing"),
        ],
    )
    [doc] = _synth(lambda c: BackupAlerts(c, "alerts", props=props))
    groups = {g["name"]: g for g in doc["spec"]["groups"]}
    assert list(groups) == ["g-orders", "g-orders-drill", "g-billing"]  # billing has no drills: no group
    for name in ("g-orders", "g-billing"):
        assert "CnpgBackupDrill" not in str(groups[name])
    failed, age, absent = groups["g-orders-drill"]["rules"]
    sel = '{job="cnpg_pgdump_backup", bucket="bkt", prefix="orders", database="orders"}'
    assert (failed["alert"], failed["expr"]) == ("CnpgBackupDrillFailed", f"cnpg_pgdump_backup_drill_success{sel} == 0")
    assert "CronJob db/cj-orders-drill" in failed["annotations"]["description"]
    assert (age["alert"], age["labels"]["check"]) == ("CnpgBackupDrillMissing", "last-drill-age")
    assert age["expr"] == f"time() - cnpg_pgdump_backup_drill_timestamp_seconds{sel} > 2000"
    assert "drill schedule `0 5 * * 0` runs at least every 10m, × 3 = 33m20s" in age["annotations"]["description"]
    assert (absent["labels"]["check"], absent["for"]) == ("metrics-absent", "33m20s")
    assert absent["expr"] == f"absent(cnpg_pgdump_backup_drill_timestamp_seconds{sel})"
    assert {r["labels"]["severity"] for r in groups["g-orders-drill"]["rules"]} == {"page"}
