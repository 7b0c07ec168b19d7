"""The configuration model: chart compatibility, defaults, and one clear error per problem."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from app import config as C
from app.config import Config
from app.errors import ConfigError
from app.rules import config_warnings
from app.scheduling import Affinity
from app.targets import backup_targets
from app.values import config_from_values, merge_values
from testsupport.app_helpers import values

# The seed chart's parameter tables (README) with their defaults; `See values.yaml` ones are
# checked separately. backup.image is the one deliberate change (docs/configuration.md).
SEED_DEFAULTS: dict[str, Any] = {
    "global.fullnameOverride": "",
    "global.nameOverride": "",
    "backup.enabled": True,
    "backup.schedule": "0 2 * * *",
    "backup.imagePullPolicy": "IfNotPresent",
    "backup.retentionDays": 0,
    "backup.nodeSelector": {},
    "backup.tolerations": [],
    "backup.affinity": {},
    "backup.successfulJobsHistoryLimit": 3,
    "backup.failedJobsHistoryLimit": 3,
    "backup.concurrencyPolicy": "Forbid",
    "cnpg.secretName": "",
    "cnpg.database": "",
    "cnpg.serviceName": "",
    "s3.bucket": "",
    "s3.prefix": "",
    "s3.region": "us-east-1",
    "s3.endpoint": "",
    "s3.secretName": "",
    "s3.useExistingSecret": False,
    "s3.storageClass": "",
    "restore.enabled": True,
    "restore.object": "",
    "restore.force": False,
    "restore.backupBeforeRestore": False,
    "securityContext.runAsNonRoot": True,
    "securityContext.runAsUser": 999,
    "securityContext.runAsGroup": 999,
    "securityContext.readOnlyRootFilesystem": True,
    "securityContext.allowPrivilegeEscalation": False,
    "monitoring.annotations": {},
}


def _problems(vals: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_values(vals)
    return str(info.value)


def _field_default(dotted: str) -> Any:
    """A default as declared on the model (no values given, no required-field validation)."""
    section, _, name = dotted.partition(".")
    section_field = next(f for f in Config.model_fields.values() if (f.validation_alias or f.alias) == section)
    model = section_field.default_factory()  # type: ignore[misc]
    attr = next(n for n, f in type(model).model_fields.items() if f.alias == name)
    value = getattr(model, attr)
    if isinstance(value, Affinity):
        return {} if value.is_empty else value
    return value


@pytest.mark.parametrize("key", sorted(SEED_DEFAULTS))
def test_seed_parameter_exists_with_chart_default(key: str) -> None:
    assert _field_default(key) == SEED_DEFAULTS[key]


def test_resources_and_image_defaults() -> None:
    backup = C.Backup()
    # the image the release workflow publishes, tagged with the package version
    version = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["version"]
    assert backup.image == f"ghcr.io/cnpg-pgdump-backup/cnpg-pgdump-backup-worker:{version}"
    for resources in (backup.resources, C.Restore().resources):
        assert resources.requests == {"cpu": "100m", "memory": "256Mi"}
        assert resources.limits == {"cpu": "2", "memory": "1Gi"}


def test_extension_defaults() -> None:
    cfg = config_from_values(values())
    assert cfg.global_.release_name == "cnpg-backup"
    assert (cfg.backup.format, cfg.backup.level, cfg.backup.wait_timeout_seconds) == ("plain", 2, 150)
    assert cfg.backup.compression_level is None  # unset: the codec's own default (lz4 1, gzip/zstd 2)
    assert (cfg.backup.backoff_limit, cfg.backup.active_deadline_seconds, cfg.backup.time_zone) == (
        1,
        None,
        None,
    )
    assert cfg.backup.log_format == "json"
    assert cfg.backup.compression is None and cfg.backup.codec == "gzip"

    assert cfg.cnpg.ssl_mode == "prefer" and cfg.cnpg.ssl_root_cert_secret is None
    assert cfg.s3.access_key_id is None and cfg.s3.secret_access_key is None
    assert cfg.restore.target_database == "" and cfg.restore.database == ""
    assert (
        cfg.service_account.create is True and cfg.service_account.name == "" and cfg.service_account.annotations == {}
    )
    assert cfg.security_context.fs_group == 999
    assert cfg.databases == []


@pytest.mark.parametrize(
    ("schedule", "explicit", "deadline"),
    [
        ("0 2 * * *", None, 77760),  # daily: 90% of 24 h
        ("0 */6 * * *", None, 19440),
        ("0 2,3 * * *", None, 3240),  # the shortest gap counts, not the average
        ("*/5 * * * *", None, 600),  # floor: 10 minutes
        ("@weekly", None, 544320),
        ("0 0 29 2 *", None, 113607360),  # leap days only: four years apart
        ("0 2 * * *", 7200, 7200),
        ("0 2 * * *", 0, None),  # 0: no deadline
    ],
)
def test_active_deadline_derives_from_the_schedule(schedule: str, explicit: int | None, deadline: int | None) -> None:
    backup = C.Backup(schedule=schedule, active_deadline_seconds=explicit)
    assert backup.deadline_for(schedule) == deadline


def test_python_construction_equals_yaml_shape() -> None:
    from_python = Config(
        cnpg=C.Cnpg(secret_name="appdb-app", database="appdb"),
        s3=C.S3(bucket="my-backups-bucket", prefix="appdb", secret_name="s3-backup-creds"),
    )
    assert from_python == config_from_values(values())
    assert from_python.model_dump(by_alias=True)["global"]["releaseName"] == "cnpg-backup"


def test_python_construction_errors_use_dotted_camel_case_paths() -> None:
    with pytest.raises(ConfigError) as info:
        C.Cnpg(secret_name="Not_Valid")
    assert str(info.value).startswith("config error: cnpg.secretName: 'Not_Valid' is not a valid")


def test_config_is_immutable() -> None:
    cfg = config_from_values(values())
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        cfg.backup.enabled = False  # type: ignore[misc]


def test_several_problems_one_line_each() -> None:
    message = _problems({"backup": {"schedule": "bad", "concurrencyPolicy": "Never"}, "s3": {"bucket": "A"}})
    lines = message.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("config error: ") for line in lines)


# --- every rule rejects bad input, naming the dotted field ------------------------------------

DB2 = [{"name": "orders", "database": "orders"}, {"name": "billing", "database": "billing"}]

PUSHGATEWAY = {"pushgateway": {"url": "http://prometheus-pushgateway:9091"}}
# Each of these fails alone with exactly one line (test_monitoring_problem_is_one_line).
MONITORING_BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "slack-not-above-1",
        {"monitoring": {"prometheusRule": {"slack": 1}}},
        "monitoring.prometheusRule.slack: Input should be greater than 1",
    ),
    (
        "slack-not-a-number",
        {"monitoring": {"prometheusRule": {"slack": "lots"}}},
        "monitoring.prometheusRule.slack: Input should be a valid number",
    ),
    (
        "rule-typo",
        {"monitoring": {"prometheusRule": {"enable": True}}},
        "monitoring.prometheusRule.enable: unknown key (did you mean 'enabled'?)",
    ),
    (
        "severity-empty",
        {"monitoring": {"prometheusRule": {"severity": ""}}},
        "monitoring.prometheusRule.severity: String should have at least 1 character",
    ),
    (
        "rule-label-value",
        {"monitoring": {"prometheusRule": {"labels": {"release": "kube prometheus"}}}},
        "monitoring.prometheusRule.labels.release: 'kube prometheus' is not a valid label value",
    ),
    (
        "rule-label-is-the-generators",
        {"monitoring": {**PUSHGATEWAY, "prometheusRule": {"enabled": True, "labels": {"app.kubernetes.io/name": "x"}}}},
        'monitoring.prometheusRule.labels["app.kubernetes.io/name"]: set by the generator on every object',
    ),
    (
        "namespace",
        {"monitoring": {"prometheusRule": {"namespace": "Databases"}}},
        "monitoring.prometheusRule.namespace: 'Databases' is not a valid DNS-1123 label",
    ),
    (
        "rule-without-pushgateway",
        {"monitoring": {"prometheusRule": {"enabled": True}}},
        "monitoring.prometheusRule.enabled: requires monitoring.pushgateway.url",
    ),
    (
        "pushgateway-no-scheme",
        {"monitoring": {"pushgateway": {"url": "prometheus-pushgateway:9091"}}},
        "monitoring.pushgateway.url: 'prometheus-pushgateway:9091' must be an http:// or https:// URL with a host",
    ),
    (
        "pushgateway-credentials",
        {"monitoring": {"pushgateway": {"url": "http://admin:hunter2@pushgateway:9091"}}},
        "monitoring.pushgateway.url: must not contain credentials",
    ),
    (
        "pushgateway-typo",
        {"monitoring": {"pushgateway": {"uri": "http://pushgateway:9091"}}},
        "monitoring.pushgateway.uri: unknown key (did you mean 'url'?)",
    ),
    # A URL holding a secret has no literal key to go into: only a Secret reference.
    (
        "webhook-literal-url",
        {"monitoring": {"webhook": {"url": "https://hooks.slack.com/services/T0/B0/hunter2"}}},
        "monitoring.webhook.url: unknown key; allowed keys here: urlSecret, notifySuccess",
    ),
    (
        "heartbeat-literal-url",
        {"monitoring": {"heartbeat": {"url": "https://hc-ping.com/hunter2"}}},
        "monitoring.heartbeat.url: unknown key; allowed keys here: urlSecret",
    ),
    (
        "heartbeat-secret-missing-key",
        {"monitoring": {"heartbeat": {"urlSecret": {"name": "alerts"}}}},
        "monitoring.heartbeat.urlSecret.key: required",
    ),
    (
        "webhook-secret-name",
        {"monitoring": {"webhook": {"urlSecret": {"name": "Bad_Name", "key": "url"}}}},
        "monitoring.webhook.urlSecret.name: 'Bad_Name' is not a valid Kubernetes object name",
    ),
    (
        "webhook-secret-key",
        {"monitoring": {"webhook": {"urlSecret": {"name": "alerts", "key": "a/b"}}}},
        "monitoring.webhook.urlSecret.key: 'a/b' is not a valid Secret key",
    ),
    (
        "notify-success-without-webhook",
        {"monitoring": {"webhook": {"notifySuccess": True}}},
        "monitoring.webhook.notifySuccess: true requires monitoring.webhook.urlSecret",
    ),
    (
        "notify-success-not-a-bool",
        {"monitoring": {"webhook": {"urlSecret": {"name": "a", "key": "b"}, "notifySuccess": "sometimes"}}},
        "monitoring.webhook.notifySuccess: Input should be a valid boolean",
    ),
]

DRILLS = {"verify": {"enabled": True}}
VERIFY_BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "schedule",
        {"verify": {"schedule": "0 5 * *"}},
        "verify.schedule: not a valid cron expression '0 5 * *' (expected 5 fields",
    ),
    ("schedule-range", {"verify": {"schedule": "0 5 * * 7"}}, "verify.schedule: not a valid cron expression"),
    (
        "tmp-size",
        {"verify": {"tmpSizeLimit": "10 GB"}},
        "verify.tmpSizeLimit: '10 GB' is not a Kubernetes quantity",
    ),
    (
        "deadline",
        {"verify": {"activeDeadlineSeconds": -1}},
        "verify.activeDeadlineSeconds: Input should be greater than or equal to 0",
    ),
    ("enabled", {"verify": {"enabled": "maybe"}}, "verify.enabled: Input should be a valid boolean"),
    ("typo", {"verify": {"tmpSize": "1Gi"}}, "verify.tmpSize: unknown key (did you mean 'tmpSizeLimit'?)"),
    (
        "resources-typo",
        {"verify": {"resources": {"limit": {"memory": "1Gi"}}}},
        "verify.resources.limit: unknown key (did you mean 'limits'?)",
    ),
    (
        # against the drill's own default limit (2Gi), not the backup's (1Gi)
        "request-above-limit",
        {"verify": {"resources": {"requests": {"memory": "3Gi"}}}},
        "verify.resources.requests.memory: 3Gi is more than limits.memory (2Gi)",
    ),
    (
        # a database named `<other>-drill`: its backup CronJob would be the other's drill CronJob
        "drill-cronjob-meets-a-backup-cronjob",
        {
            **DRILLS,
            "cnpg": {"database": ""},
            "databases": [{"name": "orders", "database": "o"}, {"name": "orders-drill", "database": "od"}],
        },
        "databases[1].name: its backup CronJob name 'cnpg-backup-cnpg-pgdump-backup-orders-drill' (43 characters) "
        "is the same as databases[0]'s restore drill CronJob (verify.enabled)",
    ),
    (
        # one database: a fullname cut to 52 characters right after `-drill` is the drill's name too
        "drill-cronjob-meets-the-backup-cronjob",
        {**DRILLS, "global": {"fullnameOverride": "a" * 46 + "-drill-prod"}},
        "verify.enabled: the restore drill CronJob name '" + "a" * 46 + "-drill' (shortened to 52 characters) is the "
        "same as the backup CronJob's",
    ),
]

BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "cron-4-fields",
        {"backup": {"schedule": "0 2 * *"}},
        "backup.schedule: not a valid cron expression '0 2 * *' (expected 5 fields: minute hour day-of-month month day-of-week",
    ),
    (
        "cron-minute",
        {"backup": {"schedule": "61 2 * * *"}},
        "backup.schedule: not a valid cron expression '61 2 * * *' (minute: 61 is out of range 0-59)",
    ),
    ("cron-hour", {"backup": {"schedule": "0 24 * * *"}}, "(hour: 24 is out of range 0-23)"),
    ("cron-dom", {"backup": {"schedule": "0 2 0 * *"}}, "(day-of-month: 0 is out of range 1-31)"),
    ("cron-month", {"backup": {"schedule": "0 2 * 13 *"}}, "(month: 13 is out of range 1-12)"),
    ("cron-month-name", {"backup": {"schedule": "0 2 * jam *"}}, "month: 'jam' is not a number or a name"),
    ("cron-dow", {"backup": {"schedule": "0 2 * * 7"}}, "(day-of-week: 7 is out of range 0-6)"),
    ("cron-step", {"backup": {"schedule": "*/0 * * * *"}}, "step '0' must be a positive number"),
    ("cron-range", {"backup": {"schedule": "0 5-2 * * *"}}, "range 5-2 runs backwards"),
    (
        "cron-macro",
        {"backup": {"schedule": "@every 1h"}},
        "backup.schedule: not a valid cron expression '@every 1h' (unknown macro",
    ),
    ("cron-tz", {"backup": {"schedule": "TZ=UTC 0 2 * * *"}}, "set backup.timeZone instead"),
    (
        "cron-db",
        {"cnpg": {"database": ""}, "databases": [{"name": "a", "database": "a", "schedule": "x"}]},
        "databases[0].schedule: not a valid cron",
    ),
    (
        "concurrency",
        {"backup": {"concurrencyPolicy": "Sometimes"}},
        "backup.concurrencyPolicy: Input should be 'Allow', 'Forbid' or 'Replace' (got 'Sometimes')",
    ),
    (
        "pull-policy",
        {"backup": {"imagePullPolicy": "Maybe"}},
        "backup.imagePullPolicy: Input should be 'Always', 'IfNotPresent' or 'Never'",
    ),
    (
        "pull-secret",
        {"backup": {"imagePullSecrets": [{"name": "Reg_Cred"}]}},
        "backup.imagePullSecrets[0]: 'Reg_Cred' is not a valid",
    ),
    (
        "quantity",
        {"backup": {"resources": {"limits": {"memory": "1GB"}}}},
        "backup.resources.limits.memory: '1GB' is not a Kubernetes quantity",
    ),
    (
        "quantity-restore",
        {"restore": {"resources": {"requests": {"cpu": "-1"}}}},
        "restore.resources.requests.cpu: '-1' must not be negative",
    ),
    (
        "resource-name",
        {"backup": {"resources": {"limits": {"bad name": "1"}}}},
        "backup.resources.limits.bad name: 'bad name' is not a valid Kubernetes key",
    ),
    (
        "request-over-limit",
        {"backup": {"resources": {"requests": {"memory": "2Gi"}}}},
        "backup.resources.requests.memory: 2Gi is more than limits.memory (1Gi)",
    ),
    (
        "secret-name",
        {"cnpg": {"secretName": "App_Secret"}},
        "cnpg.secretName: 'App_Secret' is not a valid Kubernetes object name",
    ),
    (
        "s3-secret-name",
        {"s3": {"secretName": "UPPER"}},
        "s3.secretName: 'UPPER' is not a valid Kubernetes object name",
    ),
    (
        "ca-secret-key",
        {"cnpg": {"sslRootCertSecret": {"name": "ca", "key": "a/b"}}},
        "cnpg.sslRootCertSecret.key: 'a/b' is not a valid Secret key",
    ),
    (
        "ca-secret-missing-key",
        {"cnpg": {"sslRootCertSecret": {"name": "ca"}}},
        "cnpg.sslRootCertSecret.key: required",
    ),
    (
        "name-override",
        {"global": {"nameOverride": "Bad_Name"}},
        "global.nameOverride: 'Bad_Name' is not a valid DNS-1123 name",
    ),
    (
        "fullname-override",
        {"global": {"fullnameOverride": "-x"}},
        "global.fullnameOverride: '-x' is not a valid DNS-1123 name",
    ),
    (
        "release-name",
        {"global": {"releaseName": "r" * 54}},
        "global.releaseName: '" + "r" * 54 + "' is longer than 53 characters",
    ),
    (
        "db-name",
        {"cnpg": {"database": ""}, "databases": [{"name": "Orders", "database": "o"}]},
        "databases[0].name: 'Orders' is not a valid DNS-1123 label",
    ),
    (
        "db-name-dup",
        {
            "cnpg": {"database": ""},
            "databases": [{"name": "a", "database": "a"}, {"name": "a", "database": "b", "prefix": "x"}],
        },
        "databases[1].name: 'a' is already used by databases[0]",
    ),
    (
        # different names that shorten to the same 52-character CronJob name
        "db-cronjob-name-collision",
        {
            "cnpg": {"database": ""},
            "databases": [
                {"name": "cnpg-" + "a" * 35, "database": "one", "prefix": "one"},
                {"name": "a" * 35, "database": "two", "prefix": "two"},
            ],
        },
        "databases[1].name: its CronJob name 'cnpg-backup-cnpg-" + "a" * 35 + "' (shortened to 52 characters)",
    ),
    (
        "db-prefix-overlap",
        {
            "cnpg": {"database": ""},
            "databases": [
                {"name": "a", "database": "a", "prefix": "p"},
                {"name": "b", "database": "b", "prefix": "p/b"},
            ],
        },
        "databases[1].prefix: 'p/b' overlaps databases[0]'s prefix 'p'",
    ),
    (
        "db-database-missing",
        {"cnpg": {"database": ""}, "databases": [{"name": "a"}]},
        "databases[0].database: required",
    ),
    (
        "db-and-cnpg-database",
        {"databases": [{"name": "a", "database": "a"}]},
        "cnpg.database: not used when `databases` is set",
    ),
    (
        "db-secret-unresolved",
        {"cnpg": {"database": "", "secretName": ""}, "databases": [{"name": "a", "database": "a"}]},
        "databases[0].secretName: required when backup.enabled is true or restore.object is set (or set cnpg.secretName",
    ),
    (
        "s3-ca-over-http",
        {"s3": {"endpoint": "http://minio:9000", "caSecret": {"name": "minio-ca", "key": "ca.crt"}}},
        "s3.caSecret: needs an https:// s3.endpoint (the CA verifies that endpoint's TLS certificate; "
        "s3.endpoint is http://minio:9000)",
    ),
    (
        "s3-ca-for-aws",
        {"s3": {"caSecret": {"name": "minio-ca", "key": "ca.crt"}}},
        "s3.caSecret: needs an https:// s3.endpoint",
    ),
    ("s3-ca-key", {"s3": {"caSecret": {"name": "minio-ca"}}}, "s3.caSecret.key: required"),
    ("bucket-short", {"s3": {"bucket": "ab"}}, "s3.bucket: 'ab' must be 3 to 63 characters long"),
    ("bucket-upper", {"s3": {"bucket": "My-Bucket"}}, "s3.bucket: 'My-Bucket' is not a valid bucket name"),
    ("bucket-dots", {"s3": {"bucket": "a..b"}}, "s3.bucket: 'a..b' must not contain two adjacent periods"),
    (
        "bucket-ip",
        {"s3": {"bucket": "192.168.1.1"}},
        "s3.bucket: '192.168.1.1' must not be formatted as an IP address",
    ),
    ("bucket-xn", {"s3": {"bucket": "xn--bucket"}}, "s3.bucket: 'xn--bucket' must not start with 'xn--'"),
    (
        "bucket-alias",
        {"s3": {"bucket": "bucket-s3alias"}},
        "s3.bucket: 'bucket-s3alias' must not end with '-s3alias'",
    ),
    (
        "bucket-url",
        {"s3": {"bucket": "s3://my-bucket/x"}},
        "s3.bucket: 's3://my-bucket/x' is a URL; give only the bucket name, e.g. 'my-bucket'",
    ),
    ("bucket-edge", {"s3": {"bucket": "-bucket"}}, "s3.bucket: '-bucket' is not a valid bucket name"),
    ("prefix-slash", {"s3": {"prefix": "/appdb"}}, "s3.prefix: '/appdb' must not start with '/'"),
    ("prefix-double", {"s3": {"prefix": "a//b"}}, "s3.prefix: 'a//b' must not contain '//'"),
    ("prefix-dotdot", {"s3": {"prefix": "a/../b"}}, "s3.prefix: 'a/../b' must not contain '..'"),
    (
        "endpoint-scheme",
        {"s3": {"endpoint": "minio:9000"}},
        "s3.endpoint: 'minio:9000' must be an http:// or https:// URL",
    ),
    (
        "endpoint-ftp",
        {"s3": {"endpoint": "ftp://minio"}},
        "s3.endpoint: 'ftp://minio' must be an http:// or https:// URL",
    ),
    (
        "endpoint-path",
        {"s3": {"endpoint": "http://minio:9000/bucket"}},
        "s3.endpoint: 'http://minio:9000/bucket' must not have a path",
    ),
    (
        "endpoint-query",
        {"s3": {"endpoint": "http://minio:9000?x=1"}},
        "must not have a path, query or fragment",
    ),
    (
        "existing-needs-name",
        {"s3": {"secretName": "", "useExistingSecret": True}},
        "s3.useExistingSecret: true requires s3.secretName",
    ),
    (
        "key-without-secret",
        {"s3": {"accessKeyId": "AKIA1"}},
        "s3.secretAccessKey: required because the other S3 credential is set",
    ),
    (
        "secret-without-key",
        {"s3": {"secretAccessKey": "abc"}},
        "s3.accessKeyId: required because the other S3 credential is set",
    ),
    (
        "existing-and-literal",
        {"s3": {"useExistingSecret": True, "accessKeyId": "a", "secretAccessKey": "b"}},
        "s3.accessKeyId: literal credentials are ignored with s3.useExistingSecret: true",
    ),
    (
        "retention",
        {"backup": {"retentionDays": -1}},
        "backup.retentionDays: Input should be greater than or equal to 0",
    ),
    (
        "history-ok",
        {"backup": {"successfulJobsHistoryLimit": -1}},
        "backup.successfulJobsHistoryLimit: Input should be greater than or equal to 0",
    ),
    (
        "history-failed",
        {"backup": {"failedJobsHistoryLimit": -2}},
        "backup.failedJobsHistoryLimit: Input should be greater than or equal to 0",
    ),
    (
        "compression",
        {"backup": {"compressionLevel": 10}},
        "backup.compressionLevel: gzip compression level must be 1-9, got 10",
    ),
    (
        "compression-zstd-level",
        {"backup": {"compression": "zstd", "compressionLevel": 20}},
        "backup.compressionLevel: Input should be less than or equal to 19",
    ),
    (
        "compression-lz4-level",
        {"backup": {"format": "custom", "compression": "lz4", "compressionLevel": 13}},
        "backup.compressionLevel: lz4 compression level must be 1-12, got 13",
    ),
    (
        "compression-lz4-plain",
        {"backup": {"compression": "lz4"}},
        "backup.compression: lz4 is written by pg_dump inside custom archives only",
    ),
    (
        "compression-codec",
        {"backup": {"compression": "bz2"}},
        "backup.compression: Input should be 'gzip', 'zstd' or 'lz4'",
    ),
    ("format", {"backup": {"format": "zip"}}, "backup.format: Input should be 'plain' or 'custom'"),
    (
        "jobs-plain",
        {"backup": {"jobs": 4}},
        "backup.jobs: 4 parallel dumps need backup.format: custom (plain SQL is one stream)",
    ),
    (
        "jobs-zero",
        {"backup": {"format": "custom", "jobs": 0}},
        "backup.jobs: Input should be greater than or equal to 1",
    ),
    ("sse", {"s3": {"sse": "aes"}}, "s3.sse: Input should be '', 'AES256' or 'aws:kms'"),
    ("kms-without-sse", {"s3": {"kmsKeyId": "k1"}}, "s3.kmsKeyId: only used with s3.sse aws:kms"),
    ("log-format", {"backup": {"logFormat": "xml"}}, "backup.logFormat: Input should be 'text' or 'json'"),
    (
        "wait-timeout",
        {"backup": {"waitTimeoutSeconds": 0}},
        "backup.waitTimeoutSeconds: Input should be greater than or equal to 1",
    ),
    (
        "time-zone",
        {"backup": {"timeZone": "Mars/Olympus_Mons"}},
        "backup.timeZone: 'Mars/Olympus_Mons' is not a known IANA time zone",
    ),
    (
        "time-zone-local",
        {"backup": {"timeZone": "Local"}},
        "backup.timeZone: 'Local' is not an IANA time zone name",
    ),
    (
        "ssl-mode",
        {"cnpg": {"sslMode": "on"}},
        "cnpg.sslMode: Input should be 'disable', 'allow', 'prefer', 'require', 'verify-ca' or 'verify-full'",
    ),
    (
        "service-name",
        {"cnpg": {"serviceName": "bad host!"}},
        "cnpg.serviceName: 'bad host!' is not a valid host name",
    ),
    (
        "restore-leading-slash",
        {"restore": {"object": "/appdb/x.sql.gz"}},
        "restore.object: '/appdb/x.sql.gz' must not start with '/'",
    ),
    (
        "restore-url",
        {"restore": {"object": "s3://my-backups-bucket/appdb/x.sql.gz"}},
        "restore.object: 's3://my-backups-bucket/appdb/x.sql.gz' is a URL; give the object key without 's3://' and the bucket name (the bucket is s3.bucket), e.g. 'appdb/x.sql.gz'",
    ),
    ("restore-folder", {"restore": {"object": "appdb/"}}, "restore.object: 'appdb/' names a folder"),
    (
        "restore-db-required",
        {"cnpg": {"database": ""}, "databases": DB2, "restore": {"object": "latest"}},
        "restore.database: required when restore.object is set and several databases are configured; name the one to restore into (one of: orders, billing)",
    ),
    (
        "restore-db-unknown",
        {"cnpg": {"database": ""}, "databases": DB2, "restore": {"object": "latest", "database": "nope"}},
        "restore.database: 'nope' is not a databases[].name (configured: orders, billing)",
    ),
    (
        "restore-db-without-list",
        {"restore": {"database": "x"}},
        "restore.database: only used with `databases`",
    ),
    (
        "unknown-key",
        {"backup": {"schedul": "0 2 * * *"}},
        "backup.schedul: unknown key (did you mean 'schedule'?); allowed keys here: enabled, schedule",
    ),
    ("unknown-section", {"bakup": {}}, "bakup: unknown key (did you mean 'backup'?)"),
    (
        "toleration-typo",
        {"backup": {"tolerations": [{"key": "a", "efect": "NoSchedule"}]}},
        "backup.tolerations[0].efect: unknown key (did you mean 'effect'?)",
    ),
    (
        "toleration-exists-value",
        {"backup": {"tolerations": [{"key": "a", "operator": "Exists", "value": "x"}]}},
        "backup.tolerations[0]: operator Exists must not have a value",
    ),
    (
        "affinity-typo",
        {"backup": {"affinity": {"nodeAfinity": {}}}},
        "backup.affinity.nodeAfinity: unknown key (did you mean 'nodeAffinity'?)",
    ),
    (
        "node-selector-value",
        {"backup": {"nodeSelector": {"disk": "fast ssd"}}},
        "backup.nodeSelector.disk: 'fast ssd' is not a valid label value",
    ),
    (
        "annotation-key",
        {"monitoring": {"annotations": {"bad key": "x"}}},
        "monitoring.annotations.bad key: 'bad key' is not a valid Kubernetes key",
    ),
    (
        "sa-name",
        {"serviceAccount": {"name": "Bad"}},
        "serviceAccount.name: 'Bad' is not a valid Kubernetes object name",
    ),
    ("wrong-type", {"backup": {"enabled": "maybe"}}, "backup.enabled: Input should be a valid boolean"),
    *[(f"monitoring-{case}", override, expected) for case, override, expected in MONITORING_BAD],
    *[(f"verify-{case}", override, expected) for case, override, expected in VERIFY_BAD],
]


@pytest.mark.parametrize(("override", "expected"), [(o, e) for _, o, e in BAD], ids=[i for i, _, _ in BAD])
def test_rule_rejects_bad_input_naming_the_field(override: dict[str, Any], expected: str) -> None:
    message = _problems(merge_values(values(), override))
    assert expected in message
    assert "Traceback" not in message and "pydantic" not in message
    assert all(line.startswith("config error: ") for line in message.splitlines())


@pytest.mark.parametrize(
    ("override", "expected"), [(o, e) for _, o, e in MONITORING_BAD], ids=[i for i, _, _ in MONITORING_BAD]
)
def test_monitoring_problem_is_one_line(override: dict[str, Any], expected: str) -> None:
    message = _problems(merge_values(values(), override))
    assert message.startswith(f"config error: {expected}")
    assert len(message.splitlines()) == 1, message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("override", "expected"), [(o, e) for _, o, e in VERIFY_BAD], ids=[i for i, _, _ in VERIFY_BAD]
)
def test_verify_problem_is_one_line(override: dict[str, Any], expected: str) -> None:
    message = _problems(merge_values(values(), override))
    assert message.startswith(f"config error: {expected}")
    assert len(message.splitlines()) == 1, message


def test_verify_defaults() -> None:
    verify = config_from_values(values()).verify
    assert (verify.enabled, verify.schedule, verify.tmp_size_limit, verify.active_deadline_seconds) == (
        False,
        "0 5 * * 0",
        "10Gi",
        21600,
    )
    assert verify.resources.requests == {"cpu": "100m", "memory": "512Mi"}
    assert verify.resources.limits == {"cpu": "2", "memory": "2Gi"}
    assert isinstance(verify.resources, C.Resources)  # the same model as backup/restore, own defaults


def test_verify_resources_merge_into_their_own_defaults() -> None:
    cfg = config_from_values(
        merge_values(values(), {"verify": {"resources": {"limits": {"memory": "8Gi", "cpu": None}}}})
    )
    assert cfg.verify.resources.requests == {"cpu": "100m", "memory": "512Mi"}
    assert cfg.verify.resources.limits == {"memory": "8Gi"}
    # and the backup's own stay the backup's
    assert cfg.backup.resources.limits == {"cpu": "2", "memory": "1Gi"}
    assert C.Verify(resources=C.VerifyResources(limits={"memory": "4Gi"})).resources.requests["memory"] == "512Mi"


def test_notification_defaults() -> None:
    monitoring = config_from_values(values()).monitoring
    assert monitoring.heartbeat.url_secret is None and monitoring.webhook.url_secret is None
    assert monitoring.webhook.notify_success is False
    cfg = config_from_values(
        merge_values(
            values(),
            {"monitoring": {"webhook": {"urlSecret": {"name": "alerts", "key": "slack"}, "notifySuccess": True}}},
        )
    )
    assert cfg.monitoring.webhook.url_secret == C.SecretKeySelector(name="alerts", key="slack")


REQUIRED = [
    ("cnpg.secretName", {"cnpg": {"secretName": ""}}),
    ("cnpg.database", {"cnpg": {"database": ""}}),
    ("s3.bucket", {"s3": {"bucket": ""}}),
]


@pytest.mark.parametrize(("field", "override"), REQUIRED, ids=[f for f, _ in REQUIRED])
def test_required_when_backup_enabled(field: str, override: dict[str, Any]) -> None:
    assert f"config error: {field}: required when backup.enabled is true or restore.object is set" in _problems(
        merge_values(values(), override)
    )


@pytest.mark.parametrize(("field", "override"), REQUIRED, ids=[f for f, _ in REQUIRED])
def test_required_for_restore_even_without_backup(field: str, override: dict[str, Any]) -> None:
    vals = merge_values(values(), {"backup": {"enabled": False}, "restore": {"object": "latest"}, **override})
    assert f"{field}: required" in _problems(vals)


def test_nothing_required_when_nothing_runs() -> None:
    cfg = config_from_values({"backup": {"enabled": False}})
    assert any("no CronJob or Job" in w for w in config_warnings(cfg))


@pytest.mark.parametrize(
    "schedule",
    [
        "@daily",
        "@hourly",
        "@midnight",
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "*/15 * * * *",
        "0 2 * * mon-fri",
        "0 2 1,15 jan-jun *",
        "0 0 ? * SUN",
        "5/10 * * * *",
        "0 0-23/2 * * *",
        "59 23 31 12 6",
    ],
)
def test_valid_schedules(schedule: str) -> None:
    assert config_from_values(merge_values(values(), {"backup": {"schedule": schedule}})).backup.schedule == schedule


@pytest.mark.parametrize("quantity", ["100m", "2", "1.5", "256Mi", "1Gi", "1e3", "0.5Gi", "500k", "1E", "+1"])
def test_valid_quantities(quantity: str) -> None:
    cfg = config_from_values(
        merge_values(values(), {"backup": {"resources": {"limits": {"ephemeral-storage": quantity}}}})
    )
    assert cfg.backup.resources.limits["ephemeral-storage"] == quantity


def test_numeric_quantities_and_names_from_yaml_become_strings() -> None:
    cfg = config_from_values(
        merge_values(values(), {"backup": {"resources": {"limits": {"cpu": 4}}}, "cnpg": {"database": 2024}})
    )
    assert cfg.backup.resources.limits["cpu"] == "4"
    assert cfg.cnpg.database == "2024"


def test_prefix_trailing_slash_is_normalised() -> None:
    assert config_from_values(merge_values(values(), {"s3": {"prefix": "team/appdb/"}})).s3.prefix == "team/appdb"


def test_restore_object_bare_name_is_relative_to_prefix() -> None:
    target = backup_targets(config_from_values(values()))[0]
    assert target.object_key("appdb_2024-01-21_02-00-00.sql.gz") == "appdb/appdb_2024-01-21_02-00-00.sql.gz"
    assert target.object_key("appdb/appdb_2024-01-21_02-00-00.sql.gz") == "appdb/appdb_2024-01-21_02-00-00.sql.gz"
    # Like the worker: anything not already under the prefix is relative to it.
    assert target.object_key("2024/x.sql.gz") == "appdb/2024/x.sql.gz"
    assert target.object_key("latest") == "latest"
    no_prefix = backup_targets(config_from_values(merge_values(values(), {"s3": {"prefix": ""}})))[0]
    assert no_prefix.object_key("x.sql.gz") == "x.sql.gz"


def test_database_entries_inherit_defaults() -> None:
    cfg = config_from_values(
        merge_values(
            values(),
            {
                "cnpg": {"database": "", "serviceName": "shared-rw"},
                "backup": {"schedule": "0 4 * * *"},
                "databases": [
                    {"name": "a", "database": "a"},
                    {
                        "name": "b",
                        "database": "b",
                        "prefix": "elsewhere/b",
                        "secretName": "b-app",
                        "schedule": "@hourly",
                    },
                ],
            },
        )
    )
    a, b = backup_targets(cfg)
    assert (a.secret_name, a.service_name, a.prefix, a.schedule) == (
        "appdb-app",
        "shared-rw",
        "appdb/a",
        "0 4 * * *",
    )
    assert (b.secret_name, b.prefix, b.schedule) == ("b-app", "elsewhere/b", "@hourly")
    no_prefix = config_from_values(
        merge_values(
            values(),
            {"s3": {"prefix": ""}, "cnpg": {"database": ""}, "databases": [{"name": "a", "database": "a"}]},
        )
    )
    assert backup_targets(no_prefix)[0].prefix == "a"


# --- secrets never leak -------------------------------------------------------------------------

SECRET = "s3cr3t-Value-That-Must-Not-Leak"


@pytest.mark.parametrize(
    "override",
    [
        {"s3": {"secretAccessKey": [SECRET]}},
        {"s3": {"accessKeyId": {"x": SECRET}, "secretAccessKey": "ok"}},
        {"s3": {"secretAccessKey": SECRET}},  # missing accessKeyId
        {"s3": {"endpoint": f"http://user:{SECRET}@minio:9000"}},
        {"s3": {"useExistingSecret": True, "accessKeyId": SECRET, "secretAccessKey": SECRET}},
    ],
)
def test_secret_values_never_in_error_messages(override: dict[str, Any]) -> None:
    message = _problems(merge_values(values(), override))
    assert SECRET not in message


def test_secret_values_never_in_warnings_or_repr() -> None:
    cfg = config_from_values(
        merge_values(values(), {"s3": {"accessKeyId": "AKIA" + SECRET, "secretAccessKey": SECRET}})
    )
    assert SECRET not in " ".join(config_warnings(cfg))
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.model_dump())
    assert cfg.s3.secret_access_key is not None and cfg.s3.secret_access_key.get_secret_value() == SECRET
