"""Fleet scheduling: spreading the start times of many databases' CronJobs.

200 databases on `0 2 * * *` start 200 pg_dumps in the same second. Two ways to spread them,
both resolved here at synth time into a plain cron expression per database (Kubernetes knows
neither):

- a window (`backup.window: 2h`): each database starts somewhere in the two hours from the
  schedule's start (`0 2 * * *` becomes e.g. `37 3 * * *`);
- Jenkins-style `H` fields (`H 2 * * *`, `H H(1-4) * * *`, `H/15 * * * *`): each `H` becomes a
  value of that field's range (`H/15` a start in 0-14, then every 15 minutes).

Which start a database gets is a hash, not randomness, so every synth writes the same
schedules and `kubectl apply` changes nothing. Databases of one cluster (the same serviceName, or
secretName without it) are placed evenly apart first: the cluster's hash picks where its first
database starts, the others follow at equal distances in the order of their own hash
(cluster/database), so two of them share a start minute only when there are more of them than
minutes in the window.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from typing import Annotated

from .cron import (
    _CRON_FIELDS,
    _MACRO_EXPRESSIONS,
    _cron_field_problem,
    _expand,
    cron_problem,
    shortest_interval_seconds,
)
from .validation import rule

_H_FIELD = re.compile(r"^H(?:\((\d+)-(\d+)\))?(?:/(\d+))?$")
_H_SHAPES = "H, H(a-b), H/n or H(a-b)/n"
# Jenkins' choice: an `H` day of month stays within 1-28, so it runs in February too.
_H_DAY_OF_MONTH_MAX = 28


@dataclasses.dataclass(frozen=True)
class _HashField:
    """One `H` field: its start is one of `lo`..`lo+step-1` (or `lo`..`hi` without a step)."""

    lo: int
    hi: int
    step: int | None

    def choices(self) -> list[str]:
        if self.step is None:
            return [str(v) for v in range(self.lo, self.hi + 1)]
        return [f"{s}-{self.hi}/{self.step}" for s in range(self.lo, min(self.lo + self.step, self.hi + 1))]


def has_hash(expr: str) -> bool:
    return any(f.startswith("H") for f in expr.split())


def _hash_field(text: str, label: str, lo: int, hi: int) -> _HashField:
    match = _H_FIELD.match(text)
    if not match:
        raise ValueError(f"'{text}' is not one of {_H_SHAPES}")
    if label == "day-of-month":
        hi = _H_DAY_OF_MONTH_MAX
    if match.group(1) is not None:
        start, end = int(match.group(1)), int(match.group(2))
        if not (lo <= start <= end <= hi):
            raise ValueError(f"'{text}': the range must lie within {lo}-{hi} and not run backwards")
        lo, hi = start, end
    step = int(match.group(3)) if match.group(3) is not None else None
    if step is not None and not 1 <= step <= hi - lo + 1:
        raise ValueError(f"'{text}': the step must be between 1 and {hi - lo + 1}")
    return _HashField(lo, hi, step)


def _parse(expr: str) -> list[str | _HashField]:
    """The five fields, `H` ones parsed; ValueError with a message naming the field."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError("expected 5 fields: minute hour day-of-month month day-of-week (no @macro with H)")
    parsed: list[str | _HashField] = []
    for text, (label, lo, hi, names) in zip(fields, _CRON_FIELDS, strict=True):
        try:
            if text.startswith("H"):
                parsed.append(_hash_field(text, label, lo, hi))
                continue
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        problem = _cron_field_problem(text, lo, hi, names, wildcard_q=label.startswith("day"))
        if problem:
            raise ValueError(f"{label}: {problem}")
        parsed.append(text)
    return parsed


def schedule_problem(value: str) -> str | None:
    """Like cron_problem, and `H` fields are allowed (spread per database at synth time)."""
    if not has_hash(value) or value.strip().startswith(("TZ=", "CRON_TZ=", "@")):
        return cron_problem(value)
    try:
        _parse(value)
    except ValueError as exc:
        return f"not a valid cron expression '{value}' ({exc})"
    return None


Schedule = Annotated[str, rule(schedule_problem)]


_WINDOW = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?$")
MAX_WINDOW_MINUTES = 24 * 60


def window_minutes(text: str) -> int:
    """'2h' -> 120, '90m' -> 90, '1h30m' -> 90, '' -> 0 (no window). The text is valid."""
    match = _WINDOW.match(text)
    assert match, text
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def window_problem(value: str) -> str | None:
    if value == "":
        return None
    if not _WINDOW.match(value):
        return f"'{value}' is not a duration (e.g. 2h, 90m, 1h30m)"
    if not 1 <= window_minutes(value) <= MAX_WINDOW_MINUTES:
        return f"'{value}' must be between 1m and 24h"
    return None


Window = Annotated[str, rule(window_problem)]


def _fields(expr: str) -> list[str]:
    return _MACRO_EXPRESSIONS.get(expr.strip(), expr).split()


def window_schedule_problem(schedule: str, window: int) -> str | None:
    """Why `schedule` (a valid one) cannot be spread over `window` minutes, or None.
    The message reads after the schedule's field name."""
    if has_hash(schedule):
        return f"'{schedule}' uses H while a window is set; use one or the other"
    minute, hour, *days = _fields(schedule)
    if not minute.isdigit():
        return (
            f"'{schedule}' has no single start minute to spread a window from (e.g. 0 2 * * *); "
            "or spread it with H instead (e.g. H/15 * * * *)"
        )
    interval = shortest_interval_seconds(schedule) // 60
    if window > interval:
        return f"'{schedule}' runs every {interval} min, less than the window's {window} min; shorten the window"
    last_start = max(_expand(hour, 0, 23, {})) * 60 + int(minute)
    if any(d not in ("*", "?") for d in days) and last_start + window > MAX_WINDOW_MINUTES:
        return (
            f"'{schedule}' plus the window reaches past midnight into days the schedule does not name; "
            "start earlier or shorten the window"
        )
    return None


def _render_hours(hours: list[int]) -> str:
    if hours == list(range(hours[0], hours[-1] + 1)) and len(hours) > 1:
        return f"{hours[0]}-{hours[-1]}"
    return ",".join(str(h) for h in hours)


def _shift(schedule: str, offset: int) -> str:
    """`schedule` started `offset` minutes later (window_schedule_problem is None)."""
    minute, hour, *days = _fields(schedule)
    carry, new_minute = divmod(int(minute) + offset, 60)
    if carry and hour not in ("*", "?"):
        hour = _render_hours(sorted({(h + carry) % 24 for h in _expand(hour, 0, 23, {})}))
    return " ".join([str(new_minute), hour, *days])


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclasses.dataclass(frozen=True)
class Member:
    """One database's part in a spread: its schedule (with H, or spread over `window` minutes),
    its cluster (serviceName, else secretName) and its identity (cluster/database)."""

    schedule: str
    window: int  # minutes; not used for a schedule with H (a database's own), which H spreads
    cluster: str
    database: str

    @property
    def identity(self) -> str:
        return f"{self.cluster}/{self.database}"


def _uses_window(member: Member) -> bool:
    return bool(member.window) and not has_hash(member.schedule)


def _choices(member: Member) -> int:
    """How many starts the member's schedule can take (1: nothing to spread)."""
    if _uses_window(member):
        if window_schedule_problem(member.schedule, member.window):
            return 1  # reported by the config's rules; leave the schedule as written
        return member.window
    if not has_hash(member.schedule) or schedule_problem(member.schedule):
        return 1
    count = 1
    for field in _parse(member.schedule):
        if isinstance(field, _HashField):
            count *= len(field.choices())
    return count


def _resolve(member: Member, slot: int) -> str:
    """The schedule for start choice `slot`: a window's minute offset, or the `H` fields'
    values with the minute varying fastest (so slots next to each other are a minute apart)."""
    if _uses_window(member):
        return _shift(member.schedule, slot)
    texts: list[str] = []
    for field in _parse(member.schedule):
        if isinstance(field, str):
            texts.append(field)
            continue
        choices = field.choices()
        slot, index = divmod(slot, len(choices))
        texts.append(choices[index])
    return " ".join(texts)


def spread(members: Sequence[Member]) -> list[str]:
    """The schedule of each member (same order). Members sharing a cluster and a schedule (and
    window) are spaced evenly over its choices, starting where the cluster's hash points."""
    groups: dict[tuple[str, bool, str], list[int]] = {}
    for i, m in enumerate(members):
        groups.setdefault((m.schedule, _uses_window(m), m.cluster), []).append(i)
    result = [m.schedule for m in members]
    for (_, _, cluster), indices in groups.items():
        choices = _choices(members[indices[0]])
        if choices == 1:
            continue
        start = _digest(cluster) % choices
        ordered = sorted(indices, key=lambda i: (_digest(members[i].identity), members[i].identity, i))
        for position, i in enumerate(ordered):
            result[i] = _resolve(members[i], (start + position * choices // len(ordered)) % choices)
    return result
