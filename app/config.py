"""The configuration model: the single source of truth for every parameter and its default.

Keys and defaults mirror the Helm chart's values.yaml (camelCase keys, same dotted names), so a
chart values file loads unchanged; extensions are documented in docs/configuration.md.
In Python, use the snake_case attribute names::

    Config(cnpg=Cnpg(secret_name="appdb-app", database="appdb"), s3=S3(bucket="my-backups"))

Field-level rules live in ``app.validation``; rules spanning several fields are in
``Config._cross_field_rules`` and raise ``ConfigError`` with one line per problem.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from app.cron import Cron, TimeZone, longest_interval_seconds, shortest_interval_seconds
from app.errors import ConfigError
from app.identity import DEFAULT_IMAGE, DEFAULT_TMP_SIZE_LIMIT
from app.rules import cross_field_problems
from app.s3_rules import RestoreObject, S3Bucket, S3Endpoint, S3Prefix, S3Region, S3StorageClass
from app.scheduling import Affinity, Toleration
from app.validation import (
    AgeRecipient,
    AnnotationValue,
    DnsLabel,
    HostName,
    HttpUrl,
    LabelValue,
    NameOverride,
    NamespaceName,
    ObjectName,
    PostgresName,
    QualifiedName,
    Quantity,
    ReleaseName,
    SecretKey,
    StrictModel,
)
from worker import contract

# Requests/limits both backup and restore start from; a values file overrides key by key (below).
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "2", "memory": "1Gi"},
}
# A restore drill runs a whole PostgreSQL server next to the worker: more memory than a backup.
DEFAULT_VERIFY_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "512Mi"},
    "limits": {"cpu": "2", "memory": "2Gi"},
}


class Global(StrictModel):
    _config_path = "global"
    fullname_override: NameOverride = ""
    name_override: NameOverride = ""
    # Extension: plays the part of Helm's release name so object names match the chart's.
    release_name: ReleaseName = "cnpg-backup"
    # Extension: plays Helm's --namespace: written into every object's metadata.namespace. Empty:
    # the objects carry none and `kubectl apply -n` (or the kubeconfig context) decides.
    namespace: NamespaceName = ""


class Resources(StrictModel):
    """Container requests/limits. Partial values merge into the defaults key by key, like Helm
    merges a values file into the chart's values.yaml; set a key to null to drop it."""

    # What partial values merge into (a subclass may start from other defaults).
    _defaults: ClassVar[dict[str, dict[str, str]]] = DEFAULT_RESOURCES

    requests: dict[QualifiedName, Quantity] = Field(default_factory=dict)
    limits: dict[QualifiedName, Quantity] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _merge_into_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        merged: dict[str, Any] = {}
        for side in ("requests", "limits"):
            given = data.get(side, {})
            if given is None:  # `limits: null` drops the whole side
                merged[side] = {}
                continue
            if not isinstance(given, dict):
                merged[side] = given  # let pydantic report the type error
                continue
            combined = {**cls._defaults[side], **given}
            merged[side] = {k: v for k, v in combined.items() if v is not None}
        extra = {k: v for k, v in data.items() if k not in ("requests", "limits")}
        return {**merged, **extra}


def _default_resources() -> Resources:
    return Resources()


class VerifyResources(Resources):
    """The restore drill's requests/limits: a Resources whose partial values merge into
    DEFAULT_VERIFY_RESOURCES instead (in Python: ``Verify(resources=VerifyResources(...))``)."""

    _defaults = DEFAULT_VERIFY_RESOURCES


class Retention(StrictModel):
    _config_path = "backup.retention"
    daily: int = Field(default=0, ge=0, le=3660)
    weekly: int = Field(default=0, ge=0, le=520)
    monthly: int = Field(default=0, ge=0, le=1200)
    yearly: int = Field(default=0, ge=0, le=100)


class Backup(StrictModel):
    _config_path = "backup"
    enabled: bool = True
    schedule: Cron = "0 2 * * *"
    image: str = Field(default=DEFAULT_IMAGE, min_length=1, pattern=r"^\S+$")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    retention_days: int = Field(default=contract.DEFAULT_RETENTION_DAYS, ge=0)
    # Grandfather-father-son counts, kept besides everything within retentionDays (worker/retention.py).
    retention: Retention = Field(default_factory=Retention)
    resources: Resources = Field(default_factory=_default_resources)
    node_selector: dict[QualifiedName, LabelValue] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    affinity: Affinity = Field(default_factory=Affinity)
    successful_jobs_history_limit: int = Field(default=3, ge=0)
    failed_jobs_history_limit: int = Field(default=3, ge=0)
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Forbid"
    # Extensions.
    format: Literal["plain", "custom"] = contract.DEFAULT_FORMAT
    # gzip keeps the chart's .sql.gz; zstd (.sql.zst, or inside custom archives) and lz4 (custom only)
    compression: Literal["gzip", "zstd", "lz4"] = contract.DEFAULT_COMPRESSION
    # Level 2: ISA-L gzip measured by bench/ as fast as level 1 end to end, 1% smaller; zstd/lz4 at 2 are
    # fast too. Ranges per codec (gzip 1-9, zstd 1-19, lz4 1-12): rules.cross_field_problems.
    compression_level: int = Field(default=contract.DEFAULT_COMPRESSION_LEVEL, ge=1, le=19)
    wait_timeout_seconds: int = Field(default=contract.DEFAULT_WAIT_TIMEOUT_SECONDS, ge=1)
    lock_wait_timeout_seconds: int = Field(default=contract.DEFAULT_DUMP_LOCK_WAIT_SECONDS, ge=0)
    # pg_dump processes sharing one snapshot, each streaming one part (worker/parallel.py); custom
    # format only (rules.cross_field_problems). 1: the single stream.
    jobs: int = Field(default=1, ge=1, le=64)
    # A dump this much smaller than the previous complete one is stored but flagged (worker/dump.py).
    flag_shrink_percent: int = Field(default=contract.DEFAULT_FLAG_SHRINK_PERCENT, ge=0, le=100)
    # Suspends the CronJob (e.g. while a cluster is rebuilt, so its empty database is not backed up).
    suspend: bool = False
    backoff_limit: int = Field(default=1, ge=0)
    # Unset: derived from the schedule (deadline_for); 0: no deadline.
    active_deadline_seconds: int | None = Field(default=None, ge=0)
    starting_deadline_seconds: int | None = Field(default=3600, ge=10)
    time_zone: TimeZone | None = None
    log_format: Literal["text", "json"] = "json"
    # Secrets (type kubernetes.io/dockerconfigjson) to pull `image` from a private registry; used by
    # every worker pod (backup, restore, one-off restore). Helm's `[{name: x}]` shape or plain names.
    image_pull_secrets: list[ObjectName] = Field(default_factory=list)

    @field_validator("time_zone", "active_deadline_seconds", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    def deadline_for(self, schedule: str) -> int | None:
        """The Job's activeDeadlineSeconds: a hung backup (a stalled S3 endpoint, a pg_dump stuck
        behind a lock) is killed before the next run is due, rather than blocking every later run
        (concurrencyPolicy Forbid skips runs while one is active). Unset: 90% of the shortest
        interval between two runs of `schedule`, at least 10 minutes."""
        if self.active_deadline_seconds is not None:
            return self.active_deadline_seconds or None
        return max(600, shortest_interval_seconds(schedule) * 9 // 10)

    @field_validator("image_pull_secrets", mode="before")
    @classmethod
    def _names_of_references(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [v["name"] if isinstance(v, dict) and set(v) == {"name"} else v for v in value]
        return value


class SecretKeySelector(StrictModel):
    _config_path = "cnpg.sslRootCertSecret"
    name: ObjectName = Field(min_length=1)
    key: SecretKey


class Cnpg(StrictModel):
    _config_path = "cnpg"
    secret_name: ObjectName = ""
    database: PostgresName = ""
    service_name: HostName = ""
    # Extensions.
    ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    ssl_root_cert_secret: SecretKeySelector | None = None


def _secret_or_none(value: Any) -> Any:
    if value == "" or value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


class S3(StrictModel):
    _config_path = "s3"
    bucket: S3Bucket = ""
    prefix: S3Prefix = ""
    region: S3Region = "us-east-1"
    endpoint: S3Endpoint = ""
    secret_name: ObjectName = ""
    use_existing_secret: bool = False
    storage_class: S3StorageClass = ""
    # Extensions: server-side encryption of every object the worker writes (backups, manifests, records).
    sse: Literal["", "AES256", "aws:kms"] = ""
    kms_key_id: str = Field(default="", pattern=r"^\S*$", max_length=2048)  # with sse aws:kms; "": the default key
    # Extensions: literal credentials for a managed Secret (discouraged; see the synth warning).
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None

    @field_validator("access_key_id", "secret_access_key", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: Any) -> Any:
        return _secret_or_none(value)

    @property
    def has_literal_credentials(self) -> bool:
        return self.access_key_id is not None or self.secret_access_key is not None


class Restore(StrictModel):
    _config_path = "restore"
    enabled: bool = True
    object: RestoreObject = ""
    force: bool = False
    backup_before_restore: bool = False
    resources: Resources = Field(default_factory=_default_resources)
    # Extensions.
    target_database: PostgresName = ""
    database: str = ""  # a databases[].name; required when several databases are configured
    # Parallel pg_restore jobs for a custom-format backup restored into an empty database.
    jobs: int = Field(default=1, ge=1, le=64)
    # The restore pod's scratch space: a custom-format archive is staged there whole (pg_restore
    # needs to seek), so it must hold the largest archive restored. Plain backups need none.
    tmp_size_limit: Quantity = DEFAULT_TMP_SIZE_LIMIT
    # Create restore.targetDatabase when it does not exist (the role needs CREATEDB).
    create_database: bool = False
    # Backups made by the Helm chart have no manifest; the worker restores them only when told to
    # (their gzip stream and dump trailer are still checked end to end).
    allow_unverified: bool = False


class SecurityContext(StrictModel):
    _config_path = "securityContext"
    run_as_non_root: bool = True
    run_as_user: int = Field(default=999, ge=0)
    run_as_group: int = Field(default=999, ge=0)
    read_only_root_filesystem: bool = True
    allow_privilege_escalation: bool = False
    fs_group: int | None = Field(default=999, ge=0)  # extension


class Pushgateway(StrictModel):
    _config_path = "monitoring.pushgateway"
    # Where the worker pushes its metrics (env CNPG_BACKUP_PUSHGATEWAY_URL); empty: no push.
    url: HttpUrl = ""


class PrometheusRule(StrictModel):
    """The generated PrometheusRule (Prometheus Operator): alerts on the worker's pushed metrics and
    on kube-state-metrics' CronJob status, one rule group per database (app/constructs/monitoring.py)."""

    _config_path = "monitoring.prometheusRule"
    enabled: bool = False
    # A backup is missing once none succeeded within the schedule's longest gap between two runs
    # times this (1.5: a daily backup is missing after 36 h), so a slow or retried run does not alert.
    slack: float = Field(default=1.5, gt=1, allow_inf_nan=False)
    # Extra labels on the PrometheusRule object, for the operator's ruleSelector (e.g. release: ...).
    labels: dict[QualifiedName, LabelValue] = Field(default_factory=dict)
    severity: LabelValue = Field(default="warning", min_length=1)
    # Namespace of the CronJobs, for the kube-state-metrics rule; empty: any namespace.
    namespace: NamespaceName = ""

    def missing_after_seconds(self, schedule: str) -> int:
        """Seconds without a successful backup after which CnpgBackupMissing fires."""
        return round(longest_interval_seconds(schedule) * self.slack)


class Heartbeat(StrictModel):
    """A heartbeat ping after every backup run (healthchecks.io style: GET <url>, <url>/fail)."""

    _config_path = "monitoring.heartbeat"
    # The URL carries a secret (the check's id): it reaches the pods only as a secretKeyRef.
    url_secret: SecretKeySelector | None = None


class Webhook(StrictModel):
    """A JSON message (Slack-compatible `text`) after a failed backup run, and after a good one
    with notify_success."""

    _config_path = "monitoring.webhook"
    # The URL carries a secret (the webhook's token): it reaches the pods only as a secretKeyRef.
    url_secret: SecretKeySelector | None = None
    notify_success: bool = False


class Monitoring(StrictModel):
    _config_path = "monitoring"
    annotations: dict[QualifiedName, AnnotationValue] = Field(default_factory=dict)
    # Extensions.
    pushgateway: Pushgateway = Field(default_factory=Pushgateway)
    prometheus_rule: PrometheusRule = Field(default_factory=PrometheusRule)
    heartbeat: Heartbeat = Field(default_factory=Heartbeat)
    webhook: Webhook = Field(default_factory=Webhook)


def _default_verify_resources() -> VerifyResources:
    return VerifyResources()


class Verify(StrictModel):
    """Restore drills: per backed-up database a CronJob `<backup CronJob>-drill` that restores the
    newest backup into a throw-away PostgreSQL inside its own pod and compares every table's row
    count with the backup's (app/constructs/drill.py, worker/drill.py). It never connects to the
    production cluster."""

    _config_path = "verify"
    enabled: bool = False
    # Weekly, Sunday 05:00 (backup.timeZone): after the nightly backup, outside business hours.
    schedule: Cron = "0 5 * * 0"
    # The drill pod's /tmp emptyDir holds the whole restored database (the scratch server's data
    # directory, WAL included) and, for a custom-format backup, the archive staged for pg_restore.
    tmp_size_limit: Quantity = "10Gi"
    resources: VerifyResources = Field(default_factory=_default_verify_resources)
    # A drill running longer than this is killed (6 h); 0: no deadline.
    active_deadline_seconds: int = Field(default=21600, ge=0)


class Encryption(StrictModel):
    """Client-side encryption with age (worker/crypt.py): every backup object is encrypted in the
    backup pod for these public keys, after compression and before upload. The backup pods never see
    a private key; the restore Job and the drills read it from `identitySecret`."""

    _config_path = "encryption"
    recipients: list[AgeRecipient] = Field(default_factory=list)
    # The age identity file (AGE-SECRET-KEY-1…) as a Secret key: restore Job and drill pods only.
    identity_secret: SecretKeySelector | None = None


class ServiceAccount(StrictModel):
    _config_path = "serviceAccount"
    create: bool = True
    name: ObjectName = ""
    annotations: dict[QualifiedName, AnnotationValue] = Field(default_factory=dict)


class DatabaseEntry(StrictModel):
    """One item of ``databases``: another database, possibly in another CNPG cluster."""

    _config_path = "databases[]"
    name: DnsLabel = Field(max_length=40)  # room for the name prefix in the ≤52-char CronJob name
    database: PostgresName = Field(min_length=1)
    secret_name: ObjectName = ""
    service_name: HostName = ""
    prefix: S3Prefix | None = None
    schedule: Cron | None = None


class Config(StrictModel):
    global_: Global = Field(default_factory=Global, validation_alias="global", serialization_alias="global")
    backup: Backup = Field(default_factory=Backup)
    cnpg: Cnpg = Field(default_factory=Cnpg)
    s3: S3 = Field(default_factory=S3)
    restore: Restore = Field(default_factory=Restore)
    security_context: SecurityContext = Field(default_factory=SecurityContext)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    # Extensions.
    service_account: ServiceAccount = Field(default_factory=ServiceAccount)
    databases: list[DatabaseEntry] = Field(default_factory=list)
    verify: Verify = Field(default_factory=Verify)
    encryption: Encryption = Field(default_factory=Encryption)

    @property
    def restore_requested(self) -> bool:
        return self.restore.enabled and bool(self.restore.object)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Config:
        problems = cross_field_problems(self)
        if problems:
            raise ConfigError(problems)
        return self
