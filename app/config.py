"""The configuration model: the single source of truth for every parameter and its default.

Keys and defaults mirror the Helm chart's values.yaml (camelCase keys, same dotted names), so a
chart values file loads unchanged. Every field carries its `description`: the JSON schema
(`python -m app schema`) and the tables of docs/configuration.md (`python -m app.config_docs`) are
generated from them.
In Python, use the snake_case attribute names::

    Config(cnpg=Cnpg(secret_name="appdb-app", database="appdb"), s3=S3(bucket="my-backups"))

Field-level rules live in ``app.validation``; rules spanning several fields are in
``Config._cross_field_rules`` and raise ``ConfigError`` with one line per problem.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

# Requests/limits both backup and restore start from; a values file overrides key by key (below).
from .config_backup import (
    DEFAULT_RESOURCES,
    DEFAULT_VERIFY_RESOURCES,
    Backup,
    Resources,
    Retention,
    Verify,
    VerifyResources,
    _default_resources,
)
from .config_monitoring import Heartbeat, Monitoring, PrometheusRule, Pushgateway, SecretKeySelector, Webhook
from .errors import ConfigError
from .identity import DEFAULT_TMP_SIZE_LIMIT
from .rules import cross_field_problems
from .s3_rules import RestoreObject, S3Bucket, S3Endpoint, S3Prefix, S3Region, S3StorageClass
from .spread import Schedule
from .validation import (
    AgeRecipient,
    AnnotationValue,
    DnsLabel,
    HostName,
    NameOverride,
    NamespaceName,
    ObjectName,
    PostgresName,
    QualifiedName,
    Quantity,
    ReleaseName,
    StrictModel,
)

# The sections live in modules of their own (config_backup, config_monitoring) to keep each file
# readable; app.config stays the one place to import the model from.
__all__ = [
    "DEFAULT_RESOURCES",
    "DEFAULT_VERIFY_RESOURCES",
    "S3",
    "Backup",
    "Cnpg",
    "Config",
    "DatabaseEntry",
    "Encryption",
    "Global",
    "Heartbeat",
    "Monitoring",
    "PrometheusRule",
    "Pushgateway",
    "Resources",
    "Restore",
    "Retention",
    "SecretKeySelector",
    "SecurityContext",
    "ServiceAccount",
    "Verify",
    "VerifyResources",
    "Webhook",
]


class Global(StrictModel):
    _config_path = "global"
    fullname_override: NameOverride = Field(
        default="", description="Full name of every object (truncated to 63, trailing `-` trimmed)"
    )
    name_override: NameOverride = Field(
        default="",
        description="Replaces the chart name `cnpg-pgdump-backup` in names and the `app.kubernetes.io/name` label",
    )
    # Extension: plays the part of Helm's release name so object names match the chart's.
    release_name: ReleaseName = Field(
        default="cnpg-backup",
        description=(
            "Plays Helm's release name: with it objects get the chart's names "
            "(`<release>-cnpg-pgdump-backup`, or the release name alone when it already contains the "
            "chart name); also the `app.kubernetes.io/instance` label. DNS-1123, ≤ 53 characters. Also "
            "the positional `RELEASE` of `python -m app synth`"
        ),
    )
    # Extension: plays Helm's --namespace: written into every object's metadata.namespace. Empty:
    # the objects carry none and `kubectl apply -n` (or the kubeconfig context) decides.
    namespace: NamespaceName = Field(
        default="",
        description=(
            "Plays Helm's `--namespace` (also `-n` of `python -m app synth`): written into every object's "
            "`metadata.namespace`. Empty: the objects carry none, and `kubectl apply -n` (or the "
            "kubeconfig context) decides"
        ),
    )


class Cnpg(StrictModel):
    _config_path = "cnpg"
    secret_name: ObjectName = Field(
        default="",
        description=(
            "Secret with `host`, `port`, `username`, `password` (CNPG's `<cluster>-app`). Required when something runs"
        ),
    )
    database: PostgresName = Field(
        default="",
        description="Database to back up / restore into. Required when something runs, unless `databases` is used",
    )
    service_name: HostName = Field(
        default="", description="When set, used literally as the host (e.g. `appdb-rw`) instead of the Secret's `host`"
    )
    # Extensions.
    ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="prefer", description="libpq `sslmode`: `disable allow prefer require verify-ca verify-full`"
    )
    ssl_root_cert_secret: SecretKeySelector | None = Field(
        default=None,
        description=(
            "`{name, key}` of a Secret holding the CA certificate (CNPG: `<cluster>-ca`, key `ca.crt`); "
            "mounted read-only at `/etc/cnpg-backup/ca/<key>` and passed as `PGSSLROOTCERT`. Use with "
            "`verify-full`"
        ),
    )


def _secret_or_none(value: Any) -> Any:
    if value == "" or value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


class S3(StrictModel):
    _config_path = "s3"
    bucket: S3Bucket = Field(
        default="", description="Bucket name (S3 naming rules are checked). Required when something runs"
    )
    prefix: S3Prefix = Field(
        default="", description="Folder within the bucket (no leading `/`, no `//` or `..`; a trailing `/` is dropped)"
    )
    region: S3Region = Field(default="us-east-1", description="Region")
    endpoint: S3Endpoint = Field(
        default="", description="`http(s)://host[:port]` for MinIO / S3-compatible storage (no path, no credentials)"
    )
    secret_name: ObjectName = Field(
        default="", description="Secret with `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`"
    )
    # Extension: an S3-compatible endpoint whose certificate a private CA signed (in-cluster MinIO).
    ca_secret: SecretKeySelector | None = Field(
        default=None,
        description=(
            "`{name, key}` of a Secret holding the CA certificate that signed `s3.endpoint`'s certificate "
            "(e.g. an in-cluster MinIO behind cert-manager: its `ca.crt`); mounted read-only at "
            "`/etc/cnpg-backup/s3-ca/<key>` in every pod and passed as `AWS_CA_BUNDLE`. Needs an `https://` "
            "endpoint. Unset: the image's public CAs"
        ),
    )
    use_existing_secret: bool = Field(default=False, description="Reference `s3.secretName` as it is (required then)")
    storage_class: S3StorageClass = Field(
        default="", description="Storage class of uploaded objects (e.g. `STANDARD_IA`)"
    )
    # Extensions: server-side encryption of every object the worker writes (backups, manifests, records).
    sse: Literal["", "AES256", "aws:kms"] = Field(
        default="",
        description=(
            "Server-side encryption of every object the worker writes (backups, manifests, status and "
            "restore records): `AES256` (SSE-S3) or `aws:kms` (SSE-KMS); empty: the bucket's default"
        ),
    )
    kms_key_id: str = Field(
        default="",
        pattern=r"^\S*$",
        max_length=2048,
        description="With `s3.sse: aws:kms`: the KMS key (ARN or id); empty: the account's/bucket's default key",
    )  # with sse aws:kms; "": the default key
    # Extensions: literal credentials for a managed Secret (discouraged; see the synth warning).
    access_key_id: SecretStr | None = Field(
        default=None, description="Literal access key: a managed Secret is generated (discouraged, see below)"
    )
    secret_access_key: SecretStr | None = Field(default=None, description="Literal secret key (both or neither)")

    @field_validator("access_key_id", "secret_access_key", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: Any) -> Any:
        return _secret_or_none(value)

    @property
    def has_literal_credentials(self) -> bool:
        return self.access_key_id is not None or self.secret_access_key is not None


class Restore(StrictModel):
    _config_path = "restore"
    enabled: bool = Field(default=True, description="Allow the declarative restore Job")
    object: RestoreObject = Field(
        default="",
        description=(
            "Backup to restore: a file name relative to the database's prefix "
            "(`appdb_2024-01-21_02-00-00.sql.gz`, as in the chart's README), a full key under that prefix "
            "(`appdb/appdb_...sql.gz`), or `latest`. Anything not starting with `<prefix>/` is taken as "
            "relative to the prefix (the worker applies the same rule). Empty: no restore Job. Not "
            "`s3://...`, not starting with `/`"
        ),
    )
    force: bool = Field(default=False, description="Restore even into a non-empty database")
    backup_before_restore: bool = Field(default=False, description="Back up the current database first")
    resources: Resources = Field(
        default_factory=_default_resources, description="Like `backup.resources`, for the restore container"
    )
    # Extensions.
    target_database: PostgresName = Field(
        default="", description="Restore into this database instead of the configured one"
    )
    database: str = Field(
        default="", description="Which `databases[].name` to restore; required when `databases` has more than one entry"
    )  # a databases[].name; required when several databases are configured
    # Parallel pg_restore jobs for a custom-format backup restored into an empty database.
    jobs: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Parallel `pg_restore` jobs for a custom-format backup restored into an empty database (1–64; "
            "`restore-job --jobs`). Not part of the restore request: changing it does not rename the Job"
        ),
    )
    # The restore pod's scratch space: a custom-format archive is staged there whole (pg_restore
    # needs to seek), so it must hold the largest archive restored. Plain backups need none.
    tmp_size_limit: Quantity = Field(
        default=DEFAULT_TMP_SIZE_LIMIT,
        description=(
            "Size of the restore pod's `/tmp` emptyDir. A custom-format archive is staged there whole "
            "before anything is restored (the worker refuses up front when the disk lacks the room); "
            "plain backups stream and need none"
        ),
    )
    # Create restore.targetDatabase when it does not exist (the role needs CREATEDB).
    create_database: bool = Field(
        default=False,
        description=(
            "Create `restore.targetDatabase` when it does not exist (`restore --create`; the role needs "
            "CREATEDB). Without it a missing target is refused before anything is touched"
        ),
    )
    # Backups made by the Helm chart have no manifest; the worker restores them only when told to
    # (their gzip stream and dump trailer are still checked end to end).
    allow_unverified: bool = Field(
        default=False,
        description=(
            "Accept a backup that has no manifest — one made by the Helm chart. Its gzip stream and "
            "pg_dump's dump-complete trailer are still checked end to end before the database is touched; "
            "only the SHA-256 comparison is impossible"
        ),
    )
    # Apply the newest globals backup first (`restore --globals`): missing roles and memberships are
    # created, existing roles are never changed. Uses backup.globals.superuserSecret.
    globals: bool = Field(
        default=False,
        description=(
            "Before the database, apply the newest globals backup (`restore --globals`, as "
            "`backup.globals.superuserSecret`): missing roles and memberships are created; an existing "
            "role keeps its password, attributes and settings; nothing is dropped or revoked; tablespaces "
            "are skipped. One transaction: a failure leaves the roles as they were"
        ),
    )


class SecurityContext(StrictModel):
    _config_path = "securityContext"
    run_as_non_root: bool = Field(default=True, description="Pod and every container")
    run_as_user: int = Field(default=999, ge=0, description="User ID")
    run_as_group: int = Field(default=999, ge=0, description="Group ID")
    read_only_root_filesystem: bool = Field(
        default=True,
        description=(
            "Every container; `/tmp` is a writable emptyDir (1 GiB limit; `restore.tmpSizeLimit`, "
            "`verify.tmpSizeLimit`)"
        ),
    )
    allow_privilege_escalation: bool = Field(default=False, description="Every container")
    fs_group: int | None = Field(default=999, ge=0, description="Pod fsGroup")  # extension


class Encryption(StrictModel):
    """Client-side encryption with age (worker/crypt.py): every backup object is encrypted in the
    backup pod for these public keys, after compression and before upload. The backup pods never see
    a private key; the restore Job and the drills read it from `identitySecret`."""

    _config_path = "encryption"
    recipients: list[AgeRecipient] = Field(
        default_factory=list,
        description=(
            "age public keys (`age1…`, from `age-keygen -y` or `cnpg-backup-worker keygen`). When set, "
            "every backup object is age ciphertext for all of them (`….sql.gz.age`, `….sql.zst.age`, "
            "`….dump.age`) and its manifest records `encryption.recipients`; `sha256`/`object_bytes` are "
            "the ciphertext's. Reaches the backup CronJob and the restore Job as "
            "`CNPG_BACKUP_AGE_RECIPIENTS` (public keys only). A private key here is refused (without "
            "echoing it)"
        ),
    )
    # The age identity file (AGE-SECRET-KEY-1…) as a Secret key: restore Job and drill pods only.
    identity_secret: SecretKeySelector | None = Field(
        default=None,
        description=(
            "`{name, key}` of a Secret key holding an age identity file (`AGE-SECRET-KEY-1…`, comment "
            "lines allowed): given to the restore Job and the drill CronJob only, as "
            "`CNPG_BACKUP_AGE_IDENTITY` ← `secretKeyRef`; never to the backup CronJob, never in `dist/`. "
            "Required with `recipients` when `verify.enabled` or `restore.object` is set"
        ),
    )


class ServiceAccount(StrictModel):
    _config_path = "serviceAccount"
    create: bool = Field(
        default=True, description="Generate a ServiceAccount named `serviceAccount.name` or `<fullname>`"
    )
    name: ObjectName = Field(
        default="", description="Name to create, or the existing one to use (`default` when empty and not created)"
    )
    annotations: dict[QualifiedName, AnnotationValue] = Field(
        default_factory=dict, description="e.g. `eks.amazonaws.com/role-arn` for IRSA"
    )


class DatabaseEntry(StrictModel):
    """One item of ``databases``: another database, possibly in another CNPG cluster."""

    _config_path = "databases[]"
    name: DnsLabel = Field(
        max_length=40,
        description=(
            "DNS-1123 label, unique, ≤ 40 characters; used in object names and the `cnpg-pgdump-backup/database` label"
        ),
    )  # room for the name prefix in the ≤52-char CronJob name
    database: PostgresName = Field(min_length=1, description="PostgreSQL database name")
    secret_name: ObjectName = Field(default="", description="CNPG Secret of its cluster")
    service_name: HostName = Field(default="", description="Host override")
    prefix: S3Prefix | None = Field(
        default=None,
        description=("Its S3 folder; prefixes of two entries must not overlap (retention and `latest` list by prefix)"),
    )
    schedule: Schedule | None = Field(
        default=None,
        description="Its cron schedule (`H` fields and `backup.window` spread it like `backup.schedule`)",
    )


class Config(StrictModel):
    global_: Global = Field(
        default_factory=Global,
        validation_alias="global",
        serialization_alias="global",
        description="Naming: Helm's global values, and the release name the chart took from Helm",
    )
    backup: Backup = Field(
        default_factory=Backup,
        description=("The backup CronJob(s), and the image, scheduling and history settings every worker pod shares"),
    )
    cnpg: Cnpg = Field(
        default_factory=Cnpg,
        description=(
            "The CloudNativePG database to back up and restore into (the single-database case; see `databases`)"
        ),
    )
    s3: S3 = Field(default_factory=S3, description="Where the backups are stored, and the S3 credentials")
    restore: Restore = Field(
        default_factory=Restore,
        description="The declarative restore Job (`restore.object`), and the defaults of `restore-job`",
    )
    security_context: SecurityContext = Field(
        default_factory=SecurityContext, description="Security settings of every worker pod and container"
    )
    monitoring: Monitoring = Field(
        default_factory=Monitoring,
        description="Pod annotations, the metrics push, the generated alerts, heartbeat and webhook notifications",
    )
    # Extensions.
    service_account: ServiceAccount = Field(
        default_factory=ServiceAccount, description="The ServiceAccount the worker pods run as"
    )
    databases: list[DatabaseEntry] = Field(
        default_factory=list,
        description=(
            "Several databases, of one or several CNPG clusters, each with its own CronJob; empty: the "
            "single database of `cnpg`"
        ),
    )
    verify: Verify = Field(
        default_factory=Verify,
        description=(
            "Restore drills: per backed-up database a CronJob that restores the newest backup into a "
            "throw-away PostgreSQL server inside its pod and compares every table's row count with the "
            "backup's"
        ),
    )
    encryption: Encryption = Field(
        default_factory=Encryption,
        description="Client-side encryption of every backup with age, for these public keys",
    )

    @property
    def restore_requested(self) -> bool:
        return self.restore.enabled and bool(self.restore.object)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Config:
        problems = cross_field_problems(self)
        if problems:
            raise ConfigError(problems)
        return self
