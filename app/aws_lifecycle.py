"""S3 lifecycle rules for the configured databases (`python -m app lifecycle`), as the JSON that
`aws s3api put-bucket-lifecycle-configuration --lifecycle-configuration file://rules.json` takes.

One rule per database, on the prefix of its backups (`P/D_`, so the worker's records under
`P/.cnpg-backup/` never expire):
- Expiration after backup.retentionDays, only when the worker's retention is age-only. With the
  grandfather-father-son counts (backup.retention.*) older backups are kept on purpose, which an
  expiry would delete, so the worker's prune alone applies.
- AbortIncompleteMultipartUpload after N days: a worker killed without a chance to abort (SIGKILL,
  OOM, node loss) leaves parts that are billed until aborted; the next backup aborts them, this
  rule does when backups have stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .aws_keys import database_keys
from .errors import ConfigError
from .naming import cronjob_name

if TYPE_CHECKING:
    from .config import Config

# Longer than any backup runs (a Job's activeDeadlineSeconds is below the schedule's interval, and a
# backup taking days needs a bigger machine, not a longer upload), short enough not to bill for long.
DEFAULT_ABORT_INCOMPLETE_UPLOAD_DAYS = 2


def gfs_retention(cfg: Config) -> bool:
    r = cfg.backup.retention
    return any((r.daily, r.weekly, r.monthly, r.yearly))


def expiry_days(cfg: Config) -> int | None:
    """Days after which a backup expires by lifecycle rule, or None when there must be no such rule."""
    if gfs_retention(cfg) or cfg.backup.retention_days <= 0:
        return None
    return cfg.backup.retention_days


def lifecycle(
    cfg: Config, abort_incomplete_days: int = DEFAULT_ABORT_INCOMPLETE_UPLOAD_DAYS, database: str | None = None
) -> dict[str, Any]:
    """The lifecycle configuration (`database`: only that databases[] entry's rule)."""
    if abort_incomplete_days < 1:
        raise ConfigError.one(f"--abort-incomplete-days: {abort_incomplete_days} must be at least 1 (days)")
    days = expiry_days(cfg)
    rules = []
    for db in database_keys(cfg, "lifecycle", database):
        rule: dict[str, Any] = {
            # The backup CronJob's name: unique per database (synth refuses two alike), and it says
            # which release and database a rule in a shared bucket belongs to.
            "ID": cronjob_name(cfg, db.target),
            "Filter": {"Prefix": db.backups},
            "Status": "Enabled",
        }
        if days is not None:
            rule["Expiration"] = {"Days": days}
        rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": abort_incomplete_days}
        rules.append(rule)
    return {"Rules": rules}


def notes(cfg: Config) -> list[str]:
    """What the user must know besides the rules (printed on stderr, the JSON stays clean)."""
    out = [
        "put-bucket-lifecycle-configuration replaces the bucket's whole lifecycle configuration: "
        "merge these rules into any the bucket already has"
    ]
    if gfs_retention(cfg):
        out.append(
            "backup.retention (daily/weekly/monthly/yearly) keeps backups older than backup.retentionDays, which "
            "an expiry rule would delete: no Expiration, the worker prunes after each backup"
        )
    elif cfg.backup.retention_days <= 0:
        out.append(
            "backup.retentionDays is 0 (keep all): no Expiration; set it to let backups expire after that many days"
        )
    else:
        out.append(
            f"Expiration deletes backups older than {cfg.backup.retention_days} days even when no newer backup "
            "exists (backups stopped); the worker's own pruning always keeps the newest complete backup"
        )
    return out
