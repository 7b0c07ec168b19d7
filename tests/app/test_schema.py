"""`python -m app schema`: the JSON schema an editor or a CI step validates a values file with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def schema() -> dict:
    p = subprocess.run([sys.executable, "-m", "app", "schema"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def test_the_example_values_validate(schema):
    jsonschema.validate(yaml.safe_load((REPO / "examples/values.yaml").read_text()), schema)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"backup": {"format": "zip"}}, "format"),
        ({"backup": {"compression": "bzip2"}}, "compression"),
        ({"backup": {"retetionDays": 3}}, "retetionDays"),  # a typo is an unknown key, not ignored
        ({"s3": {"sse": "aes"}}, "sse"),
    ],
)
def test_bad_values_fail_the_schema(schema, values, where):
    with pytest.raises(jsonschema.ValidationError) as exc:
        jsonschema.validate(values, schema)
    assert where in str(exc.value)


def test_keys_are_the_values_files_camel_case(schema):
    backup = schema["$defs"]["Backup"]["properties"]
    assert {"retentionDays", "compressionLevel", "imagePullSecrets", "flagShrinkPercent"} <= set(backup)
    assert "retention_days" not in backup
