"""The manifest written next to every backup: what it holds and how to check it.

A backup is trusted only when its manifest exists and says `complete`. The manifest is written after
the data object's upload completed, so an object without one is, at best, an interrupted backup.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1
# The status of a complete parallel backup (worker/parallel.py). Not "complete": a worker that
# predates parts ignores the `parts` field, and must not take part 0 alone for the whole backup; to
# it this status reads as "not complete", so it refuses the backup instead of restoring a fraction.
COMPLETE_WITH_PARTS = "complete-with-parts"


@dataclass
class Manifest:
    database: str
    key: str
    format: str  # plain | custom
    # plain: gzip | zstd (the worker's stream); custom: gzip | zstd | lz4 inside the archive (pg_dump -Z).
    # Manifests written before codecs were selectable say "pg_dump" for custom archives: gzip.
    compression: str
    server_version: str
    pg_dump_version: str
    pg_dump_major: int
    raw_bytes: int
    object_bytes: int
    sha256: str
    started_at: str
    finished_at: str
    status: str = "complete"
    # Why this complete backup is suspicious ("no user tables", "shrank ..."): stored, listed, but
    # passed over by `restore latest` unless --allow-flagged.
    flags: list[str] = field(default_factory=list)
    # Client-side encryption: {"scheme": "age", "recipients": [public keys]}; then the object, its
    # size and `sha256` are those of the ciphertext. Empty: the object is not encrypted.
    encryption: dict[str, Any] = field(default_factory=dict)
    # A parallel backup (worker/parallel.py): the other parts, each {index, key, object_bytes, sha256,
    # raw_bytes, tables}; `key`, `object_bytes` and `sha256` above are part 0's own, `raw_bytes` the
    # sum. Complete only with every part present as listed; restored only all together.
    parts: list[dict[str, Any]] = field(default_factory=list)
    tool: str = "cnpg-pgdump-backup"
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        doc = json.loads(data)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in doc.items() if k in known})

    @property
    def codec(self) -> str:
        return "gzip" if self.compression in ("pg_dump", "none", "") else self.compression

    @property
    def encrypted(self) -> bool:
        return bool(self.encryption)

    @property
    def complete(self) -> bool:
        whole = all(len(str(p.get("sha256", ""))) == 64 and int(p.get("object_bytes", 0)) > 0 for p in self.parts)
        status = COMPLETE_WITH_PARTS if self.parts else "complete"
        return self.status == status and len(self.sha256) == 64 and self.object_bytes > 0 and whole
