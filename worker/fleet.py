"""`status --all`: every database backed up under a prefix (or the whole bucket), one line each.

Each backup run leaves a status object at `<prefix>/.cnpg-backup/status/<database>.json`
(worker/metrics.py); finding them needs no config: one listing of the prefix (every page of it:
S3 returns at most 1,000 keys per page, and a fleet's prefix holds many more) picks out the status
keys, and the objects are read a few at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import health, log, naming
from .s3 import Bucket

_STATUS_KEY = re.compile(rf"^(?:(?P<prefix>.*)/)?{re.escape(naming.STATE_DIR)}/status/(?P<database>[^/]+)\.json$")
# Status objects are small; a few reads at once make 200 databases a second, not a minute.
_READERS = 8


def find_databases(bucket: Bucket, prefix: str) -> list[tuple[str, str]]:
    """(prefix, database) of every status object under `prefix`, sorted."""
    search = naming.normalize_prefix(prefix)
    found = []
    for obj in bucket.list_objects(f"{search}/" if search else ""):
        match = _STATUS_KEY.match(obj.key)
        if match:
            found.append((match.group("prefix") or "", match.group("database")))
    return sorted(found)


def fleet_report(bucket: Bucket, prefix: str) -> list[dict[str, Any]]:
    """`status --json` for each database found, with its prefix."""
    databases = find_databases(bucket, prefix)
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        docs = list(pool.map(lambda found: health.status_report(bucket, *found), databases))
    return [{"prefix": p, **doc} for (p, _), doc in zip(databases, docs, strict=True)]


def _row(doc: dict[str, Any]) -> list[str]:
    run, ok, drill = doc.get("last_run"), doc.get("last_success"), doc.get("drill") or {}
    newest = age = size = "-"
    if ok:
        newest = ok["key"].rsplit("/", 1)[-1] + (" (flagged)" if ok.get("flags") else "")
        age, size = health.age_text(ok["age_s"]), str(log.human_bytes(ok["stored_bytes"]))
    if not run:
        result = "no run yet"
    elif run["outcome"] == "success":
        result = f"success {health.age_text(run['age_s'])} ago"
    else:
        result = f"FAILED {health.age_text(run['age_s'])} ago: {run['error']}"
    if drill.get("outcome") and drill["outcome"] != "success":
        result += "; last drill FAILED"
    return [doc["prefix"] or "/", doc["database"], newest, age, size, result]


def print_fleet(docs: list[dict[str, Any]], out: Callable[[str], None]) -> None:
    rows = [["prefix", "database", "newest good backup", "age", "size", "last run"], *map(_row, docs)]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        cells = [r[i].rjust(w) if i in (3, 4) else r[i].ljust(w) for i, w in enumerate(widths)]
        out("  ".join([*cells, r[5]]))
