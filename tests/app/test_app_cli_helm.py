"""The Helm habits of the command line: a positional release name, -n/--namespace, --set-json and
--set-file (Helm's order and meaning), the uninstall command's input checks, and the README's
install command (the one tests/kube runs)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import cli
from app.applyset import apply_command, applyset_id, parent_name
from testsupport.app_helpers import REPO

EXAMPLE = REPO / "examples/values.yaml"


def _synth(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[list[dict[str, Any]], str]:
    outdir = tmp_path / "out"
    code = cli.main(["synth", *args, "-o", str(outdir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    docs = [d for p in sorted(outdir.glob("*.k8s.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    assert docs
    return docs, err


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return code, err


def _cronjob(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "CronJob")


def test_release_and_namespace_like_helm_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain, plain_err = _synth(tmp_path / "plain", capsys, "-f", str(EXAMPLE))
    assert all("namespace" not in d["metadata"] for d in plain)
    assert "cnpg-pgdump-backup.cnpg-backup -f" in plain_err and "-n <namespace>" in plain_err

    docs, err = _synth(tmp_path / "helm", capsys, "myrel", "-f", str(EXAMPLE), "-n", "backups")
    assert {d["metadata"]["namespace"] for d in docs} == {"backups"}
    assert {d["metadata"]["labels"]["app.kubernetes.io/instance"] for d in docs} == {"myrel"}
    assert _cronjob(docs)["metadata"]["name"] == "myrel-cnpg-pgdump-backup"
    # synth prints the exact install/upgrade command for what it wrote
    assert apply_command("myrel", "backups", str(tmp_path / "helm/out")) in err

    # the same as the values keys they set; the command line wins over the files
    values_file = tmp_path / "v.yaml"
    values_file.write_text(EXAMPLE.read_text() + "global:\n  releaseName: fromfile\n  namespace: other\n")
    same, _ = _synth(tmp_path / "keys", capsys, "myrel", "--namespace", "backups", "-f", str(values_file))
    assert same == docs


def test_restore_job_takes_release_and_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["restore-job", "myrel", "-n", "backups", "-f", str(EXAMPLE), "--object", "latest"])
    out, err = capsys.readouterr()
    assert code == 0, err
    job = yaml.safe_load(out)
    assert job["metadata"]["namespace"] == "backups"
    assert job["metadata"]["name"].startswith("myrel-cnpg-pgdump-backup-restore-")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "myrel-cnpg-pgdump-backup"


def test_set_json_sets_structures_and_set_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs, _ = _synth(
        tmp_path,
        capsys,
        "-f",
        str(EXAMPLE),
        "--set-json",
        'backup.imagePullSecrets=[{"name":"regcred"}],backup.nodeSelector={"a.io/x":"1","b":"2"}',
        # Helm applies --set-json before --set: --set decides a key both give
        "--set-json",
        'backup.schedule="0 4 * * *"',
        "--set",
        "backup.schedule=0 5 * * *",
    )
    cronjob = _cronjob(docs)
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["spec"]["nodeSelector"] == {"a.io/x": "1", "b": "2"}  # a comma inside JSON is not a separator
    assert cronjob["spec"]["schedule"] == "0 5 * * *"


def test_set_file_reads_the_value_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "Fil3S3cretAccessKey"
    key = tmp_path / "key"
    key.write_text(secret)
    schedule = tmp_path / "schedule"
    schedule.write_text("15 1 * * *")
    docs, err = _synth(
        tmp_path,
        capsys,
        "-f",
        str(EXAMPLE),
        "--set",
        "s3.useExistingSecret=false,s3.secretName=,s3.accessKeyId=AKIAEXAMPLE",
        "--set-file",
        f"s3.secretAccessKey={key},backup.schedule={schedule}",
    )
    assert _cronjob(docs)["spec"]["schedule"] == "15 1 * * *"
    assert secret not in err
    (stored,) = [d for d in docs if d["kind"] == "Secret"]
    import base64

    assert base64.b64decode(next(iter(v for k, v in stored["data"].items() if "SECRET" in k.upper()))).decode() == (
        secret
    )


ERRORS = [
    ("json-no-eq", ["--set-json", "backup.schedule"], "config error: --set-json: pair 1 has no '='"),
    (
        "json-invalid",
        ["--set-json", "backup.imagePullSecrets=[{name:x}]"],
        "--set-json 'backup.imagePullSecrets': invalid JSON",
    ),
    ("json-trailing", ["--set-json", "backup.suspend=true false"], "unexpected text after the JSON value"),
    (
        "file-missing",
        ["--set-file", "s3.secretAccessKey=/nonexistent/key"],
        "--set-file 's3.secretAccessKey': file /nonexistent/key not found",
    ),
    ("file-no-path", ["--set-file", "s3.secretAccessKey"], "--set-file: pair 1 has no '=PATH'"),
    ("bad-release", ["Not_A_Name"], "config error: global.releaseName"),
    ("bad-namespace", ["-n", "Bad Ns"], "config error: global.namespace"),
]


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_helm_flag_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code, err = _error(capsys, "synth", *args, "-f", str(EXAMPLE), "-o", str(tmp_path / "out"))
    assert code == 2 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_set_json_error_does_not_echo_the_value(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    secret = "Js0nS3cretValue"
    code, err = _error(
        capsys, "synth", "-f", str(EXAMPLE), "--set-json", f's3.secretAccessKey="{secret}', "-o", str(tmp_path)
    )
    assert code == 2 and secret not in err


def test_uninstall_checks_its_arguments_before_calling_kubectl(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _error(capsys, "uninstall", "Bad_", "-n", "backups", "--kubectl", "/nonexistent/kubectl")
    assert code == 2 and "config error: RELEASE: 'Bad_' is not a valid DNS-1123 label" in err
    code, err = _error(capsys, "uninstall", "prod", "-n", "", "--kubectl", "/nonexistent/kubectl")
    assert code == 2 and "config error: --namespace: required" in err
    code, err = _error(capsys, "uninstall", "prod", "-n", "backups", "--kubectl", "/nonexistent/kubectl")
    assert code == 1 and "'/nonexistent/kubectl' not found" in err
    with pytest.raises(SystemExit) as info:
        cli.main(["uninstall", "prod"])
    assert info.value.code == 2 and "--namespace" in capsys.readouterr().err


def test_applyset_id_is_kubectls() -> None:
    # Recorded from kubectl v1.34 (`--applyset=cnpg-pgdump-backup.rel1 -n t1` labelled its parent so);
    # uninstall refuses a parent whose id differs from this.
    assert parent_name("rel1") == "cnpg-pgdump-backup.rel1"
    assert applyset_id("rel1", "t1") == "applyset-dvYA4mt2zjZAG5x1qjyt5EEKvRfIhS4GtbRp5ZxM_og-v1"


def test_readme_gives_the_tested_install_command() -> None:
    readme = (REPO / "README.md").read_text()
    command = apply_command("prod", "backups", "dist/")
    assert command in readme, f"README.md must show the install command tests/kube runs: {command}"
    assert shlex.split(command)[0] == "KUBECTL_APPLYSET=true"
    assert "python -m app uninstall prod -n backups" in readme
