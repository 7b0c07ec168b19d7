"""One contract for both halves (worker/contract.py): the generated doc is current, and every shared
rule gives the same answer whichever half applies it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from app.config import Restore
from app.constructs.restore import restore_args as app_restore_args
from app.targets import BackupTarget
from worker import contract, naming
from worker.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def test_docs_worker_contract_is_generated_from_the_module() -> None:
    doc = (REPO / "docs/worker-contract.md").read_text()
    assert doc == contract.render_markdown(), "run: python -m worker.contract > docs/worker-contract.md"


KEYS = [
    ("appdb_2024-01-21_02-00-00.sql.gz", "appdb"),
    ("appdb/appdb_2024-01-21_02-00-00.sql.gz", "appdb"),
    ("latest", "appdb"),
    ("appdb_2024-01-21_02-00-00.dump", ""),
    ("x/appdb_2024-01-21_02-00-00.sql.gz", "appdb"),  # under another prefix: relative to ours
    ("clusters/orders/orders_2024-01-21_02-00-00.sql.gz", "clusters/orders"),
    ("orders_2024-01-21_02-00-00.sql.gz", "clusters/orders"),
    ("appdbx/appdb_2024-01-21_02-00-00.sql.gz", "appdb"),  # a prefix that merely starts alike
]


@pytest.mark.parametrize(("obj", "prefix"), KEYS)
def test_the_app_and_the_worker_resolve_restore_object_to_the_same_key(obj: str, prefix: str) -> None:
    target = BackupTarget(
        name=None, database="appdb", secret_name="s", service_name="", prefix=prefix, schedule="0 2 * * *"
    )
    from_app = target.object_key(obj)
    from_worker = "latest" if obj == "latest" else naming.resolve_object(obj, prefix)
    assert from_app == from_worker
    if obj != "latest" and prefix:
        assert from_worker.startswith(prefix + "/")


def _parse(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    for s in contract.SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return build_parser().parse_args(argv)


def test_every_setting_the_manifests_set_is_read_by_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        contract.S3_BUCKET: "b",
        contract.S3_PREFIX: "p",
        contract.S3_ENDPOINT: "http://minio:9000",
        contract.S3_STORAGE_CLASS: "STANDARD_IA",
        contract.RETENTION_DAYS: "7",
        contract.FORMAT: "custom",
        contract.COMPRESSION: "zstd",
        contract.COMPRESSION_LEVEL: "5",
        contract.LOG_FORMAT: "json",
        contract.DUMP_LOCK_WAIT: "12",
        contract.FLAG_SHRINK: "40",
        contract.PUSHGATEWAY: "http://prometheus-pushgateway.monitoring.svc:9091",
    }
    assert set(values) == {s for s in contract.SETTINGS if s.set_from}
    ns = _parse(["backup"], {s.env: v for s, v in values.items()}, monkeypatch)
    got = {
        contract.S3_BUCKET: ns.bucket,
        contract.S3_PREFIX: ns.prefix,
        contract.S3_ENDPOINT: ns.endpoint,
        contract.S3_STORAGE_CLASS: ns.storage_class,
        contract.RETENTION_DAYS: str(ns.retention_days),
        contract.FORMAT: ns.format,
        contract.COMPRESSION: ns.compression,
        contract.COMPRESSION_LEVEL: str(ns.compression_level),
        contract.LOG_FORMAT: ns.log_format,
        contract.DUMP_LOCK_WAIT: f"{ns.lock_wait_timeout:g}",
        contract.FLAG_SHRINK: str(ns.flag_shrink_percent),
        contract.PUSHGATEWAY: ns.pushgateway,
    }
    assert got == values


def test_worker_defaults_are_the_contracts(monkeypatch: pytest.MonkeyPatch) -> None:
    backup = _parse(["backup"], {}, monkeypatch)
    assert backup.format == contract.DEFAULT_FORMAT
    assert backup.compression_level == contract.DEFAULT_COMPRESSION_LEVEL
    assert backup.compression == contract.DEFAULT_COMPRESSION
    assert backup.wait_timeout == contract.DEFAULT_WAIT_TIMEOUT_SECONDS
    assert backup.retention_days == contract.DEFAULT_RETENTION_DAYS
    restore = _parse(["restore", "--object", "latest"], {}, monkeypatch)
    assert restore.lock_timeout == contract.DEFAULT_LOCK_TIMEOUT_SECONDS
    assert restore.progress_interval == contract.DEFAULT_PROGRESS_INTERVAL_SECONDS
    assert (restore.format, restore.compression_level) == (contract.DEFAULT_FORMAT, contract.DEFAULT_COMPRESSION_LEVEL)


def test_the_restore_args_the_app_writes_parse_in_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    request = Restore(
        object="appdb_2024-01-21_02-00-00.sql.gz",
        force=True,
        backup_before_restore=True,
        target_database="appdb_copy",
        allow_unverified=True,
        jobs=3,
    )
    args = app_restore_args("appdb/appdb_2024-01-21_02-00-00.sql.gz", "restore-abc123", request)
    ns = _parse(args, {}, monkeypatch)
    assert (
        ns.command,
        ns.object,
        ns.run_id,
        ns.force,
        ns.backup_before_restore,
        ns.target_database,
        ns.allow_unverified,
        ns.jobs,
    ) == ("restore", "appdb/appdb_2024-01-21_02-00-00.sql.gz", "restore-abc123", True, True, "appdb_copy", True, 3)
    ns = _parse(contract.wait_args(42), {}, monkeypatch)
    assert (ns.command, ns.timeout) == ("wait", 42)
