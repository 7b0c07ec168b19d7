"""The `backup` section of the configuration, its restore drills (`verify`), and the requests/limits
model every worker pod's resources use: split from app/config.py, which re-exports every name here."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, WithJsonSchema, field_validator, model_validator

from worker import contract, pg_dump_options

from .cron import TimeZone, shortest_interval_seconds
from .globals_config import Globals
from .identity import DEFAULT_IMAGE
from .scheduling import Affinity, Toleration
from .spread import Schedule, Window
from .validation import (
    LabelValue,
    ObjectName,
    QualifiedName,
    Quantity,
    StrictModel,
    rule,
)

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "2", "memory": "1Gi"},
}
# A restore drill runs a whole PostgreSQL server next to the worker: more memory than a backup.
DEFAULT_VERIFY_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "512Mi"},
    "limits": {"cpu": "2", "memory": "2Gi"},
}


class Resources(StrictModel):
    """Container requests/limits. Partial values merge into the defaults key by key, like Helm
    merges a values file into the chart's values.yaml; set a key to null to drop it."""

    # What partial values merge into (a subclass may start from other defaults).
    _defaults: ClassVar[dict[str, dict[str, str]]] = DEFAULT_RESOURCES

    requests: dict[QualifiedName, Quantity] = Field(
        default_factory=dict, description="Resource requests (resource name: Kubernetes quantity)"
    )
    limits: dict[QualifiedName, Quantity] = Field(
        default_factory=dict, description="Resource limits (resource name: Kubernetes quantity); requests ≤ limits"
    )

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
    daily: int = Field(default=0, ge=0, le=3660, description="Keep the newest backup of each of the last N days")
    weekly: int = Field(default=0, ge=0, le=520, description="… of each of the last N ISO weeks")
    monthly: int = Field(default=0, ge=0, le=1200, description="… of each of the last N months")
    yearly: int = Field(default=0, ge=0, le=100, description="… of each of the last N years")


PgDumpArg = Annotated[str, rule(pg_dump_options.problem)]


class Backup(StrictModel):
    _config_path = "backup"
    enabled: bool = Field(default=True, description="Generate the backup CronJob(s)")
    # `H` fields (Jenkins-style, e.g. `H H(1-4) * * *`) are spread per database (app/spread.py).
    schedule: Schedule = Field(
        default="0 2 * * *",
        description=(
            "5-field cron (minute hour day-of-month month day-of-week; ranges, lists, steps, names "
            "`jan`–`dec`, `sun`–`sat`) or `@yearly @annually @monthly @weekly @daily @midnight @hourly`. "
            "**ext**: a field may be a Jenkins-style `H` (`H`, `H(a-b)`, `H/n`, `H(a-b)/n`, the whole "
            "field), replaced per database by a value chosen by a hash, e.g. `H H(1-4) * * *` (see "
            "[Fleets](../README.md#fleets))"
        ),
    )
    image: str = Field(
        default=DEFAULT_IMAGE,
        min_length=1,
        pattern=r"^\S+$",
        description=(
            "The worker image (backup, restore, drill and the init container) — **meaning changed**; the "
            "default is the image the release workflow publishes, tagged with the package version "
            "([docs/image.md](image.md))"
        ),
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="`Always`, `IfNotPresent` or `Never`"
    )
    retention_days: int = Field(
        default=contract.DEFAULT_RETENTION_DAYS,
        ge=0,
        description=(
            "Delete backups under the database's prefix older than this many days after each successful "
            "backup (0 = keep all, or expire by an S3 lifecycle rule of your own; `python -m app "
            "lifecycle` prints rules matching this setting, "
            "[README](../README.md#iam-policy-and-lifecycle-rules))"
        ),
    )
    # Grandfather-father-son counts, kept besides everything within retentionDays (worker/retention.py).
    retention: Retention = Field(
        default_factory=Retention,
        description=(
            "Grandfather-father-son counts, kept besides everything within `retentionDays` (per database, "
            "from the keys' timestamps). Retention never deletes the newest complete backup, the newest "
            "unflagged one, or a backup a restore is reading; `cnpg-backup-worker prune --dry-run` prints "
            "the plan with the rule behind each decision"
        ),
    )
    resources: Resources = Field(
        default_factory=_default_resources,
        description=(
            "Container requests/limits (any resource name, Kubernetes quantities; requests ≤ limits). A "
            "partial map merges into the default key by key"
        ),
    )
    node_selector: dict[QualifiedName, LabelValue] = Field(
        default_factory=dict,
        description="Node labels the pods must match (also used by the restore Job and the restore drills)",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description=(
            "Kubernetes tolerations, typed: unknown keys are errors (also used by the restore Job and the "
            "restore drills)"
        ),
    )
    affinity: Affinity = Field(
        default_factory=Affinity,
        description=(
            "Kubernetes affinity (`nodeAffinity`, `podAffinity`, `podAntiAffinity`), typed (also used by "
            "the restore Job and the restore drills)"
        ),
    )
    successful_jobs_history_limit: int = Field(
        default=3, ge=0, description="Finished successful Jobs to keep (≥ 0; the drill CronJobs too)"
    )
    failed_jobs_history_limit: int = Field(
        default=3, ge=0, description="Failed Jobs to keep (≥ 0; the drill CronJobs too)"
    )
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = Field(
        default="Forbid", description="`Allow`, `Forbid` or `Replace`"
    )
    # Extensions.
    format: Literal["plain", "custom"] = Field(
        default=contract.DEFAULT_FORMAT,
        description=(
            "`plain` (SQL, `.sql.gz` or `.sql.zst`, restorable with psql) or `custom` (pg_dump `-Fc`, `.dump`)"
        ),
    )
    # Unset follows the format (contract.default_compression): gzip keeps the chart's .sql.gz for plain;
    # custom archives get zstd, which pg_dump writes at dump speed where its zlib is single-threaded.
    compression: Annotated[
        Literal["gzip", "zstd", "lz4"] | None,
        # one enum, not anyOf [enum, null]: a validator's error then names the field
        WithJsonSchema({"enum": [*contract.COMPRESSIONS, None]}),
    ] = Field(
        default=None,
        description=(
            f"`gzip`, `zstd` or `lz4`; unset: `{contract.DEFAULT_COMPRESSION}` for `plain`, "
            f"`{contract.DEFAULT_CUSTOM_COMPRESSION}` for `custom`. Plain: the worker compresses pg_dump's output — `gzip` writes the "
            "chart's `.sql.gz`, `zstd` a `.sql.zst` (multi-threaded, with a checksum). Custom: pg_dump "
            "compresses inside the archive (`--compress=zstd:N` / `lz4:N` need pg_dump 16+ built with "
            "them — the image's 18 is; where the client cannot, the backup says so and falls back to "
            "gzip). `lz4` is for `custom` only. A custom archive with gzip is compressed by pg_dump's "
            "single-threaded zlib: about 1.5× the time of one with zstd at 1 GB (bench/README.md). The backup's "
            "manifest records the codec, `list` shows it, restore reads every codec"
        ),
    )
    # Unset follows the codec (contract.default_level): gzip 2 (ISA-L, as fast as 1 end to end, 1%
    # smaller), zstd 2, lz4 1 (lz4 1.10's level 2 is a middle mode at twice pg_dump's CPU). Ranges per
    # codec (gzip 1-9, zstd 1-19, lz4 1-12): rules.cross_field_problems.
    compression_level: int | None = Field(
        default=None,
        ge=1,
        le=19,
        description=(
            "Level of `backup.compression`: gzip 1–9 (1–3 ISA-L, fast; 4–9 zlib, small and slow: 6 is the "
            "chart's `gzip` speed), zstd 1–19, lz4 1–12 (1 fast; with lz4 1.10+, as in the image, 2 is a "
            "middle mode at about twice pg_dump's CPU; 3+ the slow high-compression mode). Unset: the "
            "codec's own default, gzip 2, zstd 2, lz4 1 (bench/README.md: gzip 2 kept pace with level 1 "
            "and wrote objects 1.049× the size of `gzip -6`'s; at 1 GB pg_dump spent 1.9 s of CPU on lz4 1, "
            "3.7 s on lz4 2, for a 14% smaller archive)"
        ),
    )
    wait_timeout_seconds: int = Field(
        default=contract.DEFAULT_WAIT_TIMEOUT_SECONDS,
        ge=1,
        description=("How long the `wait-for-postgres` init container waits for PostgreSQL (the chart's fixed 150 s)"),
    )
    jobs: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Parallel backup of one large database: this many `pg_dump` processes share one exported "
            "snapshot (consistent as one dump), each streaming its own part to S3 (`<key>.part<N>`); the "
            "manifest ties the parts together and the backup is complete only when every part is. Custom "
            "format only. Each job holds about 45 MiB and one database connection (plus one for the "
            "snapshot); request CPU for N dumps and compressors. 1: the single stream"
        ),
    )
    lock_wait_timeout_seconds: int = Field(
        default=contract.DEFAULT_DUMP_LOCK_WAIT_SECONDS,
        ge=0,
        description=(
            "Seconds `pg_dump` waits for a table's share lock when it starts (`--lock-wait-timeout`): a "
            "table held by `ALTER TABLE`, `LOCK TABLE` or `VACUUM FULL` fails the backup with a message "
            "naming the cause instead of blocking it (and, with `concurrencyPolicy: Forbid`, every later "
            "run). 0 waits for ever"
        ),
    )
    # A dump this much smaller than the previous complete one is stored but flagged (worker/dump.py).
    flag_shrink_percent: int = Field(
        default=contract.DEFAULT_FLAG_SHRINK_PERCENT,
        ge=0,
        le=100,
        description=(
            "A dump whose SQL is more than this many percent smaller than the previous complete backup's "
            "is stored but **flagged** in its manifest, as is a dump of a database with no user tables; "
            "`list` shows the flag and `restore --object latest` passes over flagged backups (saying so) "
            "unless `--allow-flagged`. Catches the backup of a rebuilt, empty database becoming `latest`. "
            "`0`: no shrink check"
        ),
    )
    # Suspends the CronJob (e.g. while a cluster is rebuilt, so its empty database is not backed up).
    suspend: bool = Field(
        default=False,
        description=(
            "Suspend the CronJob (`spec.suspend`): no new backup runs, e.g. while a cluster is rebuilt. "
            "Suspends the restore drill CronJobs too"
        ),
    )
    backoff_limit: int = Field(default=1, ge=0, description="Retries of a failed backup Job")
    # Unset: derived from the schedule (deadline_for); 0: no deadline.
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Kill a backup Job running longer than this, so a hung backup (stalled S3, a lock) cannot "
            "block every later run (`concurrencyPolicy: Forbid` skips runs while one is active). Unset: "
            "90% of the shortest interval between two runs of the database's schedule, at least 600 "
            "(daily `0 2 * * *`: 77760 s = 21.6 h; hourly: 3240 s). `0`: no deadline"
        ),
    )
    starting_deadline_seconds: int | None = Field(
        default=3600,
        ge=10,
        description=(
            "A run missed by more than this (controller down, upgrade) is skipped instead of started late "
            "(backups and drills)"
        ),
    )
    time_zone: TimeZone | None = Field(
        default=None,
        description=(
            "IANA time zone of `schedule` and of `verify.schedule` (e.g. `Europe/Berlin`); unset: the "
            "controller manager's zone, usually UTC"
        ),
    )
    log_format: Literal["text", "json"] = Field(
        default="json", description="Worker log format, `json` or `text` (backup and restore)"
    )
    # Secrets (type kubernetes.io/dockerconfigjson) to pull `image` from a private registry; used by
    # every worker pod (backup, restore, one-off restore). Helm's `[{name: x}]` shape or plain names.
    image_pull_secrets: list[ObjectName] = Field(
        default_factory=list,
        description=(
            "Secrets (`kubernetes.io/dockerconfigjson`) to pull `backup.image` from a private registry, "
            "for every worker pod (backup CronJobs, the restore Job, `restore-job`). Helm's shape "
            "`[{name: regcred}]` or plain names `[regcred]`; each a DNS-1123 name"
        ),
    )
    # Fleets: each database starts somewhere within this long after the schedule's start (e.g. 2h),
    # evenly apart per cluster, chosen by a hash (app/spread.py); "": all start on the schedule.
    window: Window = Field(
        default="",
        description=(
            "Spread the databases' starts over this long from the schedule's start (`2h`, `90m`, "
            "`1h30m`; 1m–24h): `0 2 * * *` with `2h` starts each database at a hashed minute between "
            "02:00 and 03:59, the databases of one cluster evenly apart. Needs a schedule with one start "
            'minute, no `H`, and a window no longer than the time between two runs; `""`: every '
            "database starts on the schedule"
        ),
    )
    # Extra pg_dump options, each one item in long form (`--exclude-table=audit_log`); the accepted
    # ones and why the others are refused: worker/pg_dump_options.py (the worker checks them again).
    extra_args: list[PgDumpArg] = Field(
        default_factory=list,
        description=(
            "Extra `pg_dump` options for the scheduled backups, one list item each, long form with the "
            "value after `=`: `[--no-owner, --exclude-table=audit_log]`. Accepted: the object filters "
            "`--schema`, `--exclude-schema`, `--table`, `--exclude-table`, `--exclude-table-data` (and "
            "their `-and-children` forms), `--extension`, `--exclude-extension`, `--encoding`, and "
            "`--no-owner`, `--no-privileges`, `--no-comments`, `--no-publications`, `--no-subscriptions`, "
            "`--no-security-labels`, `--no-tablespaces`, `--no-table-access-method`, "
            "`--no-toast-compression`, `--no-unlogged-table-data`, `--no-large-objects`, "
            "`--large-objects`, `--no-statistics`, `--quote-all-identifiers`, `--enable-row-security`, "
            "`--load-via-partition-root`, `--strict-names`, `--serializable-deferrable`. Refused, with "
            "one line naming the option and why (synth, and the worker again): what the worker owns "
            "(`--format`, `--file`, `--compress`, `--jobs`, `--lock-wait-timeout`), the connection and "
            "credentials (`--dbname`, `--host`, `--port`, `--username`, `--password`, `--role`), and what "
            "would make a backup that cannot be restored on its own or counted by the drills (`--create`, "
            "`--clean`, `--data-only`, `--schema-only`, `--section`, `--inserts`, `--snapshot`, "
            "`--use-set-session-authorization`, …); any option not listed. Recorded in each backup's "
            "manifest (`extra.pg_dump_extra_args`). Not used by a restore's `backupBeforeRestore` (a full "
            "backup). Excluding tables shrinks the next dump: past `flagShrinkPercent` that one is "
            "flagged"
        ),
    )
    # Roles, memberships and tablespaces (pg_dumpall --globals-only) after each database (app/globals_config.py).
    globals: Globals = Field(
        default_factory=Globals,
        description=(
            "Roles, role memberships, role settings and tablespaces (`pg_dumpall --globals-only`), which "
            "no database dump holds: see README [Roles and globals](../README.md#roles-and-globals)"
        ),
    )

    @field_validator("time_zone", "active_deadline_seconds", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def codec(self) -> str:
        """`compression`, or the format's default when it is unset."""
        return self.compression or contract.default_compression(self.format)

    @property
    def level(self) -> int:
        """`compressionLevel`, or the codec's default when it is unset."""
        return self.compression_level or contract.default_level(self.codec)

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


def _default_verify_resources() -> VerifyResources:
    return VerifyResources()


class Verify(StrictModel):
    """Restore drills: per backed-up database a CronJob `<backup CronJob>-drill` that restores the
    newest backup into a throw-away PostgreSQL inside its own pod and compares every table's row
    count with the backup's (app/constructs/drill.py, worker/drill.py). It never connects to the
    production cluster."""

    _config_path = "verify"
    enabled: bool = Field(
        default=False, description="Generate the drill CronJobs (only with `backup.enabled`; synth warns otherwise)"
    )
    # Weekly, Sunday 05:00 (backup.timeZone): after the nightly backup, outside business hours.
    schedule: Schedule = Field(
        default="0 5 * * 0",
        description=(
            "Cron schedule of the drills, like `backup.schedule` (in `backup.timeZone`, `H` fields "
            "allowed); the same for every database unless it has `H` or `verify.window` is set"
        ),
    )
    # Like backup.window, for the drills (a drill restores into its own pod, but reads S3 and
    # needs a node's CPU and disk: 200 at once still hurt).
    window: Window = Field(default="", description="Like `backup.window`, for the drills")
    # The drill pod's /tmp emptyDir holds the whole restored database (the scratch server's data
    # directory, WAL included) and, for a custom-format backup, the archive staged for pg_restore.
    tmp_size_limit: Quantity = Field(
        default="10Gi",
        description=(
            "Size of the drill pod's `/tmp` emptyDir, which holds **the whole restored database**: the "
            "scratch server's data directory (tables and indexes, often several times the compressed "
            "backup) plus its WAL (up to about 1 GiB), and for a custom-format backup also the archive, "
            "staged for `pg_restore`. A drill that outgrows it is evicted by the kubelet (reported by "
            "`CnpgBackupDrillMissing`). The node must have that much ephemeral storage free"
        ),
    )
    resources: VerifyResources = Field(
        default_factory=_default_verify_resources,
        description=(
            "Like `backup.resources`, for the drill container (the worker and the scratch PostgreSQL "
            "server); a partial map merges into this default key by key"
        ),
    )
    # A drill running longer than this is killed (6 h); 0: no deadline.
    active_deadline_seconds: int = Field(
        default=21600, ge=0, description="Kill a drill running longer than this; `0`: no deadline"
    )
