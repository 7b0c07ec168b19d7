"""Restore is run-once: stable names, no TTL, no retries, a run-id the worker records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import cli
from app.oneoff import restore_yaml
from app.values import config_from_values, merge_values
from testsupport.app_helpers import pod_specs, render, restricted_violations, validate_strict, values

RESTORE = {"restore": {"object": "appdb_2024-01-21_02-00-00.sql.gz"}}


def _job(tmp_path: Path, *overrides: dict[str, Any]) -> dict[str, Any]:
    return render(values(RESTORE, *overrides), tmp_path).one("Job")


def test_same_config_same_job_name(tmp_path: Path) -> None:
    assert _job(tmp_path / "a")["metadata"]["name"] == _job(tmp_path / "b")["metadata"]["name"]


@pytest.mark.parametrize(
    "change",
    [
        {"restore": {"object": "appdb_2024-01-22_02-00-00.sql.gz"}},
        {"restore": {"force": True}},
        {"restore": {"backupBeforeRestore": True}},
        {"restore": {"targetDatabase": "other"}},
        {"cnpg": {"database": "otherdb"}},
        # another source or another cluster is another request (else the run-once ledger skips it)
        {"s3": {"bucket": "other-bucket"}},
        {"s3": {"endpoint": "http://minio.other.svc:9000"}},
        {"cnpg": {"secretName": "otherdb-app"}},
        {"cnpg": {"serviceName": "otherdb-rw"}},
    ],
)
def test_a_different_request_is_a_different_job(tmp_path: Path, change: dict[str, Any]) -> None:
    assert _job(tmp_path / "a")["metadata"]["name"] != _job(tmp_path / "b", change)["metadata"]["name"]


@pytest.mark.parametrize(
    "change",
    [
        {"backup": {"image": "registry.example/cnpg-pgdump-backup-worker:0.2.0"}},
        {"restore": {"resources": {"limits": {"memory": "2Gi"}}}},
        {"backup": {"schedule": "0 3 * * *"}},
    ],
)
def test_settings_outside_the_request_keep_the_job_name(tmp_path: Path, change: dict[str, Any]) -> None:
    # Renaming on such changes would let an upgrade silently re-run a restore that had failed.
    assert _job(tmp_path / "a")["metadata"]["name"] == _job(tmp_path / "b", change)["metadata"]["name"]


def test_bare_name_and_full_key_are_the_same_request(tmp_path: Path) -> None:
    full = _job(tmp_path / "a", {"restore": {"object": "appdb/appdb_2024-01-21_02-00-00.sql.gz"}})
    assert full["metadata"]["name"] == _job(tmp_path / "b")["metadata"]["name"]


def test_run_once_shape(tmp_path: Path) -> None:
    job = _job(tmp_path, {"restore": {"force": True, "backupBeforeRestore": True, "targetDatabase": "scratch"}})
    name = job["metadata"]["name"]
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert job["spec"]["backoffLimit"] == 0
    assert job["metadata"]["annotations"] == {
        "cnpg-pgdump-backup/restore-object": "appdb/appdb_2024-01-21_02-00-00.sql.gz"
    }
    args = pod_specs(job)[0]["containers"][0]["args"]
    assert args == [
        "restore",
        "--object",
        "appdb/appdb_2024-01-21_02-00-00.sql.gz",
        "--run-id",
        name,
        "--force",
        "--backup-before-restore",
        "--target-database",
        "scratch",
    ]
    assert len(name) <= 63


def test_allow_unverified_for_chart_backups(tmp_path: Path) -> None:
    plain = _job(tmp_path / "a")
    job = _job(tmp_path / "b", {"restore": {"allowUnverified": True}})
    assert pod_specs(job)[0]["containers"][0]["args"][-1] == "--allow-unverified"
    assert "--allow-unverified" not in pod_specs(plain)[0]["containers"][0]["args"]
    # a different request is a different Job (Jobs are immutable)
    assert job["metadata"]["name"] != plain["metadata"]["name"]


def test_no_restore_job_without_object_or_when_disabled(tmp_path: Path) -> None:
    assert render(values(), tmp_path / "a").kind("Job") == []
    assert render(values(RESTORE, {"restore": {"enabled": False}}), tmp_path / "b").kind("Job") == []


def test_restore_latest(tmp_path: Path) -> None:
    job = _job(tmp_path, {"restore": {"object": "latest"}})
    assert pod_specs(job)[0]["containers"][0]["args"][:3] == ["restore", "--object", "latest"]


# --- one-off restore-job ------------------------------------------------------------------------


def test_oneoff_name_is_time_based_and_valid() -> None:
    cfg = config_from_values(values(RESTORE))
    text = restore_yaml(cfg, datetime(2024, 1, 21, 2, 30, 5, tzinfo=UTC), warn=lambda _: None)
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert [d["kind"] for d in docs] == ["Job"]
    job = docs[0]
    assert job["metadata"]["name"] == "cnpg-backup-cnpg-pgdump-backup-restore-20240121-023005"
    assert pod_specs(job)[0]["containers"][0]["args"][3:5] == ["--run-id", job["metadata"]["name"]]
    validate_strict(job)
    assert restricted_violations(pod_specs(job)[0]) == []


def _restore_job_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, when: datetime, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "utc_now", lambda: when)
    code = cli.main(["restore-job", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_restore_job_command_new_name_each_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vals = tmp_path / "values.yaml"
    vals.write_text(yaml.safe_dump(values({"restore": {"force": True}})))
    args = ("-f", str(vals), "--object", "appdb_2024-01-21_02-00-00.sql.gz")
    code1, out1, _ = _restore_job_cli(capsys, monkeypatch, datetime(2024, 1, 21, 2, 0, 0, tzinfo=UTC), *args)
    code2, out2, _ = _restore_job_cli(capsys, monkeypatch, datetime(2024, 1, 21, 2, 0, 1, tzinfo=UTC), *args)
    assert code1 == code2 == 0
    job1, job2 = yaml.safe_load(out1), yaml.safe_load(out2)
    assert job1["metadata"]["name"] != job2["metadata"]["name"]
    assert job1["metadata"]["name"].endswith("-restore-20240121-020000")
    # Flags come from the command line only: the file's restore.force does not apply.
    assert "--force" not in pod_specs(job1)[0]["containers"][0]["args"]


def test_restore_job_command_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vals = tmp_path / "values.yaml"
    vals.write_text(
        yaml.safe_dump(
            merge_values(
                values(),
                {
                    "cnpg": {"database": ""},
                    "databases": [
                        {"name": "orders", "database": "orders"},
                        {"name": "billing", "database": "billing"},
                    ],
                },
            )
        )
    )
    when = datetime(2024, 1, 21, 2, 0, 0, tzinfo=UTC)
    code, out, err = _restore_job_cli(capsys, monkeypatch, when, "-f", str(vals), "--object", "latest")
    assert code == 2 and out == ""
    assert err.startswith("config error: restore.database: required") and "Traceback" not in err
    code, out, _ = _restore_job_cli(
        capsys,
        monkeypatch,
        when,
        "-f",
        str(vals),
        "--object",
        "billing_x.sql.gz",
        "--database",
        "billing",
        "--force",
        "--backup-before-restore",
        "--target-database",
        "billing_copy",
    )
    assert code == 0
    job = yaml.safe_load(out)
    container = pod_specs(job)[0]["containers"][0]
    assert container["args"] == [
        "restore",
        "--object",
        "appdb/billing/billing_x.sql.gz",
        "--run-id",
        job["metadata"]["name"],
        "--force",
        "--backup-before-restore",
        "--target-database",
        "billing_copy",
    ]
    assert {"name": "PGDATABASE", "value": "billing"} in container["env"]


def test_restore_job_rejects_bad_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vals = tmp_path / "values.yaml"
    vals.write_text(yaml.safe_dump(values()))
    code, out, err = _restore_job_cli(
        capsys,
        monkeypatch,
        datetime.now(UTC),
        "-f",
        str(vals),
        "--object",
        "s3://my-backups-bucket/appdb/x.sql.gz",
    )
    assert code == 2 and out == ""
    assert "restore.object: 's3://my-backups-bucket/appdb/x.sql.gz' is a URL" in err


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ("", "--object: required"),  # once printed a Job restoring the folder `appdb/`
        ("  ", "--object: required"),
        (" latest", "restore.object: ' latest' has leading or trailing spaces"),
        ("appdb_2024-01-21_02-00-00.sql.gz ", "has leading or trailing spaces"),
    ],
)
def test_restore_job_rejects_empty_or_padded_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, obj: str, expected: str
) -> None:
    vals = tmp_path / "values.yaml"
    vals.write_text(yaml.safe_dump(values()))
    code, out, err = _restore_job_cli(capsys, monkeypatch, datetime.now(UTC), "-f", str(vals), "--object", obj)
    assert code == 2 and out == ""
    assert expected in err and len(err.strip().splitlines()) == 1


def test_image_pull_secrets_reach_every_worker_pod(tmp_path: Path) -> None:
    vals = values(
        {"backup": {"imagePullSecrets": [{"name": "regcred"}, "mirror-cred"]}},
        {"restore": {"object": "latest"}},
    )
    out = render(vals, tmp_path)
    oneoff = yaml.safe_load(restore_yaml(config_from_values(vals), datetime.now(UTC), warn=lambda _: None))
    docs = [out.one("CronJob"), out.one("Job"), oneoff]
    for doc in docs:
        validate_strict(doc)
        [spec] = pod_specs(doc)
        assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-cred"}], doc["kind"]
    # the pull secret is how the image is fetched, not what is restored: same request, same Job name
    assert (
        out.one("Job")["metadata"]["name"]
        == render(values({"restore": {"object": "latest"}}), tmp_path / "b").one("Job")["metadata"]["name"]
    )


def test_restore_jobs_and_scratch_size_reach_the_restore_pod_only(tmp_path: Path) -> None:
    vals = values({"restore": {"object": "latest", "jobs": 4, "tmpSizeLimit": "20Gi"}})
    out = render(vals, tmp_path)
    [job_spec], [cron_spec] = pod_specs(out.one("Job")), pod_specs(out.one("CronJob"))
    assert job_spec["containers"][0]["args"][-2:] == ["--jobs", "4"]
    tmp = {v["name"]: v for v in job_spec["volumes"]}["tmp"]
    assert tmp["emptyDir"]["sizeLimit"] == "20Gi"
    assert {v["name"]: v for v in cron_spec["volumes"]}["tmp"]["emptyDir"]["sizeLimit"] == "1Gi"
    validate_strict(out.one("Job"))
    # neither changes what is restored: same request, same Job name
    plain = render(values({"restore": {"object": "latest"}}), tmp_path / "plain")
    assert out.one("Job")["metadata"]["name"] == plain.one("Job")["metadata"]["name"]
    assert "--jobs" not in pod_specs(plain.one("Job"))[0]["containers"][0]["args"]


def test_restore_job_command_takes_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vals = tmp_path / "values.yaml"
    vals.write_text(yaml.safe_dump(values()))
    when = datetime(2024, 1, 21, 2, 0, 0, tzinfo=UTC)
    code, out, _ = _restore_job_cli(capsys, monkeypatch, when, "-f", str(vals), "--object", "latest", "--jobs", "3")
    assert code == 0
    assert pod_specs(yaml.safe_load(out))[0]["containers"][0]["args"][-2:] == ["--jobs", "3"]
    code, _, err = _restore_job_cli(capsys, monkeypatch, when, "-f", str(vals), "--object", "latest", "--jobs", "0")
    assert code != 0 and "restore.jobs" in err and "Traceback" not in err


def test_restore_job_command_creates_the_target_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vals = tmp_path / "values.yaml"
    vals.write_text(yaml.safe_dump(values({"restore": {"createDatabase": True}})))
    when = datetime(2024, 1, 21, 2, 0, 0, tzinfo=UTC)
    base = ("-f", str(vals), "--object", "latest", "--target-database", "appdb_copy")
    code, out, _ = _restore_job_cli(capsys, monkeypatch, when, *base, "--create")
    assert code == 0
    assert "--create" in pod_specs(yaml.safe_load(out))[0]["containers"][0]["args"]
    # like --force, the one-off does what its flags say: the file's restore.createDatabase does not apply
    code, out, _ = _restore_job_cli(capsys, monkeypatch, when, *base)
    assert code == 0 and "--create" not in pod_specs(yaml.safe_load(out))[0]["containers"][0]["args"]
