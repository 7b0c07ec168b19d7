"""`cnpg-backup-worker --help` and every command's help, as a user reads them: each option names its
environment variable, its default and its unit; the snapshot shows any change in review."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest

from worker import cli, contract

COMMANDS = [
    "wait",
    "backup",
    "restore",
    "list",
    "prune",
    "drill",
    "status",
    "check",
    "backup-globals",
    "restore-globals",
]


def _help(*args: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in list(__import__("os").environ):
        if name.startswith(("CNPG_BACKUP_", "PG", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "100")
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args([*args, "--help"])
    assert exc.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help(command, snapshot, monkeypatch):
    text = _help(*([command] if command else []), monkeypatch=monkeypatch)
    assert text == snapshot


def test_every_setting_a_command_takes_names_its_variable(monkeypatch):
    for command in COMMANDS:
        text = " ".join(_help(command, monkeypatch=monkeypatch).split())
        for s in contract.SETTINGS:
            # drill and restore-globals --object are their own flags: neither follows the database
            # restore request's variable
            if command in ("drill", "restore-globals") and s == contract.RESTORE_OBJECT:
                continue
            if s.flag and f"{s.flag} " in text:
                assert f"[env {s.env}]" in text, (command, s.env)


def test_storage_class_only_where_objects_are_written(monkeypatch):
    assert "--storage-class" in _help("backup", monkeypatch=monkeypatch)
    assert "--sse" in _help("drill", monkeypatch=monkeypatch)  # a drill writes its result
    for command in ("list", "prune", "status", "check"):
        assert "--storage-class" not in _help(command, monkeypatch=monkeypatch), command
