"""The two entry points (python -m app, cdk8s synth) and the committed dist/."""

from __future__ import annotations

import base64
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import cli
from app.chart import synth
from app.values import load_values
from testsupport.app_helpers import CDK8S_INSTALL_HINT, JSII_ENV, REPO, cdk8s_cli, render, values

EXAMPLE = REPO / "examples/values.yaml"
SYNTH_COMMAND = ".venv/bin/python -m app synth -f examples/values.yaml"


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.k8s.yaml"))}


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **JSII_ENV, **(env or {})},
        timeout=120,
    )


def test_committed_dist_is_fresh(tmp_path: Path) -> None:
    synth(load_values(EXAMPLE), tmp_path, warn=lambda _: None)
    committed = _files(REPO / "dist")
    assert committed, f"dist/ has no manifests; run: {SYNTH_COMMAND}"
    assert _files(tmp_path) == committed, f"dist/ is stale: run `{SYNTH_COMMAND}` and commit dist/"


def test_python_config_synthesizes_identically(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("example_config", REPO / "examples/config.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.config == load_values(EXAMPLE)
    synth(module.config, tmp_path / "py", warn=lambda _: None)
    synth(load_values(EXAMPLE), tmp_path / "yaml", warn=lambda _: None)
    assert _files(tmp_path / "py") == _files(tmp_path / "yaml")


def test_cdk8s_synth_matches_python_entry_point(tmp_path: Path) -> None:
    binary = cdk8s_cli()
    if binary is None:
        pytest.fail(f"cdk8s-cli not found: {CDK8S_INSTALL_HINT}", pytrace=False)
    out = tmp_path / "cdk8s-out"
    result = subprocess.run(
        [str(binary), "synth", "--no-check-upgrade", "--output", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **JSII_ENV, "CNPG_BACKUP_VALUES": str(EXAMPLE)},
    )
    assert result.returncode == 0, result.stderr
    assert "JSII" not in result.stderr and "!!!!" not in result.stderr + result.stdout
    python_out = tmp_path / "python-out"
    assert _run("synth", "-f", str(EXAMPLE), "-o", str(python_out)).returncode == 0
    assert _files(out) == _files(python_out) == _files(REPO / "dist")


def test_cli_synth_writes_lists_and_cleans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "old-chart.k8s.yaml"
    stale.write_text("kind: Stale\n")
    keep = tmp_path / "README.txt"
    keep.write_text("not ours")
    code = cli.main(["synth", "-f", str(EXAMPLE), "--set", "backup.schedule=0 3 * * *", "-o", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    # the files written, then each CronJob/Job with the command an operator runs next
    assert out.splitlines() == [
        str(tmp_path / "cnpg-pgdump-backup.k8s.yaml"),
        "CronJob cnpg-backup-cnpg-pgdump-backup: run it now: kubectl create job "
        "--from=cronjob/cnpg-backup-cnpg-pgdump-backup cnpg-backup-cnpg-pgdump-backup-manual-$(date +%s)",
    ]
    assert not stale.exists() and keep.exists()
    assert "schedule: 0 3 * * *" in (tmp_path / "cnpg-pgdump-backup.k8s.yaml").read_text()


def test_cli_multiple_files_and_set_string(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = tmp_path / "prod.yaml"
    extra.write_text("global:\n  releaseName: prod\n")
    code = cli.main(
        [
            "synth",
            "-f",
            str(EXAMPLE),
            "-f",
            str(extra),
            "--set-string",
            "cnpg.database=007",
            "-o",
            str(tmp_path / "o"),
        ]
    )
    capsys.readouterr()
    assert code == 0
    text = (tmp_path / "o/cnpg-pgdump-backup.k8s.yaml").read_text()
    assert "name: prod-cnpg-pgdump-backup" in text and 'value: "007"' in text


BAD_CASES = [
    ("bad-yaml", "backup:\n  schedule: [\n", [], "invalid YAML"),
    (
        "unknown-key",
        "backup:\n  schedul: '0 2 * * *'\n",
        [],
        "config error: backup.schedul: unknown key (did you mean 'schedule'?)",
    ),
    ("bad-set", "", ["--set", "a..b=1"], "config error: --set 'a..b': malformed key"),
    ("bad-set-no-eq", "", ["--set", "foo"], "config error: --set: the argument has no '=' (expected KEY=VALUE"),
    (
        "bad-value",
        "",
        ["--set", "backup.schedule=61 * * * *"],
        "config error: backup.schedule: not a valid cron expression",
    ),
]


@pytest.mark.parametrize(("text", "extra", "expected"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_cli_errors_exit_2_one_line_no_traceback(tmp_path: Path, text: str, extra: list[str], expected: str) -> None:
    vals = tmp_path / "values.yaml"
    vals.write_text(text or EXAMPLE.read_text())
    result = _run("synth", "-f", str(vals), *extra, "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["synth", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unrecognized arguments: --bogus" in err


def test_cli_secret_never_printed(tmp_path: Path) -> None:
    vals = tmp_path / "values.yaml"
    vals.write_text(EXAMPLE.read_text())
    secret = "Sup3rS3cretAccessKeyValue"
    ok = _run(
        "synth",
        "-f",
        str(vals),
        "--set",
        "s3.useExistingSecret=false,s3.secretName=",
        "--set",
        f"s3.accessKeyId=AKIAEXAMPLE,s3.secretAccessKey={secret}",
        "-o",
        str(tmp_path / "out"),
    )
    assert ok.returncode == 0, ok.stderr
    assert "warning: s3.accessKeyId/s3.secretAccessKey are literal credentials" in ok.stderr
    assert secret not in ok.stderr + ok.stdout
    text = (tmp_path / "out/cnpg-pgdump-backup.k8s.yaml").read_text()
    # only inside the Secret's data (base64: `stringData` would make every `kubectl apply` a change)
    assert secret not in text and text.count(base64.b64encode(secret.encode()).decode()) == 1
    bad = _run("synth", "-f", str(vals), "--set", f"s3.secretAccessKey={secret}", "-o", str(tmp_path / "out2"))
    assert bad.returncode == 2 and secret not in bad.stderr + bad.stdout


def test_main_py_reads_values_from_env(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "main.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **JSII_ENV, "CNPG_BACKUP_VALUES": str(EXAMPLE), "CDK8S_OUTDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "!!!" not in result.stderr, "the jsii Node.js banner leaked (app/__init__.py silences it)"
    assert _files(tmp_path) == _files(REPO / "dist")
    bad = tmp_path / "bad.yaml"
    bad.write_text("bakup: {}\n")
    result = subprocess.run(
        [sys.executable, "main.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **JSII_ENV, "CNPG_BACKUP_VALUES": str(bad), "CDK8S_OUTDIR": str(tmp_path)},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and "bakup: unknown key" in result.stderr


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    a = render(values({"restore": {"object": "latest"}}), tmp_path / "a").text
    b = render(values({"restore": {"object": "latest"}}), tmp_path / "b").text
    assert a == b
