"""From one Config to the Jobs run by hand: a restore (`python -m app job restore`, and the
declarative one of dist/), and `list` / `status` / `check` (`python -m app job list ...`).

No cdk8s here (app/jobs.py): an operator needs only Python and this repository's dependencies to
print a Job and pipe it to `kubectl create -f -`. Each invocation is a new Job named after the UTC
time; it uses the ServiceAccount and Secrets of the applied dist/.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import naming
from .config import Config
from .constructs.pod import S3Credentials
from .errors import ConfigError
from .jobs import OneOffJobProps, RestoreJobProps, oneoff_job, restore_args, restore_job, to_yaml
from .pod_props import postgres_access, s3_credentials, superuser_access, worker_pod
from .rules import config_warnings
from .targets import BackupTarget, backup_targets, restore_target

OPERATIONS = ("list", "status", "check")
Warn = Callable[[str], None]


def restore_job_props(cfg: Config, target: BackupTarget, name: str, credentials: S3Credentials) -> RestoreJobProps:
    object_key = target.object_key(cfg.restore.object)
    return RestoreJobProps(
        name=name,
        labels=naming.labels(cfg, "restore", target),
        object_key=object_key,
        pod=worker_pod(
            cfg,
            target,
            postgres=postgres_access(cfg, target),
            container_name="restore",
            args=restore_args(object_key, name, cfg.restore),
            resources=cfg.restore.resources,
            credentials=credentials,
            tmp_size_limit=cfg.restore.tmp_size_limit,
            # No heartbeat/webhook: the worker notifies after backups and drills only, and a Secret
            # reference the restore does not use must not be able to keep it from starting.
            notify=False,
            encrypts=True,  # restore.backupBeforeRestore writes a backup, encrypted like the others
            decrypts=True,
            superuser=superuser_access(cfg, target) if cfg.restore.globals else None,
        ),
    )


def warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _warn_config(cfg: Config, warn: Warn) -> None:
    for message in config_warnings(cfg):
        if "literal credentials" not in message:  # the Secret itself is not part of this output
            warn(message)


def restore_yaml(cfg: Config, now: datetime, warn: Warn) -> str:
    """One restore Job (YAML) for `cfg.restore`, named after `now` so every invocation is a new run."""
    _warn_config(cfg, warn)
    target = restore_target(cfg)
    name = naming.oneoff_restore_job_name(cfg, now.astimezone(UTC))
    return to_yaml(_in_namespace(cfg, restore_job(restore_job_props(cfg, target, name, s3_credentials(cfg)))))


def default_max_age(cfg: Config, target: BackupTarget) -> str:
    """`check --max-age` when not given: the age at which the CnpgBackupMissing alert fires (the
    longest gap of the schedule times monitoring.prometheusRule.slack), so both agree."""
    return f"{cfg.monitoring.prometheus_rule.missing_after_seconds(target.schedule)}s"


def operation_target(cfg: Config, database: str | None) -> BackupTarget:
    """databases[].name `database` (required with several databases), else the only database.
    The config is valid here, so only the name can be wrong."""
    targets = backup_targets(cfg)
    if database is None:
        if len(targets) > 1:
            names = ", ".join(t.name or "" for t in targets)
            raise ConfigError.one(f"--database: required with several databases: one of {names}")
        return targets[0]
    for target in targets:
        if target.name == database:
            return target
    names = ", ".join(t.name for t in targets if t.name) or "none (a single database: leave --database out)"
    raise ConfigError.one(f"--database: {database!r} is not a databases[].name; known: {names}")


def operation_yaml(cfg: Config, kind: str, worker_args: list[str], now: datetime, target: BackupTarget) -> str:
    """One `list` / `status` / `check` Job (YAML): the worker run as `cnpg-backup-worker <kind> <args>`."""
    if kind not in OPERATIONS:
        raise ValueError(f"not a one-off operation: {kind}")
    name = naming.oneoff_job_name(cfg, target, kind, now.astimezone(UTC))
    pod = worker_pod(
        cfg,
        target,
        postgres=None,  # reads the bucket only: works while the database is down
        container_name=kind,
        args=[kind, *worker_args],
        resources=cfg.backup.resources,
        credentials=s3_credentials(cfg),
        notify=False,
    )
    return to_yaml(
        _in_namespace(cfg, oneoff_job(OneOffJobProps(name=name, labels=naming.labels(cfg, kind, target), pod=pod)))
    )


def _in_namespace(cfg: Config, job: dict[str, Any]) -> dict[str, Any]:
    """global.namespace (-n) on the Job too, like every object of dist/; else kubectl's -n decides."""
    if cfg.global_.namespace:
        job["metadata"] = {**job["metadata"], "namespace": cfg.global_.namespace}
    return job


def _kubectl(cfg: Config) -> str:
    # The CronJobs' namespace when the config names it (global.namespace, or the alert rules'); else
    # kubectl's current one, where dist/ is normally applied.
    namespace = cfg.global_.namespace or cfg.monitoring.prometheus_rule.namespace
    return f"kubectl -n {namespace}" if namespace else "kubectl"


def logs_command(cfg: Config, job: str) -> str:
    return f"{_kubectl(cfg)} logs job/{job} -f"


# `kubectl create job --from=cronjob/NAME NAME-manual-<10-digit epoch>` must stay a valid Job name
_MANUAL = "-manual-$(date +%s)"
_MANUAL_ROOM = naming.MAX_NAME - len("-manual-") - 10


def adhoc_command(cfg: Config, cronjob: str) -> str:
    return f"{_kubectl(cfg)} create job --from=cronjob/{cronjob} {cronjob[:_MANUAL_ROOM].rstrip('-')}{_MANUAL}"


def synth_summary(cfg: Config, workloads: list[tuple[str, str]]) -> list[str]:
    """What synth prints after the files: each CronJob and Job written (kind, name), with the command
    to run a CronJob now and to follow a Job's log (exact names: they are derived, see app/naming.py)."""
    lines = []
    for kind, name in workloads:
        if kind == "CronJob":
            lines.append(f"CronJob {name}: run it now: {adhoc_command(cfg, name)}")
        elif kind == "Job":
            lines.append(f"Job {name}: follow it: {logs_command(cfg, name)}")
    return lines
