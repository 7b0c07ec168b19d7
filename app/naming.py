"""Object names and labels, following the Helm chart's conventions so migrated objects keep
their names (and `kubectl logs job/<release>-cnpg-pgdump-backup-...` habits keep working)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING

from .identity import APP_VERSION, CHART_NAME
from .targets import BackupTarget

if TYPE_CHECKING:
    from .config import Config

MAX_NAME = 63
# The CronJob controller appends "-<11 digits>" to name its Jobs, and Job names must stay
# within 63 characters, so the API server refuses CronJob names longer than 52.
MAX_CRONJOB_NAME = 52
DATABASE_LABEL = "cnpg-pgdump-backup/database"
RESTORE_OBJECT_ANNOTATION = "cnpg-pgdump-backup/restore-object"


def _trunc(value: str, limit: int) -> str:
    return value[:limit].rstrip("-")


def chart_name(cfg: Config) -> str:
    """Helm's `<chart>.name`: nameOverride or the chart name, at most 63 characters."""
    return _trunc(cfg.global_.name_override or CHART_NAME, MAX_NAME)


def fullname(cfg: Config) -> str:
    """Helm's `<chart>.fullname`: fullnameOverride, else the release name alone when it already
    contains the chart name, else `<release>-<name>`; 63 characters at most, no trailing '-'."""
    g = cfg.global_
    if g.fullname_override:
        return _trunc(g.fullname_override, MAX_NAME)
    name = g.name_override or CHART_NAME
    if name in g.release_name:
        return _trunc(g.release_name, MAX_NAME)
    return _trunc(f"{g.release_name}-{name}", MAX_NAME)


def with_suffix(base: str, suffix: str, limit: int = MAX_NAME) -> str:
    """`<base>-<suffix>` within `limit` characters, shortening the base and keeping the suffix
    whole (the suffix is what makes names distinct)."""
    if not suffix:
        return _trunc(base, limit)
    room = limit - len(suffix) - 1
    return f"{_trunc(base, room)}-{suffix}"


DRILL_SUFFIX = "drill"


def cronjob_name(cfg: Config, target: BackupTarget) -> str:
    return with_suffix(fullname(cfg), target.name or "", MAX_CRONJOB_NAME)


def drill_cronjob_name(cfg: Config, target: BackupTarget) -> str:
    """`<backup CronJob name>-drill`, derived like the backup CronJob's: the fullname is shortened
    and the suffix (`<databases[].name>-drill`) kept whole, so the database's name survives a long
    release name (shortening the backup CronJob's name instead could cut it off)."""
    suffix = f"{target.name}-{DRILL_SUFFIX}" if target.name else DRILL_SUFFIX
    return with_suffix(fullname(cfg), suffix, MAX_CRONJOB_NAME)


def service_account_name(cfg: Config) -> str:
    sa = cfg.service_account
    if sa.name:
        return sa.name
    return fullname(cfg) if sa.create else "default"


def managed_s3_secret_name(cfg: Config) -> str:
    return cfg.s3.secret_name or with_suffix(fullname(cfg), "s3")


def prometheus_rule_name(cfg: Config) -> str:
    return with_suffix(fullname(cfg), "alerts")


def restore_job_name(cfg: Config, target: BackupTarget) -> str:
    """Deterministic per restore request: the same config always names the same Job (so
    re-applying dist/ is a no-op for a Job that already ran) and a different object, target or
    flag names a new one (Jobs are immutable, so a changed request must be a new object)."""
    # What is restored (bucket, endpoint, key) into what (cluster, database) with which flags. A
    # change of any of these is a new request: with the old name, a recreated Job would find the
    # old request's entry in the run-once ledger and skip. Settings that do not change the request
    # (image, resources, ...) stay out, so they cannot silently re-run a restore that had failed.
    # The name is also the worker's run-once id: changing this list renames existing restore Jobs
    # and lets them run again, so it may change only in a release that says so.
    request = [
        target.name or "",
        target.database,
        target.object_key(cfg.restore.object),
        cfg.restore.force,
        cfg.restore.backup_before_restore,
        cfg.restore.target_database,
        cfg.s3.bucket,
        cfg.s3.endpoint,
        target.secret_name,
        target.service_name,
    ]
    if cfg.restore.allow_unverified:  # appended only when set, so existing Job names stay stable
        request.append("allow-unverified")
    if cfg.restore.globals:  # likewise: a request that also applies roles is a new request
        request.append("globals")
    digest = hashlib.sha256(json.dumps(request).encode()).hexdigest()[:8]
    return with_suffix(fullname(cfg), f"restore-{digest}")


def oneoff_restore_job_name(cfg: Config, now: datetime) -> str:
    """A new name on every invocation (UTC, second resolution): each one-off is its own run."""
    return with_suffix(fullname(cfg), f"restore-{now.strftime('%Y%m%d-%H%M%S')}")


def oneoff_job_name(cfg: Config, target: BackupTarget, kind: str, now: datetime) -> str:
    """`<fullname>[-<databases[].name>]-<kind>-<UTC time>`: a new name per invocation, and the
    database's name kept whole so `kubectl get jobs` tells the runs of several databases apart."""
    stamp = f"{kind}-{now.strftime('%Y%m%d-%H%M%S')}"
    return with_suffix(fullname(cfg), f"{target.name}-{stamp}" if target.name else stamp)


def labels(cfg: Config, component: str, target: BackupTarget | None = None) -> dict[str, str]:
    result = {
        "app.kubernetes.io/name": chart_name(cfg),
        "app.kubernetes.io/instance": cfg.global_.release_name,
        "app.kubernetes.io/version": APP_VERSION,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": CHART_NAME,
        "app.kubernetes.io/managed-by": "cdk8s",
    }
    if target is not None and target.name:
        result[DATABASE_LABEL] = target.name
    return result
