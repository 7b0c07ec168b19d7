"""Where in the bucket each configured database's objects live, as the IAM policy and the lifecycle
rules (app/aws_policy.py, app/aws_lifecycle.py) must name them.

The layout is the worker's (worker/naming.py), per database prefix `P` and database `D`:
`P/D_<timestamp>.<ext>` the backups, `P/D_<timestamp>.<ext>.manifest.json` their manifests, and
`P/.cnpg-backup/` the worker's own records (status, key reservations, upload heartbeats,
pending-restore records, the restore ledger), and `P/.globals/` the roles-and-globals backups with
their own records (worker/globals.py; pruned by every backup run, even with globals off). Nothing
else under the bucket is touched.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from worker import naming

from .errors import ConfigError
from .targets import BackupTarget, backup_targets

if TYPE_CHECKING:
    from .config import Config


@dataclasses.dataclass(frozen=True)
class DatabaseKeys:
    """The key prefixes (no wildcards) of one database's objects."""

    target: BackupTarget
    backups: str  # `P/D_`: backups and their manifests; the worker multipart-uploads only these
    state: str  # `P/.cnpg-backup/`: the worker's records
    globals: str  # `P/.globals/`: the roles-and-globals backups, their manifests and records

    def state_of(self, kind: str) -> str:
        """`P/.cnpg-backup/<kind>/`: one kind of record (pending, restores, status, ...)."""
        return f"{self.state}{kind}/"


def database_keys(cfg: Config, command: str, only: str | None = None) -> list[DatabaseKeys]:
    """Every configured database's key prefixes (`only`: the databases[] entry of that name); a config
    naming no bucket or no database is refused with one line, since a policy or rule for it would
    grant or expire the wrong objects."""
    if not cfg.s3.bucket:
        raise ConfigError.one(f"s3.bucket: required for {command} (the bucket the backups go to)")
    targets = list(enumerate(backup_targets(cfg)))
    if only is not None:
        names = [t.name for _, t in targets if t.name]
        if only not in names:
            known = ", ".join(names) or "none: the config names one database (cnpg.database), leave --database out"
            raise ConfigError.one(f"--database: no databases[] entry named {only!r} (known: {known})")
        targets = [(i, t) for i, t in targets if t.name == only]
    out = []
    for i, target in targets:
        if not target.database:
            field = f"databases[{i}].database" if target.name else "cnpg.database"
            raise ConfigError.one(f"{field}: required for {command} (its backups' names start with it)")
        out.append(
            DatabaseKeys(
                target=target,
                backups=naming.join(target.prefix, target.database + "_"),
                state=naming.state_key(target.prefix) + "/",
                globals=naming.join(target.prefix, naming.GLOBALS_DIR) + "/",
            )
        )
    return out
