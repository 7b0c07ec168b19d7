"""Which backups to keep: `retentionDays` (everything newer than N days) and grandfather-father-son
counts (the newest backup of each of the last N days, ISO weeks, months and years), together.

A backup is kept when any rule keeps it, and the plan says which rule, so `prune --dry-run` can
show why each object stays or goes. Whatever the rules, two backups are never deleted: the newest
complete one, and any a restore has announced it is reading (a pending-restore record younger than
two days), so retention running next to a long restore cannot pull its object away.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import log, naming, uploads
from .catalog import Entry, Orphan, scan
from .errors import WorkerError
from .s3 import Bucket, utcnow

PENDING_MAX_AGE = timedelta(days=2)


def orphan_part_age() -> timedelta:
    """A parallel backup's completed part whose backup has no manifest a day later was left by a
    killed worker (a running backup writes its manifest within its own run). Tests shorten it, as
    CNPG_BACKUP_STALE_UPLOAD_SECONDS shortens the upload's (worker/uploads.py)."""
    return timedelta(seconds=float(os.environ.get("CNPG_BACKUP_ORPHAN_PART_SECONDS", "86400")))


@dataclass(frozen=True)
class Policy:
    days: int = 0  # keep everything newer than this many days (0: no age rule)
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    @property
    def gfs(self) -> bool:
        return any((self.daily, self.weekly, self.monthly, self.yearly))

    @property
    def active(self) -> bool:
        return self.days > 0 or self.gfs

    def describe(self) -> str:
        parts = [f"{self.days} days"] if self.days else []
        parts += [
            f"{n} {unit}"
            for n, unit in (
                (self.daily, "daily"),
                (self.weekly, "weekly"),
                (self.monthly, "monthly"),
                (self.yearly, "yearly"),
            )
            if n
        ]
        return ", ".join(parts) or "none"


@dataclass
class Decision:
    entry: Entry
    keep: bool
    reasons: list[str] = field(default_factory=list)


def _periods(taken: datetime) -> dict[str, str]:
    iso = taken.isocalendar()
    return {
        "daily": taken.strftime("%Y-%m-%d"),
        "weekly": f"{iso.year}-W{iso.week:02d}",
        "monthly": taken.strftime("%Y-%m"),
        "yearly": taken.strftime("%Y"),
    }


def plan(entries: list[Entry], policy: Policy, now: datetime, pending: set[str] | None = None) -> list[Decision]:
    """One decision per entry (newest first, as `entries` are)."""
    pending = pending or set()
    decisions = [Decision(e, False) for e in entries]
    # candidates for the GFS slots: backups that can be restored (complete, or the chart's, which
    # have no manifest), unflagged ones first within a period
    usable = [d for d in decisions if d.entry.complete or not d.entry.has_manifest]
    newest = next((d for d in decisions if d.entry.complete), decisions[0] if decisions else None)
    if newest:
        newest.keep = True
        newest.reasons.append("newest complete backup" if newest.entry.complete else "newest backup")
    # ...and the newest unflagged one: after a cluster was emptied, nightly flagged backups must not
    # age the last good backup out
    good = next((d for d in decisions if d.entry.complete and not d.entry.flags), None)
    if good and good is not newest:
        good.keep = True
        good.reasons.append("newest unflagged complete backup")
    for d in decisions:
        if d.entry.name.key in pending:
            d.keep = True
            d.reasons.append("a restore is reading it")
        if policy.days and d.entry.name.taken_at >= now - timedelta(days=policy.days):
            d.keep = True
            d.reasons.append(f"within {policy.days} days")
    for slot, count in (
        ("daily", policy.daily),
        ("weekly", policy.weekly),
        ("monthly", policy.monthly),
        ("yearly", policy.yearly),
    ):
        if count <= 0:
            continue
        chosen: dict[str, Decision] = {}
        for d in sorted(usable, key=lambda d: (not d.entry.flags, d.entry.name.taken_at), reverse=True):
            period = _periods(d.entry.name.taken_at)[slot]
            if period not in chosen and len(chosen) < count:
                chosen[period] = d
        for period, d in chosen.items():
            d.keep = True
            d.reasons.append(f"{slot} {period}")
    for d in decisions:
        if not d.keep:
            d.reasons.append("no rule keeps it")
    return decisions


def render(decisions: list[Decision]) -> list[str]:
    lines = [f"{'taken at (UTC)':<20} {'action':<7} {'status':<28} {'why':<44} key"]
    for d in decisions:
        e = d.entry
        lines.append(
            f"{e.name.taken_at.strftime('%Y-%m-%d %H:%M:%S'):<20} {'keep' if d.keep else 'delete':<7} "
            f"{e.status()[:28]:<28} {'; '.join(d.reasons)[:44]:<44} {e.name.key}"
        )
    return lines


def pending_key(prefix: str, key: str) -> str:
    """The record a restore writes while it reads `key` (worker/restore.py)."""
    return naming.state_key(prefix, "pending", key.rsplit("/", 1)[-1] + ".json")


def pending_restores(bucket: Bucket, prefix: str, now: datetime) -> set[str]:
    """Keys restores announced they are reading; records older than two days are stale (a killed
    restore never removed its record) and no longer protect anything."""
    keys = set()
    for obj in bucket.list_objects(naming.state_key(prefix, "pending") + "/"):
        if now - obj.last_modified <= PENDING_MAX_AGE:
            doc = bucket.get_json(obj.key) or {}
            if doc.get("key"):
                keys.add(str(doc["key"]))
    return keys


def prune(bucket: Bucket, prefix: str, database: str, policy: Policy, *, dry_run: bool = False) -> list[Decision]:
    if not policy.active:
        raise WorkerError(
            "no retention rule to prune by",
            hint="set retentionDays > 0 and/or retention daily/weekly/monthly/yearly counts; "
            "0 everywhere leaves expiry to the bucket's lifecycle rules",
        )
    now = utcnow()
    orphans: list[Orphan] = []
    decisions = plan(
        scan(bucket, prefix, database, orphans=orphans), policy, now, pending_restores(bucket, prefix, now)
    )
    doomed = [d for d in decisions if not d.keep]
    old_orphans = [o.key for o in orphans if now - o.last_modified > orphan_part_age()]
    for key in old_orphans:
        log.info("prune: would delete orphan part" if dry_run else "prune: deleting orphan part", key=key)
    if old_orphans and not dry_run:
        bucket.delete(old_orphans)
    if dry_run:
        for line in render(decisions):
            print(line)
    else:
        keys = [
            k
            for d in doomed
            # the parts first and the manifest last: an interrupted prune leaves no listed backup without its parts
            for k in (
                sorted(d.entry.parts)
                + [d.entry.name.key]
                + ([d.entry.name.manifest_key] if d.entry.has_manifest else [])
            )
        ]
        for d in doomed:
            log.info("prune: deleting", key=d.entry.name.key)
        if keys:
            bucket.delete(keys)
    uploads.abort_stale(bucket, prefix, database, dry_run=dry_run)
    log.info(
        "prune dry run" if dry_run else "prune done",
        database=database,
        policy=policy.describe(),
        kept=len(decisions) - len(doomed),
        deleted=0 if dry_run else len(doomed),
        planned=len(doomed),
    )
    return decisions
