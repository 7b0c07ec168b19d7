"""Cron schedules and time zones, checked the way the Kubernetes CronJob controller parses them
(robfig/cron standard parser: 5 fields or a macro), so a typo fails at synth time instead of the
API server refusing the CronJob (or, worse, accepting a schedule that never fires when meant)."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache
from typing import Annotated

from .validation import rule

CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MONTHS = {
    m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
_CRON_SHAPE = "expected 5 fields: minute hour day-of-month month day-of-week, or @daily/@hourly/..."


def _cron_value(text: str, lo: int, hi: int, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(f"'{text}' is not a number" + (" or a name" if names else ""))
    number = int(text)
    if not lo <= number <= hi:
        raise ValueError(f"{number} is out of range {lo}-{hi}")
    return number


def _cron_field_problem(text: str, lo: int, hi: int, names: dict[str, int], wildcard_q: bool) -> str | None:
    for item in text.split(","):
        base, slash, step = item.partition("/")
        try:
            if slash and (not step.isdigit() or int(step) < 1):
                raise ValueError(f"step '{step}' must be a positive number")
            if base == "*" or (base == "?" and wildcard_q):
                continue
            start_text, dash, end_text = base.partition("-")
            start = _cron_value(start_text, lo, hi, names)
            if dash:
                end = _cron_value(end_text, lo, hi, names)
                if start > end:
                    raise ValueError(f"range {base} runs backwards")
        except ValueError as exc:
            return f"{exc} in '{item}'" if item != text else str(exc)
    return None


def cron_problem(value: str) -> str | None:
    expr = value.strip()
    if expr.startswith(("TZ=", "CRON_TZ=")):
        return f"'{value}': Kubernetes does not accept a time zone in the schedule; set backup.timeZone instead"
    if expr.startswith("@"):
        if expr in CRON_MACROS:
            return None
        return f"not a valid cron expression '{value}' (unknown macro; use one of {', '.join(CRON_MACROS)})"
    fields = expr.split()
    if len(fields) != 5:
        return f"not a valid cron expression '{value}' ({_CRON_SHAPE})"
    for field_text, (label, lo, hi, names) in zip(fields, _CRON_FIELDS, strict=True):
        problem = _cron_field_problem(field_text, lo, hi, names, wildcard_q=label.startswith("day"))
        if problem:
            return f"not a valid cron expression '{value}' ({label}: {problem})"
    return None


Cron = Annotated[str, rule(cron_problem)]


def time_zone_problem(value: str | None) -> str | None:
    if value is None:
        return None
    if value == "Local" or not re.match(r"^[A-Za-z0-9_+\-/]+$", value):
        return f"'{value}' is not an IANA time zone name (e.g. Europe/Berlin, UTC)"
    zones = _available_zones()
    # Without a tz database on this machine we can only check the shape; the API server checks the rest.
    if zones and value not in zones:
        return f"'{value}' is not a known IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)"
    return None


@lru_cache(maxsize=1)
def _available_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


TimeZone = Annotated[str, rule(time_zone_problem)]


_MACRO_EXPRESSIONS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _expand(text: str, lo: int, hi: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = int(step_text) if slash else 1
        if base in ("*", "?"):
            start, end = lo, hi
        else:
            start_text, dash, end_text = base.partition("-")
            start = _cron_value(start_text, lo, hi, names)
            # robfig/cron: "5/15" runs from 5 to the field's end
            end = _cron_value(end_text, lo, hi, names) if dash else (hi if slash else start)
        values.update(range(start, end + 1, step))
    return values


@lru_cache(maxsize=4096)  # a spread fleet has a schedule per database
def _gaps_minutes(expr: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The gaps (minutes) between consecutive runs of a (valid) schedule over eight years of
    calendar from 2024-01-01, so leap days and monthly/yearly schedules count: those within a day,
    and those from one run day's last run to the next run day's first. Time-zone shifts are ignored
    (an hour at most)."""
    fields = _MACRO_EXPRESSIONS.get(expr.strip(), expr).split()
    minutes = _expand(fields[0], 0, 59, {})
    hours = _expand(fields[1], 0, 23, {})
    times = sorted(h * 60 + m for h in hours for m in minutes)
    within = tuple(b - a for a, b in zip(times, times[1:], strict=False))
    days = _run_days(*fields[2:])
    between = tuple((b - a) * 1440 + times[0] - times[-1] for a, b in zip(days, days[1:], strict=False))
    return within, between


@lru_cache(maxsize=256)
def _run_days(dom_text: str, month_text: str, dow_text: str) -> tuple[int, ...]:
    """The days (offsets from 2024-01-01, eight years) a schedule's day fields run on; shared by
    every schedule with the same day fields (a spread fleet's differ only in minute and hour)."""
    import datetime as dt

    day_fields = zip((dom_text, month_text, dow_text), _CRON_FIELDS[2:], strict=True)
    mdays, months, wdays = (_expand(f, lo, hi, names) for f, (_, lo, hi, names) in day_fields)
    if 7 in wdays:
        wdays.add(0)
    # robfig/cron: when both day fields are restricted a day matches either; otherwise both
    dom_star, dow_star = dom_text.startswith(("*", "?")), dow_text.startswith(("*", "?"))
    start = dt.date(2024, 1, 1)
    days = []
    for offset in range(8 * 366):
        day = start + dt.timedelta(days=offset)
        dom, dow = day.day in mdays, (day.isoweekday() % 7) in wdays
        if day.month in months and ((dom or dow) if not (dom_star or dow_star) else (dom and dow)):
            days.append(offset)
    return tuple(days)


# A schedule that (almost) never runs: at most once in the eight years looked at.
_NO_SECOND_RUN_SECONDS = 366 * 86400


def shortest_interval_seconds(expr: str) -> int:
    """The shortest time between two runs of a (valid) schedule (see _gaps_minutes)."""
    within, between = _gaps_minutes(expr)
    gaps = within + between
    return 60 * min(gaps) if gaps else _NO_SECOND_RUN_SECONDS


def longest_interval_seconds(expr: str) -> int:
    """The longest time between two runs of a (valid) schedule (see _gaps_minutes): how long a
    healthy schedule can go without a backup, e.g. 72 h for `0 2 * * 1-5` (Friday to Monday)."""
    within, between = _gaps_minutes(expr)
    return 60 * max(within + between) if between else _NO_SECOND_RUN_SECONDS
