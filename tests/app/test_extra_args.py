"""backup.extraArgs at synth time: accepted options reach the backup pods only (as the contract's
JSON list), refused ones fail synth with one line naming the field, the item and why (the same rule
the worker applies again, worker/pg_dump_options.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import cli
from app.errors import ConfigError
from app.values import config_from_values
from testsupport.app_helpers import pod_specs, render, values
from worker import contract, pg_dump_options

ACCEPTED = [
    "--exclude-table=audit_log",
    "--exclude-schema=scratch_*",
    "--schema=public",
    "--table=orders",
    "--exclude-table-data=sessions",
    "--no-owner",
    "--no-privileges",
    "--no-comments",
    "--encoding=UTF8",
]

REFUSED = {
    "-F": "-F (--format): refused: set by the worker (backup.format)",
    "--format=custom": "--format: refused: set by the worker (backup.format)",
    "-f/tmp/x": "-f (--file): refused: set by the worker",
    "--file=/tmp/x": "--file: refused",
    "-Z9": "-Z (--compress): refused",
    "--compress=9": "--compress: refused",
    "-d": "-d (--dbname): refused",
    "--dbname=other": "--dbname: refused",
    "-h": "-h (--host): refused",
    "--host=db": "--host: refused",
    "-p5433": "-p (--port): refused",
    "-U": "-U (--username): refused",
    "--username=postgres": "--username: refused",
    "-W": "-W (--password): refused",
    "--password": "--password: refused",
    "--jobs=4": "--jobs: refused: parallel dumps need the directory format",
    "--snapshot=00000003-1": "--snapshot: refused",
    "-C": "-C (--create): refused: the dump would create and connect to its own database",
    "--clean": "--clean: refused",
    "-a": "-a (--data-only): refused: a backup without the schema",
    "--schema-only": "--schema-only: refused: a backup without the data is not a backup",
    "--section=data": "--section: refused: a partial dump",
    "--inserts": "--inserts: refused: data must stay COPY",
    "--lock-wait-timeout=1": "--lock-wait-timeout: refused",
    "--role=admin": "--role: refused",
    "--filter=/etc/f": "--filter: refused",
    "--use-set-session-authorization": "--use-set-session-authorization: refused: the restore runs as",
    "--form=custom": "--form: not an option backup.extraArgs accepts",  # getopt would expand the prefix
    "--bogus": "--bogus: not an option backup.extraArgs accepts",
    "-O": "-O: write the long form, --no-owner, as one item",
    "-Taudit": "-T: write the long form, --exclude-table=VALUE, as one item",
    "--exclude-table": "--exclude-table: needs a value in the same item",
    "--exclude-table=": "--exclude-table: needs a value in the same item",
    "--no-owner=yes": "--no-owner: takes no value",
    "audit_log": "not an option: pg_dump would take it as the database name",
}


def test_accepted_options_reach_the_backup_pods_only(tmp_path: Path) -> None:
    vals = values({"backup": {"extraArgs": ACCEPTED}, "verify": {"enabled": True}, "restore": {"object": "latest"}})
    out = render(vals, tmp_path)
    for doc in out.kind("CronJob") + out.kind("Job"):
        [spec] = pod_specs(doc)
        backup = doc["kind"] == "CronJob" and not doc["metadata"]["name"].endswith("-drill")
        for container in spec.get("initContainers", []) + spec["containers"]:
            env = {e["name"]: e.get("value") for e in container["env"]}
            if backup:
                assert json.loads(env[contract.DUMP_EXTRA_ARGS.env]) == ACCEPTED
            else:  # drills dump nothing; a restore's safety backup is a full one
                assert contract.DUMP_EXTRA_ARGS.env not in env, doc["metadata"]["name"]


@pytest.mark.parametrize("item", sorted(REFUSED))
def test_refused_option_is_one_line_naming_field_and_option(item: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_values(values({"backup": {"extraArgs": ["--no-owner", item]}}))
    assert str(raised.value) == f"config error: backup.extraArgs[1]: {pg_dump_options.problem(item)}"
    assert REFUSED[item] in str(raised.value)
    assert pg_dump_options.problem(item) is not None


def test_synth_refuses_without_echoing_a_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        [
            "synth",
            "--set",
            "cnpg.secretName=app,cnpg.database=app,s3.bucket=bkt,s3.secretName=s",
            "--set-string",
            "backup.extraArgs[0]=--dbname=postgres://u:hunter2@db/app",
            "--set-string",
            "backup.extraArgs[1]=--password=hunter2",
            "-o",
            str(tmp_path / "out"),
        ]
    )
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "config error: backup.extraArgs[0]: --dbname: refused: set by the worker from PGDATABASE (the database "
        "of the CronJob); credentials never go on argv",
        "config error: backup.extraArgs[1]: --password: refused: the password comes from the CNPG Secret "
        "(PGPASSWORD); pg_dump must never prompt",
    ], err
    assert "hunter2" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("item", ACCEPTED)
def test_accepted_options_pass_the_shared_rule(item: str) -> None:
    assert pg_dump_options.problem(item) is None


def test_a_parallel_backup_refuses_object_filters_but_takes_output_options() -> None:
    """backup.jobs > 1 chooses each part's tables itself: a user's filter would split a table's data
    from its definition. Output options go to every part."""
    backup = {"format": "custom", "jobs": 2}
    with pytest.raises(ConfigError) as err:
        config_from_values(values({"backup": {**backup, "extraArgs": ["--no-owner", "--exclude-table=audit"]}}))
    assert "backup.extraArgs[1]: --exclude-table: not with backup.jobs > 1" in str(err.value)
    cfg = config_from_values(values({"backup": {**backup, "extraArgs": ["--no-owner", "--no-comments"]}}))
    assert cfg.backup.extra_args == ["--no-owner", "--no-comments"]
    # the worker applies the same rule to its flags
    assert pg_dump_options.problems(["--table=x", "--no-owner"], jobs=2) == [
        (0, "--table: not with backup.jobs > 1 (the parts choose their tables themselves); use backup.jobs: 1")
    ]
    assert pg_dump_options.problems(["--table=x"], jobs=1) == []
