"""`python -m app job list|status|check|restore`: one-off Jobs printed without Node.js, the same
Job spec as the cdk8s construct, the backups' identity and credentials; and what synth prints."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cdk8s
import pytest
import yaml

from app import cli, jobs, naming, oneoff
from app.constructs.restore import RestoreJob
from app.k8s_json import sorted_json
from app.pod_props import s3_credentials
from app.targets import backup_targets, restore_target
from app.values import config_from_values
from testsupport.app_helpers import (
    DRILL_VARIANTS,
    REPO,
    TWO_CLUSTERS,
    VARIANTS,
    pod_specs,
    render,
    restricted_violations,
    validate_strict,
    values,
)

EXAMPLE = REPO / "examples/values.yaml"
WHEN = datetime(2024, 1, 21, 2, 30, 5, tzinfo=UTC)
ALL_VARIANTS = {**VARIANTS, **DRILL_VARIANTS}
# Runs the CLI with cdk8s, jsii and the generated k8s module made unimportable, and (below) with no
# `node` on PATH: the one-off Jobs must need neither.
NO_JSII = (
    "import sys\n"
    "for name in ('jsii', 'cdk8s', 'constructs', 'imports.k8s'):\n"
    "    sys.modules[name] = None  # import raises ImportError\n"
    "from app import cli\n"
    "raise SystemExit(cli.main(sys.argv[1:]))\n"
)


def _run_without_node(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "bin-without-node"
    empty.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", NO_JSII, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": str(empty), "HOME": str(tmp_path), "PYTHONPATH": str(REPO)},
        timeout=120,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["job", "list"],
        ["job", "status", "--json"],
        ["job", "check", "--max-age", "26h"],
        ["job", "restore", "--object", "latest"],
        ["restore-job", "--object", "appdb_2024-01-21_02-00-00.sql.gz"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_job_commands_need_no_node_and_no_cdk8s(tmp_path: Path, argv: list[str]) -> None:
    result = _run_without_node(tmp_path, *argv, "-f", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    job = yaml.safe_load(result.stdout)
    validate_strict(job)
    name = job["metadata"]["name"]
    assert result.stderr.strip().splitlines()[-1] == f"# job {name}: follow it with: kubectl logs job/{name} -f"
    [container] = pod_specs(job)[0]["containers"]
    assert container["args"][0] == ("restore" if "restore" in " ".join(argv) else argv[1])


def test_synth_without_node_is_one_line_naming_the_way_out(tmp_path: Path) -> None:
    # also proves the environment above really lacks node: synth cannot run in it
    result = _run_without_node(tmp_path, "synth", "-f", str(EXAMPLE), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "Node.js" in result.stderr and "python -m app job" in result.stderr
    assert not (tmp_path / "out").exists()


def _construct_job(doc_props: jobs.RestoreJobProps) -> dict[str, Any]:
    chart = cdk8s.Chart(cdk8s.Testing.app(), "test")
    RestoreJob(chart, "restore", props=doc_props)
    [doc] = cdk8s.Testing.synth(chart)
    return dict(doc)


@pytest.mark.parametrize("variant", sorted(ALL_VARIANTS))
def test_restore_job_without_cdk8s_equals_the_construct(variant: str) -> None:
    """The printed restore Job and the cdk8s RestoreJob are the same object, for every variant."""
    vals = ALL_VARIANTS[variant]
    restore: dict[str, Any] = {"object": "latest", "jobs": 2}
    if len(vals.get("databases") or []) > 1:
        restore["database"] = vals["databases"][-1]["name"]
    cfg = config_from_values(values(vals, {"restore": restore}))
    target = restore_target(cfg)
    props = oneoff.restore_job_props(cfg, target, "restore-x", s3_credentials(cfg))
    assert sorted_json(jobs.restore_job(props)) == _construct_job(props)
    assert yaml.safe_load(jobs.to_yaml(jobs.restore_job(props))) == _construct_job(props)


def test_printed_restore_job_is_dist_restore_job_but_for_the_name(tmp_path: Path) -> None:
    vals = values(TWO_CLUSTERS, {"restore": {"object": "latest", "database": "billing", "force": True}})
    dist_job = render(vals, tmp_path).one("Job")
    printed = yaml.safe_load(oneoff.restore_yaml(config_from_values(vals), WHEN, warn=lambda _: None))
    name = printed["metadata"]["name"]
    assert name == "cnpg-backup-cnpg-pgdump-backup-restore-20240121-023005"
    text = yaml.safe_dump(printed).replace(name, dist_job["metadata"]["name"])
    assert yaml.safe_load(text) == dist_job


def _without_postgres(cron_pod: dict[str, Any]) -> dict[str, Any]:
    """The backup CronJob's pod as an operation pod would be: no init container waiting for the
    database, no connection settings (PGDATABASE only), no heartbeat/webhook."""
    pod = dict(cron_pod)
    pod.pop("initContainers", None)
    [container] = pod["containers"]
    container = dict(container)
    container["env"] = [
        e
        for e in container["env"]
        if e["name"] == "PGDATABASE"
        or not (
            e["name"].startswith("PG") or "HEARTBEAT" in e["name"] or "WEBHOOK" in e["name"] or "NOTIFY" in e["name"]
        )
    ]
    # scratch space and the S3 endpoint's CA (s3.caSecret) stay: every operation talks to S3
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] in ("tmp", "s3-ca")]
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] in ("tmp", "s3-ca")]
    pod["containers"] = [container]
    return pod


@pytest.mark.parametrize(
    "variant", ["defaults", "tls_ca_secret", "managed_s3_secret", "notifications", "irsa_no_secret"]
)
@pytest.mark.parametrize("operation", oneoff.OPERATIONS)
def test_operation_jobs_run_as_the_backup_pod_minus_the_database(tmp_path: Path, variant: str, operation: str) -> None:
    """Same ServiceAccount, image, security context, S3 settings and Secret as the CronJob: no new
    credentials; and nothing that needs the database."""
    vals = ALL_VARIANTS[variant]
    cfg = config_from_values(vals)
    cron = render(vals, tmp_path).kind("CronJob")[0]
    [target] = [t for t in backup_targets(cfg) if naming.cronjob_name(cfg, t) == cron["metadata"]["name"]]
    job = yaml.safe_load(oneoff.operation_yaml(cfg, operation, ["--json"], WHEN, target))
    validate_strict(job)
    [pod] = pod_specs(job)
    assert restricted_violations(pod) == []
    [container] = pod["containers"]
    assert (container["name"], container["args"]) == (operation, [operation, "--json"])
    expected = _without_postgres(pod_specs(cron)[0])
    expected["containers"][0] |= {"name": operation, "args": [operation, "--json"]}
    assert pod == expected
    assert not any(e["name"] in ("PGHOST", "PGPASSWORD", "PGUSER") for e in container["env"])
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["ttlSecondsAfterFinished"], spec["activeDeadlineSeconds"]) == (0, 86400, 600)
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == operation


def _cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "utc_now", lambda: WHEN)
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _values_file(tmp_path: Path, vals: dict[str, Any]) -> str:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(vals))
    return str(path)


def test_check_job_max_age_defaults_to_the_missing_alert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = _values_file(tmp_path, values({"backup": {"schedule": "0 2 * * *"}}))
    code, out, err = _cli(capsys, monkeypatch, "job", "check", "-f", f)
    assert code == 0, err
    job = yaml.safe_load(out)
    # daily schedule, default slack 1.5: the CnpgBackupMissing threshold
    assert pod_specs(job)[0]["containers"][0]["args"] == ["check", "--max-age", "129600s"]
    assert job["metadata"]["name"] == "cnpg-backup-cnpg-pgdump-backup-check-20240121-023005"
    code, out, _ = _cli(capsys, monkeypatch, "job", "check", "-f", f, "--max-age", "3h", "--min-bytes", "1000")
    assert pod_specs(yaml.safe_load(out))[0]["containers"][0]["args"] == [
        "check",
        "--max-age",
        "3h",
        "--min-bytes",
        "1000",
    ]


def test_several_databases_need_database_and_name_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = _values_file(tmp_path, values(TWO_CLUSTERS))
    code, out, err = _cli(capsys, monkeypatch, "job", "list", "-f", f)
    assert (code, out) == (2, "")
    assert err == "config error: --database: required with several databases: one of orders, billing\n"
    code, out, err = _cli(capsys, monkeypatch, "job", "list", "-f", f, "--database", "nope")
    assert (code, out) == (2, "")
    assert err == "config error: --database: 'nope' is not a databases[].name; known: orders, billing\n"
    code, out, err = _cli(capsys, monkeypatch, "job", "list", "-f", f, "--database", "billing")
    assert code == 0, err
    job = yaml.safe_load(out)
    assert job["metadata"]["name"] == "cnpg-backup-cnpg-pgdump-backup-billing-list-20240121-023005"
    env = {e["name"]: e.get("value") for e in pod_specs(job)[0]["containers"][0]["env"]}
    assert (env["PGDATABASE"], env["CNPG_BACKUP_S3_PREFIX"]) == ("billing", "appdb/billing")


def test_long_names_stay_valid_and_keep_the_database(tmp_path: Path) -> None:
    cfg = config_from_values(values(TWO_CLUSTERS, {"global": {"fullnameOverride": "x" * 70}}))
    for target in backup_targets(cfg):
        job = yaml.safe_load(oneoff.operation_yaml(cfg, "status", [], WHEN, target))
        name = job["metadata"]["name"]
        assert len(name) <= 63 and name.endswith(f"-{target.name}-status-20240121-023005")
        validate_strict(job)


def test_synth_prints_adhoc_and_log_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vals = values(
        TWO_CLUSTERS,
        {
            "global": {"fullnameOverride": "f" * 60},
            "verify": {"enabled": True},
            "restore": {"object": "latest", "database": "orders"},
        },
        {"monitoring": {"prometheusRule": {"namespace": "databases"}}},
    )
    code, out, err = _cli(capsys, monkeypatch, "synth", "-f", _values_file(tmp_path, vals), "-o", str(tmp_path / "o"))
    assert code == 0, err
    lines = out.splitlines()
    rendered = render(vals, tmp_path / "r")
    crons = [d["metadata"]["name"] for d in rendered.kind("CronJob")]
    [job] = [d["metadata"]["name"] for d in rendered.kind("Job")]
    assert len(crons) == 4  # two backups, two drills
    for cron in crons:
        [line] = [ln for ln in lines if ln.startswith(f"CronJob {cron}:")]
        command = line.split(": run it now: ")[1]
        prefix = f"kubectl -n databases create job --from=cronjob/{cron} "
        assert command.startswith(prefix) and command.endswith("-manual-$(date +%s)")
        manual = command[len(prefix) :].replace("$(date +%s)", "1769999999")
        assert len(manual) <= 63 and not manual.startswith("-")
    assert f"Job {job}: follow it: kubectl -n databases logs job/{job} -f" in lines


def test_job_restore_is_restore_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = _values_file(tmp_path, values({"restore": {"force": True}}))
    args = ["-f", f, "--object", "latest", "--target-database", "scratch", "--create"]
    code1, out1, _ = _cli(capsys, monkeypatch, "restore-job", *args)
    code2, out2, _ = _cli(capsys, monkeypatch, "job", "restore", *args)
    assert (code1, code2) == (0, 0) and out1 == out2
    assert pod_specs(yaml.safe_load(out1))[0]["containers"][0]["args"][5:] == [
        "--create",
        "--target-database",
        "scratch",
    ]


def test_job_help_lists_the_operations() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "job", "--help"], cwd=REPO, capture_output=True, text=True, env=dict(os.environ)
    )
    assert result.returncode == 0
    for operation in ("list", "status", "check", "restore"):
        assert operation in result.stdout
