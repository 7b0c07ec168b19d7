"""app/yaml_text.py writes the fleet's CronJobs as cdk8s would: byte for byte, or not at all.

The reference is cdk8s's own `Yaml.stringify` (the `yaml` package in the jsii kernel) on the same
value; `synth` (app/chart.write) must give the same files as the construct placed in a chart that
cdk8s writes alone, including when a value sends every CronJob back to cdk8s.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from cdk8s import App, Yaml

from app.chart import CHART_NAME, OUTPUT_SUFFIX, BackupChart, write
from app.constructs.plain import without_runtime_type_checks
from app.values import config_from_values
from app.yaml_text import NotPlain, document
from testsupport.app_helpers import values

# Every rule of the package's plain/quoted decision, on both sides of it.
SCALARS = [
    "",
    "a",
    "0",
    "00",
    "007",
    "08",
    "09",
    "0.1.0",
    "1.0",
    ".5",
    "5.",
    "1e3",
    "1E+3",
    "-1",
    "+1",
    "0x1F",
    "0xg",
    "0b101",
    "0b2",
    "0o7",
    "1_000",
    "_1",
    "1:20",
    "1:60",
    "1:20:30",
    "1:20.5",
    "190:20:30.15",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10",
    "2001-12-14T21:59:43Z",
    "2001-1-1",
    "01-12-14",
    "y",
    "Y",
    "yes",
    "Yes",
    "YES",
    "yEs",
    "n",
    "No",
    "NO",
    "on",
    "On",
    "ON",
    "oN",
    "off",
    "OFF",
    "true",
    "True",
    "TRUE",
    "tRue",
    "false",
    "null",
    "Null",
    "NULL",
    "nUll",
    "~",
    "~a",
    "<<",
    ".inf",
    "-.Inf",
    "+.INF",
    ".nan",
    ".NaN",
    ".NAN",
    ".Nan",
    "a b",
    " a",
    "a ",
    "a:",
    "a: b",
    "a:b",
    "a #b",
    "a#b",
    "#a",
    "-",
    "-a",
    "- a",
    "--",
    "?",
    "?a",
    "? a",
    ":",
    ":a",
    "&a",
    "*a",
    "!a",
    "|",
    ">",
    "'a",
    '"a',
    "%a",
    "@a",
    "`a",
    ",a",
    "[a",
    "]a",
    "{a",
    "}a",
    "a,b",
    "a[b]",
    "a{b}",
    "it's",
    'say "hi"',
    'it\'s "x"',
    "back\\slash",
    "--a",
    "a---",
    "a...",
    "http://x:80/y",
    "key=value",
    "$(date +%s)",
    "100m",
    "1Gi",
    "0 2 * * *",
    "H H(4-6) * * 0",
    "*/5 * * * *",
    "a:\\b",
    "a'b\"c",
    "x" * 300,
]


def _reference(value: Any) -> str:
    return str(Yaml.stringify(value))


def _compare(doc: dict[str, Any]) -> bool:
    """True when document() wrote `doc` (and wrote it as cdk8s does); False when it left it to cdk8s."""
    try:
        mine = document(doc)
    except NotPlain:
        return False
    assert mine == _reference(doc), doc
    return True


@pytest.mark.parametrize("scalar", SCALARS)
def test_a_scalar_is_written_as_cdk8s_writes_it_as_value_key_and_item(scalar: str) -> None:
    assert _compare({"k": scalar}) and _compare({"l": [scalar, 1]}), f"{scalar!r} was left to cdk8s"
    # as a key too, unless JavaScript would list it first (an array index)
    assert _compare({scalar or "e": "v"}) or scalar in ("0", "00", "007", "08", "09") and scalar == str(int(scalar))


def test_random_scalars_from_the_characters_that_decide_quoting() -> None:
    rng = random.Random(20261202)
    alphabet = "ab0179-.:_ #'\"eEx+~<,?*&!|%@"
    written = 0
    for _ in range(1500):
        scalar = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7)))
        written += _compare({"k": scalar, scalar: [scalar]})
    # left to cdk8s: document markers ("---", "...") and keys that are array indices ("0", "17")
    assert written > 1300


def test_collections_nest_as_cdk8s_nests_them() -> None:
    for doc in (
        {"a": {}, "b": [], "c": [{}], "d": [[]], "e": True, "f": False, "g": -5, "h": 2**52},
        {"a": [{"b": 1, "c": [1, {"d": True, "e": {"f": [{"g": "h"}, "i"]}}]}], "z": {"y": {"x": [{"w": "v"}]}}},
        {"spec": {"containers": [{"args": ["backup", "--x"], "env": [{"name": "A", "value": "0"}]}]}},
    ):
        assert _compare(doc), doc


@pytest.mark.parametrize(
    "doc",
    [
        {"k": "two\nlines"},
        {"k": "tab\there"},
        {"k": "Zoë"},
        {"k": 1.5},
        {"k": None},
        {"k": [None]},
        {"k": [["nested"]]},
        {"k": 2**53},
        {"k": "---"},
        {"k": "...x"},
        {"x" * 1001: "long key"},
        {"b": 1, "10": 2},  # JavaScript lists "10" first
        {},
    ],
)
def test_what_it_is_not_sure_of_is_left_to_cdk8s(doc: dict[str, Any]) -> None:
    with pytest.raises(NotPlain):
        document(doc)


def _by_cdk8s_alone(vals: dict[str, Any], outdir: Path) -> str:
    application = App(outdir=str(outdir), output_file_extension=OUTPUT_SUFFIX)
    with without_runtime_type_checks():
        chart = BackupChart(application, CHART_NAME, cfg=config_from_values(vals))
    assert chart.backup.rendered == []
    application.synth()
    return (outdir / f"{CHART_NAME}{OUTPUT_SUFFIX}").read_text()


FLEET = {
    "global": {"namespace": "shop"},
    "cnpg": {"secretName": "", "database": ""},
    "s3": {"bucket": "fleet", "accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "not-a-real-secret"},
    "databases": [
        {"name": f"c{i // 3}-db{i % 3}", "database": f"db{i % 3}", "secretName": f"cluster{i // 3}-app"}
        for i in range(7)
    ],
    "backup": {"window": "2h", "timeZone": "Europe/Paris", "nodeSelector": {"disk": "ssd"}},
    "verify": {"enabled": True},
    "monitoring": {
        "pushgateway": {"url": "http://pushgateway:9091"},
        "prometheusRule": {"enabled": True},
        "annotations": {"example.com/owner": "team: storage # on call", "example.com/quoted": "0755"},
    },
    "restore": {"object": "latest", "database": "c0-db1"},
}


@pytest.mark.parametrize(
    ("name", "overrides", "rendered"),
    [
        ("example", {}, True),
        ("fleet", FLEET, True),
        ("no service account", {**FLEET, "serviceAccount": {"create": False}}, True),
        # nothing but the CronJobs: cdk8s itself writes no document
        ("CronJobs alone", {"serviceAccount": {"create": False}}, True),
        # one value this module does not write: cdk8s writes every CronJob, in the same order
        (
            "multi-line annotation",
            {**FLEET, "monitoring": {**FLEET["monitoring"], "annotations": {"a": "Zoë\nx"}}},
            False,
        ),
    ],
)
def test_synth_writes_what_cdk8s_alone_writes(
    tmp_path: Path, name: str, overrides: dict[str, Any], rendered: bool
) -> None:
    vals = values(overrides)
    written = write(config_from_values(vals), tmp_path / "fast", warn=lambda _: None)
    assert written.files == [tmp_path / "fast" / f"{CHART_NAME}{OUTPUT_SUFFIX}"]
    assert written.files[0].read_text() == _by_cdk8s_alone(vals, tmp_path / "cdk8s"), name
    cron_jobs = [name for kind, name in written.workloads if kind == "CronJob"]
    assert cron_jobs and written.files[0].read_text().count("\nkind: CronJob\n") == len(cron_jobs)
    # whether the fast path ran is part of what is tested, not only that the files match
    assert (_rendered_count(vals) > 0) is rendered


def _rendered_count(vals: dict[str, Any]) -> int:
    with without_runtime_type_checks():
        chart = BackupChart(App(), CHART_NAME, cfg=config_from_values(vals), render_cron_jobs=True)
    return len(chart.backup.rendered)
