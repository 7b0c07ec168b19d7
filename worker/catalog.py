"""What backups exist for one database, which are trusted, and retention.

A backup is *complete* when its manifest exists and says so. Listing walks every page of the bucket
listing and orders by the timestamp in the key, so `latest` is right however many objects exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from . import log, naming
from .errors import WorkerError
from .manifest import Manifest
from .s3 import Bucket


@dataclass
class Entry:
    name: naming.BackupName
    size: int
    has_manifest: bool
    manifest: Manifest | None = None
    # a parallel backup's other objects found next to it: part key -> size (worker/parallel.py)
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        m = self.manifest
        return bool(
            m
            and m.complete
            and m.object_bytes == self.size
            and all(self.parts.get(str(p.get("key"))) == p.get("object_bytes") for p in m.parts)
        )

    @property
    def total_size(self) -> int:
        """The object and a parallel backup's parts next to it."""
        return self.size + sum(self.parts.values())

    @property
    def compression(self) -> str:
        if self.manifest:
            return self.manifest.codec
        return "?" if self.name.format == "custom" else self.name.compression

    @property
    def flags(self) -> list[str]:
        return list(self.manifest.flags) if self.manifest else []

    def status(self) -> str:
        if self.complete:
            return "complete, flagged: " + "; ".join(self.flags) if self.flags else "complete"
        if not self.has_manifest:
            return "unverified (no manifest)"
        return "incomplete"


@dataclass(frozen=True)
class Orphan:
    """A part of a parallel backup that has no manifest: its backup never finished (a SIGKILL)."""

    key: str
    last_modified: datetime


def scan(
    bucket: Bucket, prefix: str, database: str, *, load_manifests: bool = True, orphans: list[Orphan] | None = None
) -> list[Entry]:
    """This database's backups under `prefix`, newest first; parts without a manifested backup go
    to `orphans` when given."""
    search = naming.join(prefix, database + "_")
    objects: dict[str, int] = {}
    manifests: set[str] = set()
    parts: dict[str, dict[str, int]] = {}
    part_times: dict[str, datetime] = {}
    for obj in bucket.list_objects(search):
        part = naming.part_of(obj.key)
        if obj.key.endswith(naming.MANIFEST_SUFFIX):
            manifests.add(obj.key[: -len(naming.MANIFEST_SUFFIX)])
        elif naming.parse(obj.key, prefix, database):
            objects[obj.key] = obj.size
        elif part and naming.parse(part[0], prefix, database):
            parts.setdefault(part[0], {})[obj.key] = obj.size
            part_times[obj.key] = obj.last_modified
    entries = []
    for key, size in objects.items():
        name = naming.parse(key, prefix, database)
        assert name is not None  # `objects` holds only keys that parsed
        entries.append(Entry(name, size, key in manifests, parts=parts.get(key, {})))
    if orphans is not None:
        orphans += [Orphan(k, part_times[k]) for base, ks in parts.items() if base not in manifests for k in ks]
    entries.sort(key=lambda e: (e.name.taken_at, e.name.key), reverse=True)
    if load_manifests:
        for e in entries:
            if e.has_manifest:
                e.manifest = load_manifest(bucket, e.name.key)
    return entries


def load_manifest(bucket: Bucket, key: str) -> Manifest | None:
    raw = bucket.get_if_exists(key + naming.MANIFEST_SUFFIX)
    if raw is None:
        return None
    try:
        return Manifest.from_json(raw)
    except (ValueError, TypeError):
        log.warning("unreadable manifest; backup not trusted", key=key)
        return None


def latest_complete(bucket: Bucket, prefix: str, database: str, *, include_flagged: bool = False) -> Entry:
    """The newest complete backup; flagged ones (manifest `flags`) only with include_flagged."""
    # Manifests are loaded newest first and only until a usable one is found.
    entries = scan(bucket, prefix, database, load_manifests=False)
    passed: list[Entry] = []
    for e in entries:
        if e.has_manifest:
            e.manifest = load_manifest(bucket, e.name.key)
            if e.complete and (include_flagged or not e.flags):
                for f in passed:
                    log.warning(
                        f"latest: passing over flagged backup {f.name.key} ({'; '.join(f.flags)})",
                        hint="restore it by its key, or pass --allow-flagged, if it is what you want",
                    )
                return e
            if e.complete:
                passed.append(e)
    where = f"s3://{bucket.loc.bucket}/{naming.join(prefix, '')}"
    if passed:
        raise WorkerError(
            f"no unflagged complete backup of database {database!r} under {where}: "
            f"{len(passed)} complete backup(s) are flagged, the newest {passed[0].name.key} ({'; '.join(passed[0].flags)})",
            hint="check them with `cnpg-backup-worker list`; restore one by its key or pass --allow-flagged",
        )
    raise WorkerError(
        f"no complete backup of database {database!r} under {where}",
        hint="run `cnpg-backup-worker list` to see what is there",
    )
