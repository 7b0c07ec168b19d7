"""The databases one config backs up and restores into, every default resolved.

A config names either one database (`cnpg.*`, `s3.prefix`, `backup.schedule`) or several
(`databases[]`, each inheriting what it does not set). Constructs and naming work on these
resolved targets, never on the raw sections.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from worker import contract

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
    schedule: str

    def object_key(self, obj: str) -> str:
        """restore.object as a full key (or ``latest``): the contract's rule, which the worker
        applies too, so the Job's annotation shows the key that gets restored."""
        return contract.object_key(obj, self.prefix)


def backup_targets(cfg: Config) -> list[BackupTarget]:
    if not cfg.databases:
        return [
            BackupTarget(
                name=None,
                database=cfg.cnpg.database,
                secret_name=cfg.cnpg.secret_name,
                service_name=cfg.cnpg.service_name,
                prefix=cfg.s3.prefix,
                schedule=cfg.backup.schedule,
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
        )
        for entry in cfg.databases
    ]


def restore_target(cfg: Config) -> BackupTarget:
    """The database restore.object is restored into (validated to exist)."""
    targets = backup_targets(cfg)
    if cfg.restore.database:
        return next(t for t in targets if t.name == cfg.restore.database)
    return targets[0]
