"""The contract between the manifests (`app/`) and the worker (`worker/`): one module both import.

Environment names, flags and defaults, the worker's commands as the manifests call them, and the
rules both halves must agree on (the object key a `restore.object` names). Standard library only:
the worker image carries it without cdk8s or pydantic. `docs/worker-contract.md` is generated from
it (`python -m worker.contract > docs/worker-contract.md`) and a test fails when the two differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

COMMAND: Final = "cnpg-backup-worker"

# Defaults shared by the config model (app/config.py) and the worker's flags.
DEFAULT_FORMAT: Final = "plain"
# The level of a codec whose level was not chosen. gzip 2 (ISA-L) kept pace with level 1 and is 1%
# smaller (bench/README.md); zstd 2 writes at about dump speed. lz4 1: from lz4 1.10 on (the image's),
# level 2 is a new middle mode that doubled pg_dump's CPU at 1 GB for a 14% smaller archive.
DEFAULT_COMPRESSION_LEVELS: Final = {"gzip": 2, "zstd": 2, "lz4": 1}
DEFAULT_COMPRESSION_LEVEL: Final = DEFAULT_COMPRESSION_LEVELS["gzip"]  # the chart's plain .sql.gz
# gzip keeps the chart's `.sql.gz`; zstd (plain `.sql.zst`, or inside custom archives) and lz4
# (custom archives only) are faster at the same size: see docs/configuration.md.
DEFAULT_COMPRESSION: Final = "gzip"  # plain: the chart's .sql.gz
# custom: pg_dump compresses the archive itself with a single-threaded zlib (1.5x a bare dump's time at
# 1 GB and level 2, bench/README.md); pg_dump 16+ writes zstd at about dump speed. A client without zstd
# falls back to gzip, said out loud (worker/dump.py)
DEFAULT_CUSTOM_COMPRESSION: Final = "zstd"
COMPRESSIONS = ("gzip", "zstd", "lz4")
DEFAULT_WAIT_TIMEOUT_SECONDS: Final = 150
DEFAULT_RETENTION_DAYS: Final = 0
DEFAULT_LOCK_TIMEOUT_SECONDS: Final = 300
DEFAULT_PROGRESS_INTERVAL_SECONDS: Final = 30
# pg_dump waits at most this long for each table's share lock at its start (an ALTER TABLE or LOCK
# TABLE in progress): a blocked dump fails instead of holding the CronJob (concurrencyPolicy Forbid).
DEFAULT_DUMP_LOCK_WAIT_SECONDS: Final = 300
# A dump whose raw size fell by more than this (percent) against the previous complete backup is
# stored but flagged, and `restore latest` passes over it: the usual cause is a rebuilt, empty or
# truncated database, whose backup must not become the one restored. 0 disables the check.
DEFAULT_FLAG_SHRINK_PERCENT: Final = 50
FORMATS = ("plain", "custom")
LOG_FORMATS = ("text", "json")
# levels per codec: gzip as gzip(1), zstd as zstd(1) without the slow "ultra" levels, lz4 as pg_dump
COMPRESSION_LEVELS = {"gzip": range(1, 10), "zstd": range(1, 20), "lz4": range(1, 13)}


@dataclass(frozen=True)
class Setting:
    """One `CNPG_BACKUP_*` variable: the flag that overrides it and what the manifests set it from."""

    env: str
    flag: str
    default: str | None
    set_from: str  # the config field the manifests take it from; "" when the manifests leave it unset

    def __str__(self) -> str:
        return self.env


S3_BUCKET = Setting("CNPG_BACKUP_S3_BUCKET", "--bucket", None, "literal `s3.bucket`")
S3_PREFIX = Setting("CNPG_BACKUP_S3_PREFIX", "--prefix", "", "literal: the database's object prefix (may be empty)")
S3_ENDPOINT = Setting("CNPG_BACKUP_S3_ENDPOINT", "--endpoint", None, "literal `s3.endpoint` (absent when empty)")
S3_STORAGE_CLASS = Setting(
    "CNPG_BACKUP_S3_STORAGE_CLASS", "--storage-class", None, "literal `s3.storageClass` (absent when empty)"
)
S3_SSE = Setting("CNPG_BACKUP_S3_SSE", "--sse", None, "literal `s3.sse`: `AES256` or `aws:kms` (absent when empty)")
S3_KMS_KEY_ID = Setting("CNPG_BACKUP_S3_KMS_KEY_ID", "--kms-key-id", None, "literal `s3.kmsKeyId` (absent when empty)")
SSE_MODES = ("AES256", "aws:kms")
RETENTION_DAYS = Setting(
    "CNPG_BACKUP_RETENTION_DAYS", "--retention-days", str(DEFAULT_RETENTION_DAYS), "literal `backup.retentionDays`"
)
# Grandfather-father-son counts (worker/retention.py): keep the newest backup of each of the last N
# days / ISO weeks / months / years, besides everything within RETENTION_DAYS.
RETENTION_GFS = {
    period: Setting(
        f"CNPG_BACKUP_RETENTION_{period.upper()}",
        f"--keep-{period}",
        "0",
        f"literal `backup.retention.{period}`",
    )
    for period in ("daily", "weekly", "monthly", "yearly")
}
FORMAT = Setting(
    "CNPG_BACKUP_FORMAT",
    "--format",
    DEFAULT_FORMAT,
    "literal `plain` or `custom` (`backup.format`); restore uses it for `--backup-before-restore`",
)
COMPRESSION = Setting(
    "CNPG_BACKUP_COMPRESSION",
    "--compression",
    None,
    "literal `gzip`, `zstd` or `lz4` (`backup.compression`; lz4 with the custom format only; absent: "
    f"{DEFAULT_COMPRESSION} for plain, {DEFAULT_CUSTOM_COMPRESSION} for custom); "
    "restore uses it for `--backup-before-restore`",
)
COMPRESSION_LEVEL = Setting(
    "CNPG_BACKUP_COMPRESSION_LEVEL",
    "--compression-level",
    None,
    "literal `backup.compressionLevel`, or the codec's default when unset (gzip 2, zstd 2, lz4 1); gzip 1-9, "
    "zstd 1-19, lz4 1-12; restore uses it for `--backup-before-restore`",
)
DUMP_LOCK_WAIT = Setting(
    "CNPG_BACKUP_LOCK_WAIT_TIMEOUT",
    "--lock-wait-timeout",
    str(DEFAULT_DUMP_LOCK_WAIT_SECONDS),
    "literal `backup.lockWaitTimeoutSeconds` (pg_dump `--lock-wait-timeout`; 0 = wait for ever)",
)
FLAG_SHRINK = Setting(
    "CNPG_BACKUP_FLAG_SHRINK_PERCENT",
    "--flag-shrink-percent",
    str(DEFAULT_FLAG_SHRINK_PERCENT),
    "literal `backup.flagShrinkPercent` (flag a dump this many percent smaller than the previous; 0 = never)",
)
RECORD_ROW_COUNTS = Setting(
    "CNPG_BACKUP_RECORD_ROW_COUNTS",
    "--record-row-counts",
    "false",
    "literal `true` when `verify.enabled` (plain backups record per-table row counts for restore drills)",
)
DUMP_EXTRA_ARGS = Setting(
    "CNPG_BACKUP_DUMP_EXTRA_ARGS",
    "--pg-dump-arg",
    None,
    "JSON list `backup.extraArgs` (backup pods only; absent when empty); the flag is repeatable, "
    "`--pg-dump-arg=--no-owner`; accepted options: worker/pg_dump_options.py",
)
# pg_dump processes sharing one snapshot for one database's backup (worker/parallel.py); custom format only.
DUMP_JOBS = Setting(
    "CNPG_BACKUP_DUMP_JOBS",
    "--dump-jobs",
    "1",
    "literal `backup.jobs` (parallel pg_dump processes sharing one snapshot; custom format only; absent when 1)",
)
PUSHGATEWAY = Setting(
    "CNPG_BACKUP_PUSHGATEWAY_URL", "--pushgateway", None, "literal `monitoring.pushgateway.url` (absent when empty)"
)
HEARTBEAT_URL = Setting(
    "CNPG_BACKUP_HEARTBEAT_URL",
    "",
    None,
    "secretKeyRef `monitoring.heartbeat.urlSecret` (GET after a success, <url>/fail after a failure)",
)
WEBHOOK_URL = Setting(
    "CNPG_BACKUP_WEBHOOK_URL", "", None, "secretKeyRef `monitoring.webhook.urlSecret` (JSON POST after a failure)"
)
NOTIFY_SUCCESS = Setting(
    "CNPG_BACKUP_NOTIFY_SUCCESS", "", "false", "literal `monitoring.webhook.notifySuccess` (also POST after a success)"
)
# Client-side encryption (worker/crypt.py): the backup pods get the public keys only; the private key
# (identity) reaches the restore Job and the drill CronJob from a Secret, never the backup CronJob.
AGE_RECIPIENTS = Setting(
    "CNPG_BACKUP_AGE_RECIPIENTS",
    "--age-recipient",
    None,
    "literal `encryption.recipients`, comma-separated age public keys (absent when empty: no encryption)",
)
AGE_IDENTITY = Setting(
    "CNPG_BACKUP_AGE_IDENTITY",
    "",
    None,
    "secretKeyRef `encryption.identitySecret` (restore Job and drills only; `--identity-file` outside Kubernetes)",
)
LOG_FORMAT = Setting("CNPG_BACKUP_LOG_FORMAT", "--log-format", "text", "literal `text` or `json` (`backup.logFormat`)")
WAIT_TIMEOUT = Setting("CNPG_BACKUP_WAIT_TIMEOUT", "--wait-timeout", str(DEFAULT_WAIT_TIMEOUT_SECONDS), "")
LOCK_TIMEOUT = Setting("CNPG_BACKUP_LOCK_TIMEOUT", "--lock-timeout", str(DEFAULT_LOCK_TIMEOUT_SECONDS), "")
PROGRESS_INTERVAL = Setting(
    "CNPG_BACKUP_PROGRESS_INTERVAL", "--progress-interval", str(DEFAULT_PROGRESS_INTERVAL_SECONDS), ""
)
# Roles, tablespaces and grants (`pg_dumpall --globals-only`, worker/globals.py): dumped by the backup
# only when asked, through a superuser whose credentials come from their own Secret.
GLOBALS = Setting(
    "CNPG_BACKUP_GLOBALS",
    "--with-globals",
    "false",
    "literal `true` when `backup.globals.enabled` (the backup also dumps roles and tablespaces; absent otherwise)",
)
GLOBALS_ROLE_PASSWORDS = Setting(
    "CNPG_BACKUP_GLOBALS_ROLE_PASSWORDS",
    "--globals-role-passwords",
    "false",
    "literal `true` when `backup.globals.includeRolePasswords` (absent otherwise: `--no-role-passwords`)",
)
SUPERUSER = Setting(
    "CNPG_BACKUP_SUPERUSER",
    "",
    None,
    "secretKeyRef `backup.globals.superuserSecret` key `usernameKey`: backup pods with `backup.globals.enabled`, "
    "the restore Job with `restore.globals` (absent otherwise; the worker then uses `PGUSER`)",
)
SUPERUSER_PASSWORD = Setting(
    "CNPG_BACKUP_SUPERUSER_PASSWORD",
    "",
    None,
    "secretKeyRef `backup.globals.superuserSecret` key `passwordKey`, next to `CNPG_BACKUP_SUPERUSER` "
    "(reaches pg_dumpall as PGPASSWORD in its environment, never argv)",
)
RESTORE_OBJECT = Setting("CNPG_BACKUP_RESTORE_OBJECT", "--object", None, "")
TARGET_DATABASE = Setting("CNPG_BACKUP_TARGET_DATABASE", "--target-database", None, "")
RUN_ID = Setting("CNPG_BACKUP_RUN_ID", "--run-id", None, "")
RESTORE_JOBS = Setting("CNPG_BACKUP_RESTORE_JOBS", "--jobs", "1", "")

SETTINGS = (
    S3_BUCKET,
    S3_PREFIX,
    S3_ENDPOINT,
    S3_STORAGE_CLASS,
    S3_SSE,
    S3_KMS_KEY_ID,
    RETENTION_DAYS,
    *RETENTION_GFS.values(),
    FORMAT,
    COMPRESSION,
    COMPRESSION_LEVEL,
    DUMP_LOCK_WAIT,
    FLAG_SHRINK,
    RECORD_ROW_COUNTS,
    DUMP_EXTRA_ARGS,
    DUMP_JOBS,
    PUSHGATEWAY,
    GLOBALS,
    GLOBALS_ROLE_PASSWORDS,
    SUPERUSER,
    SUPERUSER_PASSWORD,
    HEARTBEAT_URL,
    WEBHOOK_URL,
    NOTIFY_SUCCESS,
    AGE_RECIPIENTS,
    AGE_IDENTITY,
    LOG_FORMAT,
    WAIT_TIMEOUT,
    LOCK_TIMEOUT,
    PROGRESS_INTERVAL,
    RESTORE_OBJECT,
    TARGET_DATABASE,
    RUN_ID,
    RESTORE_JOBS,
)

# Where the pods may write (an emptyDir): HOME and TMPDIR point there.
TMP_DIR = "/tmp"
# Where the CA of a private S3 endpoint is mounted (s3.caSecret); AWS_CA_BUNDLE names the file in it.
S3_CA_DIR = "/etc/cnpg-backup/s3-ca"


def default_compression(fmt: str) -> str:
    """The codec of a backup whose compression was not chosen: one rule for the app and the worker."""
    return DEFAULT_CUSTOM_COMPRESSION if fmt == "custom" else DEFAULT_COMPRESSION


def default_level(codec: str) -> int:
    """The level of a codec whose level was not chosen: one rule for the app and the worker."""
    return DEFAULT_COMPRESSION_LEVELS[codec]


def compression_problem(fmt: str, compression: str, level: int) -> str | None:
    """Why this format/codec/level combination cannot be written, or None: one rule for the config
    model (at synth) and the worker's flags (at run time)."""
    if compression not in COMPRESSIONS:
        return f"compression {compression!r} is not one of {', '.join(COMPRESSIONS)}"
    if compression == "lz4" and fmt != "custom":
        return "lz4 is written by pg_dump inside custom archives only: use format custom, or gzip/zstd for plain"
    levels = COMPRESSION_LEVELS[compression]
    if level not in levels:
        return f"{compression} compression level must be {levels.start}-{levels.stop - 1}, got {level}"
    return None


# --- Metrics: what the worker pushes (worker/metrics.py) and the generated alerts read ----------

# Pushed to a Prometheus Pushgateway under job=METRICS_JOB and grouping labels {database, prefix};
# the same values are written to the status object next to the backups (`cnpg-backup-worker status`).
METRICS_JOB: Final = "cnpg_pgdump_backup"
METRIC_LAST_RUN: Final = "cnpg_pgdump_backup_last_run_timestamp_seconds"  # end of the last run, any outcome
METRIC_LAST_RUN_OK: Final = "cnpg_pgdump_backup_last_run_success"  # 1 or 0
METRIC_LAST_SUCCESS: Final = "cnpg_pgdump_backup_last_success_timestamp_seconds"  # end of the newest good backup
METRIC_DURATION: Final = "cnpg_pgdump_backup_last_duration_seconds"
METRIC_RAW_BYTES: Final = "cnpg_pgdump_backup_last_raw_bytes"  # SQL/archive bytes pg_dump wrote
METRIC_STORED_BYTES: Final = "cnpg_pgdump_backup_last_stored_bytes"  # object size in S3
METRIC_TABLES: Final = "cnpg_pgdump_backup_last_tables"  # user tables in the database dumped
METRIC_FLAGGED: Final = "cnpg_pgdump_backup_last_flagged"  # 1: stored but flagged (empty, shrank)
METRIC_DRILL_OK: Final = "cnpg_pgdump_backup_drill_success"  # 1 or 0: the last restore drill
METRIC_DRILL_LAST: Final = "cnpg_pgdump_backup_drill_timestamp_seconds"


# --- The worker's commands, as the manifests call them ---------------------------------------


def wait_args(timeout_seconds: int) -> list[str]:
    return ["wait", "--timeout", str(timeout_seconds)]


def backup_args() -> list[str]:
    return ["backup"]


def drill_args() -> list[str]:
    # the database, bucket and prefix come from the environment, like the backup's
    return ["drill"]


def restore_args(
    object_key: str,
    run_id: str,
    *,
    force: bool = False,
    backup_before_restore: bool = False,
    target_database: str = "",
    allow_unverified: bool = False,
    jobs: int = 1,
    create_database: bool = False,
    restore_globals: bool = False,
) -> list[str]:
    args = ["restore", "--object", object_key, "--run-id", run_id]
    if restore_globals:
        args.append("--globals")
    if create_database:
        args.append("--create")
    if force:
        args.append("--force")
    if backup_before_restore:
        args.append("--backup-before-restore")
    if target_database:
        args += ["--target-database", target_database]
    if allow_unverified:
        args.append("--allow-unverified")
    if jobs > 1:
        args += ["--jobs", str(jobs)]
    return args


# --- Rules both halves apply ------------------------------------------------------------------


def normalize_prefix(prefix: str) -> str:
    return prefix.strip("/")


def join(prefix: str, name: str) -> str:
    prefix = normalize_prefix(prefix)
    return f"{prefix}/{name}" if prefix else name


def object_key(obj: str, prefix: str) -> str:
    """The key `restore.object` names (or `latest`). The chart's README used bare file names,
    relative to the prefix; a key already under the prefix is kept as it is. The Job's annotation
    (app/) and the object the worker restores come from this one function."""
    obj = obj.strip()
    prefix = normalize_prefix(prefix)
    if obj == "latest" or not prefix or obj.startswith(prefix + "/"):
        return obj
    return join(prefix, obj)


# --- docs/worker-contract.md --------------------------------------------------------------------

_LIBPQ_AND_AWS = [
    ("PGHOST", "CNPG Secret key `host` (secretKeyRef); literal `cnpg.serviceName` when that is set"),
    ("PGPORT", "CNPG Secret key `port` (secretKeyRef)"),
    ("PGUSER", "CNPG Secret key `username` (secretKeyRef)"),
    (
        "PGPASSWORD",
        "CNPG Secret key `password` (secretKeyRef) — libpq reads it from the environment; it never reaches argv",
    ),
    ("PGDATABASE", "literal: the database to back up / restore into"),
    ("PGSSLMODE", "literal `cnpg.sslMode`"),
    ("PGSSLROOTCERT", "`/etc/cnpg-backup/ca/<key>` when `cnpg.sslRootCertSecret` is set (Secret volume, read-only)"),
    (
        "AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY",
        "S3 Secret keys of the same names (secretKeyRef); absent when no Secret is used (IRSA / web identity)",
    ),
    ("AWS_REGION", "literal `s3.region`"),
    (
        "AWS_CA_BUNDLE",
        f"`{S3_CA_DIR}/<key>` when `s3.caSecret` is set (Secret volume, read-only): botocore then trusts "
        "that CA, and only it, for the S3 endpoint's certificate",
    ),
]


def render_markdown() -> str:
    set_by_manifests = [s for s in SETTINGS if s.set_from]
    worker_only = [s for s in SETTINGS if not s.set_from]
    lines = [
        "# Contract between the manifests (`app/`) and the worker (`worker/`)",
        "",
        "Generated from `worker/contract.py` (`python -m worker.contract > docs/worker-contract.md`); the",
        "constructs in `app/` and the worker CLI both import that module, and a test fails when this file",
        "differs from it.",
        "",
        "## Command",
        f"Every container of the image runs `{COMMAND}` (the image's entry point is not relied on:",
        f'manifests always set `command: ["{COMMAND}"]`).',
        "",
        "| container | args |",
        "| --- | --- |",
        f"| init `wait-for-postgres` | `wait --timeout <backup.waitTimeoutSeconds>` (default {DEFAULT_WAIT_TIMEOUT_SECONDS}) |",
        f"| backup | `{' '.join(backup_args())}` |",
        "| restore | `restore --object <KEY or latest> --run-id <job name> [--force] [--backup-before-restore]"
        " [--target-database <name>] [--allow-unverified] [--jobs N] [--create] [--globals]` |",
        f"| drill (`verify.enabled`) | `{' '.join(drill_args())}` |",
        "",
        "`<KEY>` is `restore.object` resolved against the database's prefix: a bare file name is relative to",
        "the prefix, a key already under it is kept, `latest` stays `latest`.",
        "",
        "## Environment (set on every container of a pod)",
        "",
        "Drill pods get no PostgreSQL connection variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,",
        "`PGSSLMODE`, `PGSSLROOTCERT`) and no CA volume: a drill never connects to the production cluster.",
        "",
        "| variable | source |",
        "| --- | --- |",
        *[f"| `{name}` | {source} |" for name, source in _LIBPQ_AND_AWS],
        *[f"| `{s.env}` | {s.set_from} |" for s in set_by_manifests],
        f"| `HOME`, `TMPDIR` | `{TMP_DIR}` (the only writable path: an emptyDir) |",
        "",
        "## Worker settings the manifests leave at their defaults",
        "| variable | flag | default |",
        "| --- | --- | --- |",
        *[f"| `{s.env}` | `{s.flag}` | {s.default if s.default is not None else '(none)'} |" for s in worker_only],
        "",
        "Every flag of the worker also reads its `CNPG_BACKUP_*` variable; a flag given on the command line wins.",
        "A variable's value is checked like the flag's, by the command that uses it: a bad one (say",
        "`CNPG_BACKUP_FORMAT=tar`) stops that command with one line naming the flag and the variable, exit 2,",
        "before anything runs; other commands and `--help` are not affected.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
