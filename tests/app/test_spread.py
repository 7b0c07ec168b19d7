"""Fleet scheduling (app/spread.py): H fields and backup.window spread the databases' starts by a
hash, stable across synths, within the window, the databases of one cluster apart first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import Config
from app.cron import _expand, longest_interval_seconds, shortest_interval_seconds
from app.errors import ConfigError
from app.spread import Member, schedule_problem, spread
from app.targets import backup_targets
from testsupport.app_helpers import FLEET, render, values

BUCKET = {"s3": {"bucket": "fleet-backups", "secretName": "s3-creds"}}


def _fleet(clusters: int, per_cluster: int, **sections: Any) -> Config:
    databases = [
        {"name": f"c{c}-db{d}", "database": f"db{d}", "secretName": f"cluster{c}-app"}
        for c in range(clusters)
        for d in range(per_cluster)
    ]
    return Config.model_validate({**BUCKET, "databases": databases, **sections})


def _start_minute(schedule: str) -> int:
    """Minute of the day of a daily schedule's (single) start."""
    minute, hour, *_ = schedule.split()
    return int(hour) * 60 + int(minute)


def test_window_spreads_within_the_window_and_is_stable() -> None:
    cfg = _fleet(20, 10, backup={"window": "2h"})
    first = [t.schedule for t in backup_targets(cfg)]
    again = [t.schedule for t in backup_targets(_fleet(20, 10, backup={"window": "2h"}))]
    assert first == again
    starts = [_start_minute(s) for s in first]
    assert all(120 <= s < 240 for s in starts), starts  # 02:00 .. 03:59
    assert len(set(starts)) > 60  # 200 databases no longer start in one minute
    assert all(s.endswith(" * * *") for s in first)


@pytest.mark.parametrize(("window", "per_cluster", "apart"), [("2h", 10, 12), ("30m", 30, 1), ("1h", 7, 8)])
def test_databases_of_one_cluster_start_evenly_apart(window: str, per_cluster: int, apart: int) -> None:
    targets = backup_targets(_fleet(3, per_cluster, backup={"window": window}))
    for cluster in range(3):
        starts = sorted(_start_minute(t.schedule) for t in targets if t.secret_name == f"cluster{cluster}-app")
        assert len(set(starts)) == per_cluster, starts
        # evenly apart, modulo the window (the cluster's first start is anywhere in it)
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        assert min(gaps) >= apart, (cluster, starts)


def test_more_databases_than_minutes_share_as_few_as_possible() -> None:
    targets = backup_targets(_fleet(1, 12, backup={"window": "5m"}))
    starts = [_start_minute(t.schedule) for t in targets]
    assert sorted(starts.count(s) for s in set(starts)) == [2, 2, 2, 3, 3]


def test_the_spread_follows_the_database_not_its_position() -> None:
    members = [Member("H H(1-4) * * *", 0, "shop-rw", db) for db in ("orders", "carts", "invoices")]
    forward = dict(zip(("orders", "carts", "invoices"), spread(members), strict=True))
    backward = dict(zip(("invoices", "carts", "orders"), spread(members[::-1]), strict=True))
    assert forward == backward


def test_a_new_database_moves_only_its_own_clusters_starts() -> None:
    before = {t.name: t.schedule for t in backup_targets(_fleet(5, 4, backup={"window": "2h"}))}
    grown = _fleet(5, 4, backup={"window": "2h"}).model_dump(by_alias=True, exclude_none=True)
    grown["databases"].append({"name": "c2-new", "database": "new", "secretName": "cluster2-app"})
    after = {t.name: t.schedule for t in backup_targets(Config.model_validate(grown))}
    moved = {name for name in before if before[name] != after[name]}
    assert moved and all(name.startswith("c2-") for name in moved)


def test_h_fields_take_values_of_their_range() -> None:
    members = [Member("H H(1-4) * * H", 0, f"cluster{c}", f"db{d}") for c in range(30) for d in range(4)]
    for schedule in spread(members):
        minute, hour, dom, month, dow = schedule.split()
        assert 0 <= int(minute) <= 59 and 1 <= int(hour) <= 4 and 0 <= int(dow) <= 6
        assert (dom, month) == ("*", "*")
        assert schedule_problem(schedule) is None


def test_h_step_keeps_the_step_and_spreads_the_start() -> None:
    schedules = spread([Member("H/15 * * * *", 0, "pg-rw", f"db{d}") for d in range(15)])
    assert len(set(schedules)) == 15  # 15 databases of one cluster: every start minute 0-14 once
    for schedule in schedules:
        start = int(schedule.split("-")[0])
        assert schedule == f"{start}-59/15 * * * *"
        assert _expand(schedule.split()[0], 0, 59, {}) == {start, start + 15, start + 30, start + 45}
        assert shortest_interval_seconds(schedule) == 15 * 60


def test_h_day_of_month_stays_within_28() -> None:
    schedules = spread([Member("0 3 H * *", 0, f"c{c}", "db") for c in range(200)])
    assert {int(s.split()[2]) for s in schedules} <= set(range(1, 29))


def test_a_plain_schedule_without_window_is_left_as_written() -> None:
    targets = backup_targets(_fleet(2, 3))
    assert [t.schedule for t in targets] == ["0 2 * * *"] * 6
    assert [t.drill_schedule for t in targets] == ["0 5 * * 0"] * 6


def test_window_carries_into_the_hours_and_past_midnight() -> None:
    schedules = spread([Member("30 23 * * *", 120, "pg", f"db{d}") for d in range(120)])
    assert sorted(map(_start_minute, schedules)) == sorted((23 * 60 + 30 + i) % 1440 for i in range(120))
    hourly = spread([Member("0 */6 * * *", 360, "pg", f"db{d}") for d in range(360)])
    assert "0 1,7,13,19 * * *" in hourly and "59 5,11,17,23 * * *" in hourly
    assert {shortest_interval_seconds(s) for s in hourly} == {6 * 3600}


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("H,5 2 * * *", "(minute: 'H,5' is not one of H, H(a-b), H/n or H(a-b)/n)"),
        ("H(5-2) 2 * * *", "(minute: 'H(5-2)': the range must lie within 0-59 and not run backwards)"),
        ("0 H(0-24) * * *", "(hour: 'H(0-24)': the range must lie within 0-23 and not run backwards)"),
        ("H/0 2 * * *", "(minute: 'H/0': the step must be between 1 and 60)"),
        ("H(0-9)/11 2 * * *", "(minute: 'H(0-9)/11': the step must be between 1 and 10)"),
        ("H 2 * *", "(expected 5 fields: minute hour day-of-month month day-of-week (no @macro with H))"),
        ("H 2 * * mon-fry", "(day-of-week: 'fry' is not a number or a name)"),
        ("Hx 2 * * *", "(minute: 'Hx' is not one of H, H(a-b), H/n or H(a-b)/n)"),
    ],
)
def test_h_syntax_errors_are_one_line_naming_the_field(schedule: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config.model_validate(values({"backup": {"schedule": schedule}}))
    text = str(err.value)
    assert text == f"config error: backup.schedule: not a valid cron expression '{schedule}' {message}"
    assert "\n" not in text


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"backup": {"window": "2 hours"}}, "backup.window: '2 hours' is not a duration (e.g. 2h, 90m, 1h30m)"),
        ({"backup": {"window": "25h"}}, "backup.window: '25h' must be between 1m and 24h"),
        ({"verify": {"window": "0m"}}, "verify.window: '0m' must be between 1m and 24h"),
        (
            {"backup": {"window": "2h", "schedule": "H 2 * * *"}},
            "backup.schedule: with backup.window 2h, 'H 2 * * *' uses H while a window is set; use one or the other",
        ),
        (
            {"backup": {"window": "2h", "schedule": "*/5 * * * *"}},
            "backup.schedule: with backup.window 2h, '*/5 * * * *' has no single start minute to spread a window "
            "from (e.g. 0 2 * * *); or spread it with H instead (e.g. H/15 * * * *)",
        ),
        (
            {"backup": {"window": "90m", "schedule": "@hourly"}},
            "backup.schedule: with backup.window 90m, '@hourly' runs every 60 min, less than the window's 90 min; "
            "shorten the window",
        ),
        (
            {"backup": {"window": "3h", "schedule": "0 22 * * 1-5"}},
            "backup.schedule: with backup.window 3h, '0 22 * * 1-5' plus the window reaches past midnight into "
            "days the schedule does not name; start earlier or shorten the window",
        ),
        (
            {"verify": {"window": "1h", "schedule": "H 5 * * 0"}},
            "verify.schedule: with verify.window 1h, 'H 5 * * 0' uses H while a window is set; use one or the other",
        ),
    ],
)
def test_window_errors_name_the_field(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config.model_validate(values(sections))
    assert str(err.value) == f"config error: {message}"


def test_a_databases_own_schedule_is_checked_against_the_window() -> None:
    with pytest.raises(ConfigError) as err:
        Config.model_validate(
            {
                **BUCKET,
                "backup": {"window": "2h"},
                "databases": [
                    {"name": "a", "database": "a", "secretName": "x-app", "schedule": "*/10 * * * *"},
                    {"name": "b", "database": "b", "secretName": "x-app", "schedule": "H/10 * * * *"},
                ],
            }
        )
    assert str(err.value).startswith("config error: databases[0].schedule: with backup.window 2h, '*/10 * * * *'")
    assert "databases[1]" not in str(err.value)  # its own H spreads it


def test_the_manifests_deadlines_and_alerts_use_the_spread_schedule(tmp_path: Path) -> None:
    out = render(values(FLEET), tmp_path)
    cronjobs = {d["metadata"]["name"]: d["spec"] for d in out.kind("CronJob")}
    targets = {t.name: t for t in backup_targets(Config.model_validate(values(FLEET)))}
    rule = out.one("PrometheusRule")
    groups = {g["name"]: g for g in rule["spec"]["groups"]}
    assert len(cronjobs) == 10
    for name, target in targets.items():
        backup = next(spec for n, spec in cronjobs.items() if n.endswith(f"-{name}"))
        drill = cronjobs[next(n for n in cronjobs if n.endswith(f"-{name}-drill"))]
        assert backup["schedule"] == target.schedule and "H" not in target.schedule
        assert drill["schedule"] == target.drill_schedule and "H" not in target.drill_schedule
        deadline = backup["jobTemplate"]["spec"]["activeDeadlineSeconds"]
        assert deadline == max(600, shortest_interval_seconds(target.schedule) * 9 // 10)
        group = next(g for n, g in groups.items() if n.endswith(f"-{name}"))
        missing = next(r for r in group["rules"] if r.get("alert") == "CnpgBackupMissing")
        assert str(round(longest_interval_seconds(target.schedule) * 1.5)) in missing["expr"]
        assert f"`{target.schedule}`" in missing["annotations"]["description"]
    assert cronjobs[next(n for n in cronjobs if n.endswith("-audit"))]["schedule"].endswith("-59/15 * * * *")


def test_the_prefix_overlap_check_finds_the_same_pairs_as_comparing_all() -> None:
    import random

    from app.rules import _overlapping_prefixes, _prefixes_overlap

    rng = random.Random(17)
    parts = ["a", "b", "a-b", "a.b", "ab"]
    for _ in range(2000):
        n = rng.randint(1, 8)
        prefixes = ["/".join(rng.choices(parts, k=rng.randint(1, 3))) + rng.choice(["", "", "/"]) for _ in range(n)]
        if rng.random() < 0.05:
            prefixes[0] = ""
        pairwise = [(i, j) for i in range(n) for j in range(i) if _prefixes_overlap(prefixes[i], prefixes[j])]
        assert _overlapping_prefixes(prefixes) == pairwise, prefixes


def test_synth_skips_the_jsii_type_checks_only_while_it_builds(tmp_path: Path) -> None:
    """The chart is built without jsii's runtime type checks (app/constructs/plain.py); afterwards
    they are back, so the constructs' own tests still get them."""
    from imports import k8s

    render(values(FLEET), tmp_path)
    with pytest.raises(TypeError):
        k8s.EnvVar(name=42)  # type: ignore[arg-type]
