"""One contract for both halves (worker/contract.py): the generated doc is current, and every shared
rule gives the same answer whichever half applies it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from app.config import Restore
from app.constructs.drill import drill_args
from app.constructs.restore import restore_args as app_restore_args
from app.targets import BackupTarget
from testsupport.app_helpers import pod_specs, render, values
from worker import contract, crypt, naming, notify
from worker import globals as worker_globals
from worker.cli import build_parser
from worker.commands import identities, pg_dump_args
from worker.metrics import RunRecord

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
        name=None,
        database="appdb",
        secret_name="s",
        service_name="",
        prefix=prefix,
        schedule="0 2 * * *",
        drill_schedule="0 5 * * 0",
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


# Every setting the manifests set (`set_from`), with the value CONFIG gives it. The URLs live in a
# Secret: the manifests carry a reference, which the kubelet resolves from SECRETS.
AGE_IDENTITY, AGE_PUBLIC = crypt.generate()
SECRETS = {
    ("backup-notify", "heartbeat"): "https://hc-ping.example/0f1e2d3c",
    ("backup-notify", "webhook"): "https://hooks.example/services/T0/B0/token",
    ("backup-age", "identity"): AGE_IDENTITY,
    ("pg-root", "user"): "su-admin-7c1e",
    ("pg-root", "pass"): "su-Secret-3b9d",
}
SECRET_REFS = {
    contract.HEARTBEAT_URL: ("backup-notify", "heartbeat"),
    contract.WEBHOOK_URL: ("backup-notify", "webhook"),
    contract.AGE_IDENTITY: ("backup-age", "identity"),
    contract.SUPERUSER: ("pg-root", "user"),
    contract.SUPERUSER_PASSWORD: ("pg-root", "pass"),
}
# Settings only some pods get: the private key never reaches the backup CronJob, and a drill dumps
# nothing (neither tables nor roles: no pg_dump options, no superuser).
ONLY_IN = {
    contract.AGE_RECIPIENTS: {"backup"},
    contract.AGE_IDENTITY: {"drill"},
    contract.DUMP_EXTRA_ARGS: {"backup"},
    contract.GLOBALS: {"backup"},
    contract.GLOBALS_ROLE_PASSWORDS: {"backup"},
    contract.SUPERUSER: {"backup"},
    contract.SUPERUSER_PASSWORD: {"backup"},
}
TABLE: dict[contract.Setting, str] = {
    contract.S3_BUCKET: "bkt-1",
    contract.S3_PREFIX: "p",
    contract.S3_ENDPOINT: "http://minio:9000",
    contract.S3_STORAGE_CLASS: "STANDARD_IA",
    contract.S3_SSE: "aws:kms",
    contract.S3_KMS_KEY_ID: "arn:aws:kms:eu-central-1:111122223333:key/abcd",
    contract.RETENTION_DAYS: "7",
    contract.RETENTION_GFS["daily"]: "7",
    contract.RETENTION_GFS["weekly"]: "4",
    contract.RETENTION_GFS["monthly"]: "12",
    contract.RETENTION_GFS["yearly"]: "3",
    contract.FORMAT: "custom",
    contract.COMPRESSION: "zstd",
    contract.COMPRESSION_LEVEL: "5",
    contract.LOG_FORMAT: "json",
    contract.DUMP_LOCK_WAIT: "12",
    contract.FLAG_SHRINK: "40",
    contract.DUMP_JOBS: "3",
    contract.RECORD_ROW_COUNTS: "true",  # verify.enabled
    contract.DUMP_EXTRA_ARGS: '["--no-owner", "--no-comments"]',  # backup pods only
    contract.PUSHGATEWAY: "http://prometheus-pushgateway.monitoring.svc:9091",
    contract.HEARTBEAT_URL: SECRETS[SECRET_REFS[contract.HEARTBEAT_URL]],
    contract.WEBHOOK_URL: SECRETS[SECRET_REFS[contract.WEBHOOK_URL]],
    contract.NOTIFY_SUCCESS: "true",
    contract.AGE_RECIPIENTS: AGE_PUBLIC,
    contract.AGE_IDENTITY: SECRETS[SECRET_REFS[contract.AGE_IDENTITY]],
    contract.GLOBALS: "true",
    contract.GLOBALS_ROLE_PASSWORDS: "true",
    contract.SUPERUSER: SECRETS[SECRET_REFS[contract.SUPERUSER]],
    contract.SUPERUSER_PASSWORD: SECRETS[SECRET_REFS[contract.SUPERUSER_PASSWORD]],
}
CONFIG = values(
    {
        "s3": {
            "bucket": "bkt-1",
            "prefix": "p",
            "endpoint": "http://minio:9000",
            "storageClass": "STANDARD_IA",
            "sse": "aws:kms",
            "kmsKeyId": "arn:aws:kms:eu-central-1:111122223333:key/abcd",
        },
        "backup": {
            "retentionDays": 7,
            "retention": {"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3},
            "format": "custom",
            "compression": "zstd",
            "compressionLevel": 5,
            "logFormat": "json",
            "lockWaitTimeoutSeconds": 12,
            "flagShrinkPercent": 40,
            "extraArgs": ["--no-owner", "--no-comments"],
            "globals": {
                "enabled": True,
                "includeRolePasswords": True,
                "superuserSecret": {"name": "pg-root", "usernameKey": "user", "passwordKey": "pass"},
            },
            "jobs": 3,
        },
        "monitoring": {
            "pushgateway": {"url": "http://prometheus-pushgateway.monitoring.svc:9091"},
            "heartbeat": {"urlSecret": {"name": "backup-notify", "key": "heartbeat"}},
            "webhook": {"urlSecret": {"name": "backup-notify", "key": "webhook"}, "notifySuccess": True},
        },
        "verify": {"enabled": True},
        "encryption": {"recipients": [AGE_PUBLIC], "identitySecret": {"name": "backup-age", "key": "identity"}},
    }
)


def test_the_table_covers_every_setting_the_manifests_set() -> None:
    assert set(TABLE) == {s for s in contract.SETTINGS if s.set_from}
    # a setting whose source is a Secret says so, and has a reference here
    assert {s for s in TABLE if s.set_from.startswith("secretKeyRef")} == set(SECRET_REFS)


def _resolved_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet gives it, for the Secrets in SECRETS."""
    env = {}
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            if (ref["name"], ref["key"]) in SECRETS:
                env[e["name"]] = SECRETS[(ref["name"], ref["key"])]
    return env


@pytest.mark.parametrize("kind", ["backup", "drill"])
def test_the_manifests_set_every_setting_of_the_table(kind: str, tmp_path: Path) -> None:
    out = render(CONFIG, tmp_path)
    name = "cnpg-backup-cnpg-pgdump-backup" + ("-drill" if kind == "drill" else "")
    [doc] = [d for d in out.kind("CronJob") if d["metadata"]["name"] == name]
    [spec] = pod_specs(doc)
    for container in spec.get("initContainers", []) + spec["containers"]:
        env = _resolved_env(container)
        expected = {s: v for s, v in TABLE.items() if kind in ONLY_IN.get(s, {kind})}
        assert {s: env.get(s.env) for s in TABLE if s.env in env} == expected, container["name"]
        # secretKeyRef settings are references, never literal values
        raw = {e["name"]: e for e in container["env"]}
        for setting, (secret, key) in SECRET_REFS.items():
            if setting not in expected:
                continue
            assert raw[setting.env] == {
                "name": setting.env,
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key}},
            }
    for url in SECRETS.values():
        assert url not in out.text


def _notifications(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool]]:
    """What the worker sends after a successful and a failed backup run with this environment."""
    for setting in (contract.HEARTBEAT_URL, contract.WEBHOOK_URL, contract.NOTIFY_SUCCESS):
        monkeypatch.delenv(setting.env, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sent: list[tuple[str, str, bool]] = []

    def send(url: str, what: str, data: bytes | None = None) -> bool:
        sent.append((what, url, data is not None))
        return True

    monkeypatch.setattr(notify, "_send", send)
    t = "2024-01-21T02:00:00+00:00"
    notify.after_backup("appdb", RunRecord("success", t, t, 1.0, key="p/appdb_2024-01-21_02-00-00.dump"))
    notify.after_backup("appdb", RunRecord("failure", t, t, 1.0, error="boom"))
    return sent


def test_every_setting_the_manifests_set_is_read_by_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    values = dict(TABLE)
    ns = _parse(["backup"], {s.env: v for s, v in values.items()}, monkeypatch)
    got = {
        contract.S3_BUCKET: ns.bucket,
        contract.S3_PREFIX: ns.prefix,
        contract.S3_ENDPOINT: ns.endpoint,
        contract.S3_STORAGE_CLASS: ns.storage_class,
        contract.S3_SSE: ns.sse,
        contract.S3_KMS_KEY_ID: ns.kms_key_id,
        contract.RETENTION_DAYS: str(ns.retention_days),
        **{contract.RETENTION_GFS[p]: str(getattr(ns, f"keep_{p}")) for p in ("daily", "weekly", "monthly", "yearly")},
        contract.FORMAT: ns.format,
        contract.COMPRESSION: ns.compression,
        contract.COMPRESSION_LEVEL: str(ns.compression_level),
        contract.LOG_FORMAT: ns.log_format,
        contract.DUMP_LOCK_WAIT: f"{ns.lock_wait_timeout:g}",
        contract.FLAG_SHRINK: str(ns.flag_shrink_percent),
        contract.DUMP_JOBS: str(ns.dump_jobs),
        contract.RECORD_ROW_COUNTS: str(ns.record_row_counts).lower(),
        contract.PUSHGATEWAY: ns.pushgateway,
        contract.AGE_RECIPIENTS: ns.age_recipient,
        contract.DUMP_EXTRA_ARGS: json.dumps(list(pg_dump_args(ns))),
        contract.GLOBALS: str(ns.with_globals).lower(),
        contract.GLOBALS_ROLE_PASSWORDS: str(ns.globals_role_passwords).lower(),
    }
    drill = _parse(["drill"], {s.env: v for s, v in values.items()}, monkeypatch)
    [identity] = identities(drill)
    got[contract.AGE_IDENTITY] = str(identity)
    # No flags: the superuser is read from the environment when roles are dumped or restored.
    got[contract.SUPERUSER], got[contract.SUPERUSER_PASSWORD] = worker_globals.superuser()
    # No flags: the notification settings are read from the environment after a backup run.
    sent = _notifications(
        {s.env: values[s] for s in (contract.HEARTBEAT_URL, contract.WEBHOOK_URL, contract.NOTIFY_SUCCESS)}, monkeypatch
    )
    heartbeats = [url for what, url, _ in sent if what == "heartbeat ping"]
    webhooks = [url for what, url, post in sent if what == "webhook" and post]
    got[contract.HEARTBEAT_URL] = heartbeats[0]
    assert heartbeats == [heartbeats[0], heartbeats[0] + "/fail"]
    got[contract.WEBHOOK_URL] = webhooks[0]
    got[contract.NOTIFY_SUCCESS] = "true" if len(webhooks) == 2 else "false"  # the success was posted too
    assert got == values
    # unset, the worker notifies no one, and without NOTIFY_SUCCESS it posts failures only
    assert _notifications({}, monkeypatch) == []
    only_failures = _notifications({contract.WEBHOOK_URL.env: values[contract.WEBHOOK_URL]}, monkeypatch)
    assert only_failures == [("webhook", values[contract.WEBHOOK_URL], True)]


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


@pytest.mark.parametrize(
    "backup, codec, level",
    [
        ({}, "gzip", 2),  # the chart's .sql.gz
        ({"format": "custom"}, "zstd", 2),  # pg_dump's own zlib is single-threaded
        ({"format": "custom", "compression": "gzip"}, "gzip", 2),
        ({"format": "plain", "compression": "zstd"}, "zstd", 2),
        # lz4 1.10's level 2 is a middle mode at twice pg_dump's CPU
        ({"format": "custom", "compression": "lz4"}, "lz4", 1),
        ({"format": "custom", "compression": "lz4", "compressionLevel": 2}, "lz4", 2),
        ({"format": "plain", "compressionLevel": 6}, "gzip", 6),
    ],
)
def test_an_unchosen_codec_and_level_follow_the_format_in_the_app_and_the_worker(
    backup: dict[str, Any], codec: str, level: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    [spec] = pod_specs(render(values({"backup": backup}), tmp_path).one("CronJob"))
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"] if "value" in e}
    assert (env[contract.COMPRESSION.env], env[contract.COMPRESSION_LEVEL.env]) == (codec, str(level))
    # the worker run without the app's variables resolves the same codec and level from the format alone
    fmt = backup.get("format", "plain")
    chosen = ["--compression", backup["compression"]] if "compression" in backup else []
    chosen += ["--compression-level", str(backup["compressionLevel"])] if "compressionLevel" in backup else []
    ns = _parse(["backup", *chosen], {contract.FORMAT.env: fmt}, monkeypatch)
    assert (ns.compression, ns.compression_level) == (codec, level)
    assert getattr(ns, "level_defaulted", False) is ("compressionLevel" not in backup)
    ns = _parse(["restore", "--object", "latest", "--format", fmt], {}, monkeypatch)
    assert ns.compression == contract.default_compression(fmt)
    assert ns.compression_level == contract.default_level(ns.compression)


def test_the_restore_args_the_app_writes_parse_in_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    request = Restore(
        object="appdb_2024-01-21_02-00-00.sql.gz",
        force=True,
        backup_before_restore=True,
        target_database="appdb_copy",
        allow_unverified=True,
        jobs=3,
        create_database=True,
        globals=True,
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
        ns.create,
        ns.globals,
    ) == (
        "restore",
        "appdb/appdb_2024-01-21_02-00-00.sql.gz",
        "restore-abc123",
        True,
        True,
        "appdb_copy",
        True,
        3,
        True,
        True,
    )
    ns = _parse(contract.wait_args(42), {}, monkeypatch)
    assert (ns.command, ns.timeout) == ("wait", 42)


def test_the_drill_args_the_app_writes_parse_in_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The drill CronJob passes no flags: the worker takes the database, bucket and prefix from the
    environment and drills `latest` (the newest complete, unflagged backup)."""
    env = {"PGDATABASE": "appdb", contract.S3_BUCKET.env: "bkt-1", contract.S3_PREFIX.env: "p"}
    ns = _parse(drill_args(), env, monkeypatch)
    assert (ns.command, ns.database, ns.bucket, ns.prefix, ns.object) == ("drill", "appdb", "bkt-1", "p", "latest")
