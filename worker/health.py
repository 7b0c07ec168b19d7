"""`status` and `check`: is this database backed up, answered from the bucket alone.

`check` is for scripts and humans at 2 AM: exit 0 with one line saying what is fine, or exit 1
with one line naming the first thing wrong — the newest complete backup is too old or too small,
the newest backup is flagged, the last run failed, the last restore drill failed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import catalog, log, metrics
from .errors import Terminated, UsageError, WorkerError
from .metrics import RunRecord
from .s3 import Bucket, utcnow

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`26h`, `90m`, `2d`, `3600` (seconds) -> seconds."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"{text!r} is not a duration", hint="use e.g. 26h, 90m, 2d or a number of seconds")
    return float(m.group(1)) * _UNITS[m.group(2)]


def age_text(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n:
            return f"{seconds / n:.1f}{unit}"
    return f"{seconds:.0f}s"


@dataclass
class Verdict:
    ok: bool
    line: str


def check(
    bucket: Bucket, prefix: str, database: str, max_age: float, min_bytes: int = 0, *, ignore_drill: bool = False
) -> Verdict:
    where = f"{database} (s3://{bucket.loc.bucket}/{prefix})"
    entries = catalog.scan(bucket, prefix, database)
    complete = [e for e in entries if e.complete]
    if not complete:
        return Verdict(False, f"CRITICAL {where}: no complete backup")
    newest = complete[0]
    age = (utcnow() - newest.name.taken_at).total_seconds()
    name = newest.name.key.rsplit("/", 1)[-1]
    if newest.flags:
        return Verdict(False, f"CRITICAL {where}: newest backup {name} is flagged: {'; '.join(newest.flags)}")
    if age > max_age:
        return Verdict(
            False, f"CRITICAL {where}: newest complete backup {name} is {age_text(age)} old (max {age_text(max_age)})"
        )
    if newest.size < min_bytes:
        return Verdict(
            False,
            f"CRITICAL {where}: newest complete backup {name} is {log.human_bytes(newest.size)} "
            f"(min {log.human_bytes(min_bytes)})",
        )
    status = metrics.Status.load(bucket, prefix, database)
    run = status.last_run
    if run and run.outcome != "success" and run.finished > newest.name.taken_at:
        return Verdict(False, f"CRITICAL {where}: the last backup run failed at {run.finished_at}: {run.error}")
    if status.drill and status.drill.get("outcome") != "success" and not ignore_drill:
        return Verdict(
            False,
            f"CRITICAL {where}: the last restore drill failed at {status.drill.get('finished_at')}: "
            f"{status.drill.get('error', '')}",
        )
    return Verdict(True, f"OK {where}: newest backup {name}, {age_text(age)} old, {log.human_bytes(newest.size)}")


def status_report(bucket: Bucket, prefix: str, database: str) -> dict[str, Any]:
    status = metrics.Status.load(bucket, prefix, database)
    now = utcnow()
    doc = status.to_json()
    doc.pop("updated_at", None)
    for part in ("last_run", "last_success"):
        rec = getattr(status, part)
        if rec:
            doc[part]["age_s"] = round((now - rec.finished).total_seconds())
    return doc


def print_status(doc: dict[str, Any], out: Callable[[str], None]) -> None:
    db = doc["database"]
    run, ok = doc.get("last_run"), doc.get("last_success")
    if not run:
        out(f"{db}: no run recorded yet (the status object is written by each backup run)")
        return
    line = f"{db}: last run {run['outcome']} at {run['finished_at']} ({age_text(run['age_s'])} ago, {run['duration_s']:.0f}s)"
    if run["outcome"] != "success":
        line += f": {run['error']}"
    out(line)
    if ok:
        flagged = f", flagged: {'; '.join(ok['flags'])}" if ok["flags"] else ""
        out(
            f"{db}: newest good backup {ok['key']} ({age_text(ok['age_s'])} ago, {log.human_bytes(ok['stored_bytes'])} "
            f"stored, {ok['tables']} tables{flagged})"
        )
    if doc.get("drill"):
        d = doc["drill"]
        out(f"{db}: last restore drill {d.get('outcome')} at {d.get('finished_at')}")


@contextmanager
def recorded_run(bucket: Bucket, prefix: str, database: str, pushgateway: str | None) -> Any:
    """Around one backup run: whatever happens inside, the status object, metrics and notifications
    record it; the exception (if any) still propagates."""
    from . import notify

    started = utcnow()
    t0 = time.monotonic()
    result: dict[str, Any] = {}
    try:
        yield result
    except BaseException as exc:
        message = exc.message if isinstance(exc, WorkerError | Terminated) else f"{type(exc).__name__}: {exc}"
        run = RunRecord(
            "failure",
            started.isoformat(),
            utcnow().isoformat(),
            round(time.monotonic() - t0, 1),
            error=log.redact(str(message)).splitlines()[0][:500] if message else type(exc).__name__,
        )
        _record(bucket, prefix, database, run, pushgateway, notify.after_backup)
        raise
    m = result["manifest"]
    run = RunRecord(
        "success",
        started.isoformat(),
        utcnow().isoformat(),
        round(time.monotonic() - t0, 1),
        key=m.key,
        raw_bytes=m.raw_bytes,
        stored_bytes=int(m.extra.get("stored_bytes_total", m.object_bytes)),  # a parallel backup: every part
        tables=int(m.extra.get("user_tables", 0)),
        flags=list(m.flags),
    )
    _record(bucket, prefix, database, run, pushgateway, notify.after_backup)


def _record(
    bucket: Bucket,
    prefix: str,
    database: str,
    run: RunRecord,
    pushgateway: str | None,
    after: Callable[[str, RunRecord], None],
) -> None:
    try:
        metrics.record_run(bucket, prefix, database, run, pushgateway)
        after(database, run)
    except Exception as exc:  # noqa: BLE001 - monitoring never changes the run's outcome
        log.warning("could not record the run for monitoring", error=log.redact(str(exc)))
