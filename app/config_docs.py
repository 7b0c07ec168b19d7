"""The parameter tables of docs/configuration.md, generated from the config model: each row is a
field's values path, its `description` (app/config.py) and its default. The prose around them is
written by hand; each table sits between `<!-- config-table: ROOT... -->` and
`<!-- end config-table -->` and is rewritten from the model's fields under those roots.

    .venv/bin/python -m app.config_docs            # rewrite the tables of docs/configuration.md
    .venv/bin/python -m app.config_docs --check    # exit 1 when they differ from the model

(tests/app/test_config_docs.py fails when the checked-in file is out of date.)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .config import Config, Resources, SecretKeySelector
from .scheduling import Affinity, Toleration
from .validation import StrictModel

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
TABLE = re.compile(r"<!-- config-table: (?P<roots>[^>]*?) -->\n.*?<!-- end config-table -->", re.DOTALL)
HEADER = "| Parameter | Description | Default |\n|-----------|-------------|---------|\n"

# The keys the Helm chart's values.yaml had. Every other key is an extension and its row says
# **ext**, except in sections whose heading already does (EXT_SECTIONS).
CHART_KEYS = frozenset(
    {
        "global.fullnameOverride",
        "global.nameOverride",
        *(
            f"backup.{k}"
            for k in (
                "enabled schedule image imagePullPolicy retentionDays resources nodeSelector tolerations affinity "
                "successfulJobsHistoryLimit failedJobsHistoryLimit concurrencyPolicy"
            ).split()
        ),
        "cnpg.secretName",
        "cnpg.database",
        "cnpg.serviceName",
        *(f"s3.{k}" for k in "bucket prefix region endpoint secretName useExistingSecret storageClass".split()),
        *(f"restore.{k}" for k in "enabled object force backupBeforeRestore resources".split()),
        *(
            f"securityContext.{k}"
            for k in "runAsNonRoot runAsUser runAsGroup readOnlyRootFilesystem allowPrivilegeEscalation".split()
        ),
        "monitoring.annotations",
    }
)
EXT_SECTIONS = ("verify", "databases")
# Sections that get a row of their own besides their fields' rows.
SECTION_ROWS = frozenset({"backup.retention", "backup.globals", "backup.globals.superuserSecret"})
# Models documented as one row (a Kubernetes shape, or a pair whose fields need no rows).
LEAF_MODELS: tuple[type[BaseModel], ...] = (Resources, SecretKeySelector, Affinity, Toleration)
# Defaults that are not a plain value: computed, inherited or merged.
DEFAULT_TEXT = {
    "backup.resources": 'requests `cpu: 100m`, `memory: 256Mi`; limits `cpu: "2"`, `memory: 1Gi`',
    "backup.activeDeadlineSeconds": "derived",
    "backup.globals": "",
    "backup.globals.superuserSecret": "",
    "backup.globals.superuserSecret.name": "derived",
    "restore.resources": "same as backup",
    "verify.schedule": '`"0 5 * * 0"` (Sundays 05:00)',
    "verify.resources": 'requests `cpu: 100m`, `memory: 512Mi`; limits `cpu: "2"`, `memory: 2Gi`',
    "verify.activeDeadlineSeconds": "`21600` (6 h)",
    "databases[].secretName": "`cnpg.secretName`",
    "databases[].serviceName": "`cnpg.serviceName`",
    "databases[].prefix": "`<s3.prefix>/<name>`, or `<name>` when `s3.prefix` is empty",
    "databases[].schedule": "`backup.schedule`",
}


def _key(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias or field.alias or name
    assert isinstance(alias, str)
    return alias


def _model_of(annotation: Any) -> tuple[type[StrictModel] | None, bool]:
    """The model a field holds (or None) and whether it is a list of them."""
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        model, _ = _model_of(item)
        return model, True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _model_of(args[0]) if len(args) == 1 else (None, False)
    if isinstance(annotation, type) and issubclass(annotation, StrictModel):
        return annotation, False
    return None, False


def fields(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[tuple[str, FieldInfo, bool]]:
    """(values path, field, has a row) for every field under `model`, depth first in model order."""
    for name, field in model.model_fields.items():
        path = prefix + _key(name, field)
        sub, is_list = _model_of(field.annotation)
        if sub is None or issubclass(sub, LEAF_MODELS):
            yield path, field, True
            continue
        if is_list and not issubclass(sub, LEAF_MODELS) and sub.model_fields:
            yield path, field, False
            yield from fields(sub, path + "[].")
            continue
        yield path, field, path in SECTION_ROWS
        yield from fields(sub, path + ".")


def _value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, BaseModel):  # a section's defaults are its fields' (their own rows)
        assert not value.model_fields_set, value
        return "`{}`"
    if isinstance(value, dict | list):
        return f"`{json.dumps(value)}`"
    if isinstance(value, str) and (value == "" or " " in value):
        return f'`"{value}"`'
    return f"`{value}`"


def default_text(path: str, field: FieldInfo) -> str:
    if path in DEFAULT_TEXT:
        return DEFAULT_TEXT[path]
    if field.is_required():
        return "required"
    return _value(field.get_default(call_default_factory=True))


def _ext(path: str) -> str:
    if path in CHART_KEYS or path.split(".")[0].removesuffix("[]") in EXT_SECTIONS:
        return ""
    return " **ext**"


def table(roots: Sequence[str]) -> str:
    """The Markdown table of the fields under `roots` (values paths of top-level sections)."""
    lines = [HEADER]
    for path, field, has_row in fields():
        if not has_row or path.split(".")[0].removesuffix("[]") not in roots:
            continue
        default = default_text(path, field)
        lines.append(f"| `{path}`{_ext(path)} | {field.description} |{f' {default} ' if default else ' '}|\n")
    return "".join(lines)


def problems() -> list[str]:
    """Fields the tables cannot show: every field needs a description (a table cell: no `|`)."""
    found = [
        f"{p}: no description (Field(description=...) in app/config.py)" for p, f, _ in fields() if not f.description
    ]
    found += [f"{p}: a description cannot hold '|'" for p, f, _ in fields() if "|" in (f.description or "")]
    found += [
        f"{model.__name__}.{name}: no description (Field(description=...))"
        for model in (Resources, SecretKeySelector)  # one row each, but their fields are in the schema
        for name, field in model.model_fields.items()
        if not field.description
    ]
    known = {p for p, _, _ in fields()}
    found += [f"{p}: in config_docs.DEFAULT_TEXT, but no such field" for p in DEFAULT_TEXT if p not in known]
    found += [f"{p}: in config_docs.CHART_KEYS, but no such field" for p in sorted(CHART_KEYS) if p not in known]
    return found


def render(doc: str) -> str:
    """`doc` with every config table rewritten from the model."""
    return TABLE.sub(
        lambda m: f"<!-- config-table: {m['roots']} -->\n{table(m['roots'].split())}<!-- end config-table -->", doc
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.config_docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", type=Path, default=DOC, help=f"default: {DOC}")
    parser.add_argument("--check", action="store_true", help="only report whether the tables are up to date")
    args = parser.parse_args(argv)
    errors = problems()
    if errors:
        print("\n".join(f"config error: {e}" for e in errors), file=sys.stderr)
        return 2
    current = args.file.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(f"{args.file}: out of date; run: python -m app.config_docs {args.file}", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.file.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
