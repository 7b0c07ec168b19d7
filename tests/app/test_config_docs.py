"""docs/configuration.md's parameter tables are generated from the config model (app/config_docs.py):
every field carries its description, the checked-in file matches the model, and the JSON schema
carries the same descriptions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import config as C
from app import config_docs
from app.cli import main as cli_main

DOC = config_docs.DOC


def test_checked_in_doc_matches_the_model() -> None:
    current = DOC.read_text()
    assert config_docs.render(current) == current, "docs/configuration.md is out of date: python -m app.config_docs"


def test_every_field_has_a_description() -> None:
    assert config_docs.problems() == []
    paths = [path for path, _, has_row in config_docs.fields() if has_row]
    doc = DOC.read_text()
    # every row is in the checked-in file, in a generated table
    assert [p for p in paths if f"| `{p}`" not in doc] == []
    assert "databases[].name" in paths and "backup.retention" in paths and "backup.retention.daily" in paths


def test_a_changed_description_or_table_is_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = DOC.read_text()
    edited = current.replace("| Generate the backup CronJob(s) |", "| Generate the backups |")
    assert edited != current and config_docs.render(edited) == current
    stale = tmp_path / "configuration.md"
    stale.write_text(edited)
    assert config_docs.main(["--check", str(stale)]) == 1
    assert config_docs.main([str(stale)]) == 0 and stale.read_text() == current
    assert config_docs.main(["--check", str(stale)]) == 0
    # the model side: a new description changes the table
    monkeypatch.setattr(C.Backup.model_fields["enabled"], "description", "Make backups")
    assert "| `backup.enabled` | Make backups | `true` |" in config_docs.render(current)
    monkeypatch.setattr(C.Backup.model_fields["enabled"], "description", None)
    assert config_docs.problems() == ["backup.enabled: no description (Field(description=...) in app/config.py)"]
    assert config_docs.main(["--check", str(stale)]) == 2


def test_ext_markers_and_defaults() -> None:
    table = config_docs.table(["backup", "databases"])
    assert "| `backup.schedule` | " in table and '| `"0 2 * * *"` |' in table  # a chart key: no marker
    assert "| `backup.format` **ext** | " in table
    assert "| `databases[].name` | " in table and table.rstrip().endswith("| `backup.schedule` |")
    assert "| `backup.retention` **ext** | " in table and "| `backup.timeZone` **ext** |" in table


def test_schema_carries_the_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    backup = schema["$defs"]["Backup"]["properties"]
    assert backup["schedule"]["description"] == C.Backup.model_fields["schedule"].description
    assert backup["retentionDays"]["description"].startswith("Delete backups under the database's prefix")
    assert schema["properties"]["databases"]["description"].startswith("Several databases")
