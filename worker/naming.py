"""Object keys: `<prefix>/<database>_YYYY-MM-DD_HH-MM-SS.<ext>` (UTC), as the chart named them.

The manifest of a backup sits next to it as `<key>.manifest.json`. Everything the worker keeps for
itself (upload heartbeats, the restore ledger) lives under `<prefix>/.cnpg-backup/`, which no backup
pattern can match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from . import contract
from .errors import UsageError

# extension -> (format, compression of the object): custom archives compress inside (pg_dump -Z)
EXTENSIONS = {".sql.gz": ("plain", "gzip"), ".sql.zst": ("plain", "zstd"), ".dump": ("custom", "archive")}
ENCRYPTED_SUFFIX = ".age"  # after the extension: `appdb_….sql.gz.age` is age ciphertext of a .sql.gz
MANIFEST_SUFFIX = ".manifest.json"
STATE_DIR = ".cnpg-backup"
GLOBALS_DIR = ".globals"  # roles and tablespaces (worker/globals.py), apart from the database's backups
_TS_FORMAT = "%Y-%m-%d_%H-%M-%S"
_TS_RE = r"(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})"


normalize_prefix = contract.normalize_prefix
join = contract.join


@dataclass(frozen=True)
class BackupName:
    key: str
    database: str
    taken_at: datetime
    format: str
    compression: str = "gzip"  # gzip | zstd for plain objects; "archive" for custom ones
    encrypted: bool = False  # age ciphertext (worker/crypt.py)

    @property
    def manifest_key(self) -> str:
        return self.key + MANIFEST_SUFFIX


def extension(fmt: str, compression: str = "gzip") -> str:
    kind = (fmt, "archive" if fmt == "custom" else compression)
    for ext, k in EXTENSIONS.items():
        if k == kind:
            return ext
    raise UsageError(f"no object name for format {fmt!r} with compression {compression!r}")


def new_backup_key(
    prefix: str, database: str, fmt: str, when: datetime, compression: str = "gzip", encrypted: bool = False
) -> BackupName:
    stamp = when.astimezone(UTC).strftime(_TS_FORMAT)
    ext = extension(fmt, compression)
    key = join(prefix, f"{database}_{stamp}{ext}{ENCRYPTED_SUFFIX if encrypted else ''}")
    return BackupName(key, database, when.astimezone(UTC).replace(microsecond=0), fmt, EXTENSIONS[ext][1], encrypted)


def pattern_for(database: str) -> re.Pattern[str]:
    """The names of one database's backups, and nothing else: `app` never matches `app_v2_...`."""
    exts = "|".join(re.escape(e) for e in EXTENSIONS)
    return re.compile(rf"^{re.escape(database)}_{_TS_RE}({exts})({re.escape(ENCRYPTED_SUFFIX)})?$")


def parse(key: str, prefix: str, database: str) -> BackupName | None:
    """The backup a key names, if it is one of `database`'s directly under `prefix`."""
    prefix = normalize_prefix(prefix)
    if prefix:
        if not key.startswith(prefix + "/"):
            return None
        name = key[len(prefix) + 1 :]
    else:
        name = key
    m = pattern_for(database).match(name)
    if not m:
        return None
    when = datetime.strptime(m.group(1), _TS_FORMAT).replace(tzinfo=UTC)
    fmt, compression = EXTENSIONS[m.group(2)]
    return BackupName(key, database, when, fmt, compression, bool(m.group(3)))


_ANY_BACKUP = re.compile(
    rf"^(.+)_{_TS_RE}({'|'.join(re.escape(e) for e in EXTENSIONS)})({re.escape(ENCRYPTED_SUFFIX)})?$"
)


def database_of(key: str) -> str | None:
    """The database a backup key names, whatever the prefix: `a/b/appdb_2024-...sql.gz` -> `appdb`."""
    m = _ANY_BACKUP.match(key.rsplit("/", 1)[-1])
    return m.group(1) if m else None


def kind_of(key: str) -> tuple[str, str]:
    """(format, compression) from a key's extension; a name this tool never writes reads as the
    chart's plain gzip, which the verification then proves or refuses."""
    key = key.removesuffix(ENCRYPTED_SUFFIX)
    for ext, kind in EXTENSIONS.items():
        if key.endswith(ext):
            return kind
    return "plain", "gzip"


def is_encrypted(key: str) -> bool:
    return key.endswith(ENCRYPTED_SUFFIX)


def resolve_object(obj: str, prefix: str) -> str:
    """The chart's `restore.object` was a file name relative to the prefix; a full key works too."""
    obj = obj.strip()
    if obj.startswith("s3://"):
        raise UsageError(
            f"restore object {obj!r} is a URL",
            hint="give the key inside the bucket (or just the file name under the prefix), without s3://bucket/",
        )
    if not obj or obj.startswith("/") or obj.endswith("/"):
        raise UsageError(
            f"restore object {obj!r} is not an object key",
            hint="give a file name such as appdb_2024-01-21_02-00-00.sql.gz, or 'latest'",
        )
    if obj.endswith(MANIFEST_SUFFIX):
        raise UsageError(
            f"restore object {obj!r} is the manifest of a backup, not the backup",
            hint=f"pass the backup itself: {obj[: -len(MANIFEST_SUFFIX)]!r}",
        )
    if f"{STATE_DIR}/" in obj or obj.startswith(STATE_DIR):
        raise UsageError(
            f"restore object {obj!r} is one of the worker's own records, not a backup",
            hint="run `cnpg-backup-worker list` and pass one of its keys, or 'latest'",
        )
    if obj.startswith(GLOBALS_DIR + "/") or f"/{GLOBALS_DIR}/" in obj:
        raise UsageError(
            f"restore object {obj!r} is a roles/globals backup, not a database backup",
            hint="apply it with `cnpg-backup-worker restore-globals --object ...` (or restore --globals)",
        )
    return contract.object_key(obj, prefix)


# A parallel backup's other parts (worker/parallel.py): `<backup key>.part<i>`, i >= 1. No backup
# pattern matches them (the patterns end at the extension), so a part alone is never listed or
# restored; the backup's manifest names them, and they live and die with it.
_PART_RE = re.compile(r"^(.+)\.part([1-9][0-9]*)$")


def part_key(key: str, index: int) -> str:
    return f"{key}.part{index}"


def part_of(key: str) -> tuple[str, int] | None:
    """(backup key, part index) when `key` is a parallel backup's part, else None."""
    m = _PART_RE.match(key)
    return (m.group(1), int(m.group(2))) if m else None


def state_key(prefix: str, *parts: str) -> str:
    return join(prefix, "/".join((STATE_DIR, *parts)))
