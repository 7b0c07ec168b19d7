"""What a run leaves behind for monitoring: a status object next to the backups, and (when
configured) the same figures pushed to a Prometheus Pushgateway.

The status object (`<prefix>/.cnpg-backup/status/<database>.json`) needs no metrics stack:
`cnpg-backup-worker status` and `check` read it. It carries the last run, whatever its outcome, and
the last success forward, so a failed run never erases when the newest good backup was made — which
is also why a push after a failure re-sends the last success (a Pushgateway PUT replaces the group).
Neither may fail a backup that succeeded: a monitoring outage is logged, and shows up as stale
metrics, which the generated alerts catch.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from . import contract, log, naming
from .s3 import Bucket, utcnow


@dataclass
class RunRecord:
    outcome: str  # "success" | "failure"
    started_at: str
    finished_at: str
    duration_s: float
    key: str = ""
    raw_bytes: int = 0
    stored_bytes: int = 0
    tables: int = 0
    flags: list[str] = field(default_factory=list)
    error: str = ""  # redacted, one line

    @property
    def finished(self) -> datetime:
        return datetime.fromisoformat(self.finished_at)


def status_key(prefix: str, database: str) -> str:
    return naming.state_key(prefix, "status", f"{database}.json")


def _record(doc: dict[str, Any] | None) -> RunRecord | None:
    if not doc:
        return None
    known = set(RunRecord.__dataclass_fields__)
    try:
        return RunRecord(**{k: v for k, v in doc.items() if k in known})
    except TypeError:
        return None


@dataclass
class Status:
    database: str
    last_run: RunRecord | None = None
    last_success: RunRecord | None = None
    drill: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, bucket: Bucket, prefix: str, database: str) -> Status:
        try:
            doc = bucket.get_json(status_key(prefix, database)) or {}
        except Exception as exc:  # noqa: BLE001 - an unreadable status is reported, never fatal here
            log.warning("could not read the status object", database=database, error=log.redact(str(exc)))
            doc = {}
        return cls(database, _record(doc.get("last_run")), _record(doc.get("last_success")), doc.get("drill") or {})

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "updated_at": utcnow().isoformat(),
            "last_run": asdict(self.last_run) if self.last_run else None,
            "last_success": asdict(self.last_success) if self.last_success else None,
            "drill": self.drill,
        }


def record_run(bucket: Bucket, prefix: str, database: str, run: RunRecord, pushgateway: str | None) -> Status:
    """Write the status object and push the metrics; problems are warnings (see the module doc)."""
    status = Status.load(bucket, prefix, database)
    status.last_run = run
    if run.outcome == "success":
        status.last_success = run
    _save(bucket, prefix, status, pushgateway)
    return status


def record_drill(bucket: Bucket, prefix: str, database: str, drill: dict[str, Any], pushgateway: str | None) -> None:
    status = Status.load(bucket, prefix, database)
    status.drill = drill
    _save(bucket, prefix, status, pushgateway)


def _save(bucket: Bucket, prefix: str, status: Status, pushgateway: str | None) -> None:
    key = status_key(prefix, status.database)
    try:
        bucket.put_bytes(key, json.dumps(status.to_json(), indent=2).encode())
    except Exception as exc:  # noqa: BLE001
        log.warning(
            "could not write the status object",
            key=key,
            error=log.redact(str(exc)),
            hint="`status` and `check` will show the previous state",
        )
    if pushgateway:
        push(pushgateway, bucket.loc.bucket, prefix, status)


def _gauges(status: Status) -> dict[str, float]:
    values: dict[str, float] = {}
    run, ok = status.last_run, status.last_success
    if run:
        values[contract.METRIC_LAST_RUN] = run.finished.timestamp()
        values[contract.METRIC_LAST_RUN_OK] = 1.0 if run.outcome == "success" else 0.0
        values[contract.METRIC_DURATION] = run.duration_s
    if ok:
        values[contract.METRIC_LAST_SUCCESS] = ok.finished.timestamp()
        values[contract.METRIC_RAW_BYTES] = ok.raw_bytes
        values[contract.METRIC_STORED_BYTES] = ok.stored_bytes
        values[contract.METRIC_TABLES] = ok.tables
        values[contract.METRIC_FLAGGED] = 1.0 if ok.flags else 0.0
    if status.drill:
        values[contract.METRIC_DRILL_OK] = 1.0 if status.drill.get("outcome") == "success" else 0.0
        if status.drill.get("finished_at"):
            values[contract.METRIC_DRILL_LAST] = datetime.fromisoformat(status.drill["finished_at"]).timestamp()
    return values


HELP = {
    contract.METRIC_LAST_RUN: "End of the last backup run, whatever its outcome (unix time)",
    contract.METRIC_LAST_RUN_OK: "1 if the last backup run succeeded, 0 if it failed",
    contract.METRIC_LAST_SUCCESS: "End of the newest successful backup (unix time)",
    contract.METRIC_DURATION: "Duration of the last backup run (seconds)",
    contract.METRIC_RAW_BYTES: "Bytes pg_dump wrote for the newest successful backup",
    contract.METRIC_STORED_BYTES: "Size of the newest successful backup's object in S3 (bytes)",
    contract.METRIC_TABLES: "User tables in the database when the newest successful backup was taken",
    contract.METRIC_FLAGGED: "1 if the newest successful backup is flagged (no user tables, or shrank)",
    contract.METRIC_DRILL_OK: "1 if the last restore drill passed, 0 if it failed",
    contract.METRIC_DRILL_LAST: "End of the last restore drill (unix time)",
}


def push(url: str, bucket: str, prefix: str, status: Status) -> bool:
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    for name, value in _gauges(status).items():
        Gauge(name, HELP[name], registry=registry).set(value)
    grouping = {"bucket": bucket, "prefix": naming.normalize_prefix(prefix), "database": status.database}
    t0 = time.monotonic()
    try:
        push_to_gateway(url, job=contract.METRICS_JOB, registry=registry, grouping_key=grouping, timeout=15)
    except Exception as exc:  # noqa: BLE001 - any transport or HTTP error
        log.warning(
            "could not push metrics to the Pushgateway",
            pushgateway=url,
            error=log.redact(str(exc)).splitlines()[0][:300],
            hint="the backup itself is unaffected; alerts on stale metrics will fire if this persists",
        )
        return False
    log.info("metrics pushed", pushgateway=url, duration=log.seconds(time.monotonic() - t0))
    return True
