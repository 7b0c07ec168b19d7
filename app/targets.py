"""The databases one config backs up and restores into, every default resolved.

A config names either one database (`cnpg.*`, `s3.prefix`, `backup.schedule`) or several
(`databases[]`, each inheriting what it does not set). Constructs and naming work on these
resolved targets, never on the raw sections; their schedules are the ones written into the
CronJobs (`H` fields and windows spread per database, app/spread.py), so deadlines and alert
thresholds follow what actually runs.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from worker import contract

from .spread import Member, spread, window_minutes

if TYPE_CHECKING:
    from .config import Config


@dataclasses.dataclass(frozen=True)
class BackupTarget:
    """One database to back up / restore into."""

    name: str | None  # None for the single-database case (no suffix in object names)
    database: str
    secret_name: str
    service_name: str
    prefix: str
    schedule: str  # the backup CronJob's (spread)
    drill_schedule: str  # the restore drill CronJob's (verify.schedule, spread)

    @property
    def cluster(self) -> str:
        """What the spread groups by: databases sharing it are spaced apart first."""
        return self.service_name or self.secret_name

    def object_key(self, obj: str) -> str:
        """restore.object as a full key (or ``latest``): the contract's rule, which the worker
        applies too, so the Job's annotation shows the key that gets restored."""
        return contract.object_key(obj, self.prefix)


def backup_targets(cfg: Config) -> list[BackupTarget]:
    targets = _unspread_targets(cfg)
    backup_window, drill_window = window_minutes(cfg.backup.window), window_minutes(cfg.verify.window)
    schedules = spread([Member(t.schedule, backup_window, t.cluster, t.database) for t in targets])
    drill_schedules = spread([Member(t.drill_schedule, drill_window, t.cluster, t.database) for t in targets])
    return [
        dataclasses.replace(t, schedule=s, drill_schedule=d)
        for t, s, d in zip(targets, schedules, drill_schedules, strict=True)
    ]


def _unspread_targets(cfg: Config) -> list[BackupTarget]:
    if not cfg.databases:
        return [
            BackupTarget(
                name=None,
                database=cfg.cnpg.database,
                secret_name=cfg.cnpg.secret_name,
                service_name=cfg.cnpg.service_name,
                prefix=cfg.s3.prefix,
                schedule=cfg.backup.schedule,
                drill_schedule=cfg.verify.schedule,
            )
        ]
    return [
        BackupTarget(
            name=entry.name,
            database=entry.database,
            secret_name=entry.secret_name or cfg.cnpg.secret_name,
            service_name=entry.service_name or cfg.cnpg.service_name,
            prefix=entry.prefix
            if entry.prefix is not None
            else (f"{cfg.s3.prefix}/{entry.name}" if cfg.s3.prefix else entry.name),
            schedule=entry.schedule or cfg.backup.schedule,
            drill_schedule=cfg.verify.schedule,
        )
        for entry in cfg.databases
    ]


def restore_target(cfg: Config) -> BackupTarget:
    """The database restore.object is restored into (validated to exist)."""
    targets = backup_targets(cfg)
    if cfg.restore.database:
        return next(t for t in targets if t.name == cfg.restore.database)
    return targets[0]
