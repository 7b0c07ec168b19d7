"""The generated IAM policies and S3 lifecycle rules (app/aws_policy.py, app/aws_lifecycle.py), and
their commands. That MinIO enforces them as intended: tests/worker/test_iam_policy_minio.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from app import aws_lifecycle, aws_policy, cli
from app.config import Config
from app.targets import backup_targets
from app.values import config_from_values
from testsupport.app_helpers import REPO
from worker import metrics, naming, retention, uploads
from worker.restore import _ledger_key

BUCKET = "my-backups"


def _cfg(**values: Any) -> Config:
    base: dict[str, Any] = {"s3": {"bucket": BUCKET, "prefix": "prod"}, "cnpg": {"secretName": "app-app"}}
    for section, fields in values.items():
        base[section] = {**base.get(section, {}), **fields} if isinstance(fields, dict) else fields
    if "databases" not in values:
        base["cnpg"].setdefault("database", "appdb")
    return config_from_values(base)


TWO_DATABASES = {"databases": [{"name": "orders", "database": "orders"}, {"name": "users", "database": "users"}]}


def _matches(pattern: str, text: str) -> bool:
    """IAM's wildcard match (`*` any run, `?` one character, `${c}` the literal c)."""
    regex = ""
    for token in re.findall(r"\$\{.\}|\*|\?|.", pattern, flags=re.S):
        regex += {"*": ".*", "?": "."}.get(token, re.escape(token[2] if token.startswith("${") else token))
    return re.fullmatch(regex, text, flags=re.S) is not None


def allows(document: dict[str, Any], action: str, key: str | None = None, *, list_prefix: str | None = None) -> bool:
    """Whether the (Allow-only) policy grants `action` on object `key`, or ListBucket with `list_prefix`."""
    for st in document["Statement"]:
        assert st["Effect"] == "Allow"
        if action not in st["Action"]:
            continue
        arn = f"arn:aws:s3:::{BUCKET}" + ("" if key is None else f"/{key}")
        if not any(_matches(r, arn) for r in st["Resource"]):
            continue
        prefixes = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if prefixes is None or (list_prefix is not None and any(_matches(p, list_prefix) for p in prefixes)):
            return True
    return False


def _worker_keys(prefix: str, database: str) -> dict[str, str]:
    """Every kind of object the worker writes, named by the worker's own functions."""
    name = naming.new_backup_key(prefix, database, "plain", datetime(2024, 1, 21, 2, tzinfo=UTC))
    return {
        "backup": name.key,
        "manifest": name.manifest_key,
        "status": metrics.status_key(prefix, database),
        "reservation": naming.state_key(prefix, "keys", name.key.rsplit("/", 1)[-1]),
        "upload marker": uploads._marker_key(prefix, "upload-id"),
        "pending restore": retention.pending_key(prefix, name.key),
        "restore ledger": _ledger_key(prefix, "cnpg-backup-restore-1234abcd"),
    }


def _worker_listings(prefix: str, database: str) -> list[str]:
    return [
        naming.join(prefix, database + "_"),  # catalog.scan, bucket.check, open uploads
        naming.state_key(prefix, "pending") + "/",
        naming.state_key(prefix, "uploads") + "/",
        naming.state_key(prefix, "keys", database + "_"),
    ]


@pytest.mark.parametrize("values", [{}, TWO_DATABASES, {"s3": {"prefix": ""}}], ids=["one", "two", "no-prefix"])
def test_backup_policy_grants_every_key_the_worker_uses_under_each_prefix(values: dict[str, Any]) -> None:
    cfg = _cfg(**values)
    doc = aws_policy.policy(cfg, "backup")
    for t in backup_targets(cfg):
        for what, key in _worker_keys(t.prefix, t.database).items():
            for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
                assert allows(doc, action, key), (what, key, action)
        backup = _worker_keys(t.prefix, t.database)["backup"]
        assert allows(doc, "s3:AbortMultipartUpload", backup) and allows(doc, "s3:ListMultipartUploadParts", backup)
        for prefix in _worker_listings(t.prefix, t.database):
            assert allows(doc, "s3:ListBucket", list_prefix=prefix), prefix
    assert allows(doc, "s3:ListBucketMultipartUploads")


@pytest.mark.parametrize("role", aws_policy.ROLES)
def test_nothing_outside_the_databases_objects(role: aws_policy.Role) -> None:
    cfg = _cfg(**TWO_DATABASES)
    doc = aws_policy.policy(cfg, role)
    for key in ("prod/other/other_2024-01-21_02-00-00.sql.gz", "prod/orders/notes.txt", "elsewhere", "prod/x"):
        for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
            assert not allows(doc, action, key), (key, action)
    for prefix in ("", "prod/", "prod/orders/", "prod/other/", "prod/orders-old/orders_"):
        assert not allows(doc, "s3:ListBucket", list_prefix=prefix), prefix
    for st in doc["Statement"]:
        assert not any(a.endswith("*") for a in st["Action"]), st  # no s3:* / s3:Put*
        for resource in st["Resource"]:
            assert not resource.endswith(f":::{BUCKET}/*"), st  # no bucket-wide object grant
            assert resource.startswith(("arn:aws:s3:::my-backups", "arn:aws:kms:")), resource


def test_database_option_limits_to_one_entry(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _cfg(**TWO_DATABASES)
    doc = aws_policy.policy(cfg, "restore", "users")
    assert allows(doc, "s3:GetObject", _worker_keys("prod/users", "users")["backup"])
    assert not allows(doc, "s3:GetObject", _worker_keys("prod/orders", "orders")["backup"])
    assert [r["Filter"]["Prefix"] for r in aws_lifecycle.lifecycle(cfg, database="orders")["Rules"]] == [
        "prod/orders/orders_"
    ]
    code, out, err = _main(capsys, "iam-policy", "-f", str(REPO / "examples/values.yaml"), "--database", "appdb")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "--database: no databases[] entry named 'appdb' (known: none: the config names one database" in err


def test_restore_policy_reads_and_writes_only_its_own_records() -> None:
    doc = aws_policy.policy(_cfg(), "restore")
    keys = _worker_keys("prod", "appdb")
    for what, key in keys.items():
        assert allows(doc, "s3:GetObject", key), what
    writable = {what for what, key in keys.items() if allows(doc, "s3:PutObject", key)}
    assert writable == {"pending restore", "restore ledger"}
    deletable = {what for what, key in keys.items() if allows(doc, "s3:DeleteObject", key)}
    assert deletable == {"pending restore"}
    assert not allows(doc, "s3:AbortMultipartUpload", keys["backup"])
    assert not allows(doc, "s3:ListBucketMultipartUploads")
    assert allows(doc, "s3:ListBucket", list_prefix="prod/appdb_")  # `--object latest`
    assert allows(doc, "s3:ListBucket", list_prefix=keys["restore ledger"])  # a missing ledger reads as 404


@pytest.mark.parametrize(
    ("key_id", "resource", "alias"),
    [
        ("arn:aws:kms:eu-west-1:111122223333:key/1234abcd", "arn:aws:kms:eu-west-1:111122223333:key/1234abcd", None),
        ("1234abcd-12ab", "arn:aws:kms:eu-central-1:*:key/1234abcd-12ab", None),
        ("alias/backups", "arn:aws:kms:eu-central-1:*:key/*", "alias/backups"),
        (
            "arn:aws:kms:eu-west-1:111122223333:alias/backups",
            "arn:aws:kms:eu-west-1:111122223333:key/*",
            "alias/backups",
        ),
    ],
)
@pytest.mark.parametrize("role", aws_policy.ROLES)
def test_kms_statement_for_the_configured_key(
    role: aws_policy.Role, key_id: str, resource: str, alias: str | None
) -> None:
    cfg = _cfg(s3={"sse": "aws:kms", "kmsKeyId": key_id, "region": "eu-central-1"})
    (kms,) = [st for st in aws_policy.policy(cfg, role)["Statement"] if st["Action"][0].startswith("kms:")]
    assert kms["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"] and kms["Resource"] == [resource]
    assert kms["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-central-1.amazonaws.com"}
    assert kms["Condition"].get("ForAnyValue:StringEquals") == (alias and {"kms:ResourceAliases": [alias]})


@pytest.mark.parametrize("s3", [{"sse": "aws:kms"}, {"sse": "AES256"}, {}])
def test_no_kms_statement_without_a_customer_key(s3: dict[str, str]) -> None:
    doc = aws_policy.policy(_cfg(s3=s3), "backup")
    assert not [st for st in doc["Statement"] if any(a.startswith("kms:") for a in st["Action"])]


def test_china_partition_kms_service_domain() -> None:
    cfg = _cfg(s3={"sse": "aws:kms", "kmsKeyId": "k1", "region": "cn-north-1"})
    (kms,) = aws_policy.policy(cfg, "backup")["Statement"][3:]
    assert kms["Resource"] == ["arn:aws-cn:kms:cn-north-1:*:key/k1"]
    assert kms["Condition"]["StringEquals"] == {"kms:ViaService": "s3.cn-north-1.amazonaws.com.cn"}


def test_partition_and_wildcard_characters_are_literal() -> None:
    cfg = _cfg(s3={"region": "cn-north-1", "prefix": "a*b"}, cnpg={"database": "we?rd$db"})
    doc = aws_policy.policy(cfg, "backup")
    assert doc["Statement"][2]["Resource"][0] == "arn:aws-cn:s3:::my-backups/a${*}b/we${?}rd${$}db_*"
    assert doc["Statement"][0]["Condition"]["StringLike"]["s3:prefix"][0] == "a${*}b/we${?}rd${$}db_*"


def test_lifecycle_expires_after_retention_days_per_database() -> None:
    cfg = _cfg(backup={"retentionDays": 14}, **TWO_DATABASES)
    rules = aws_lifecycle.lifecycle(cfg)["Rules"]
    assert [r["Filter"] for r in rules] == [{"Prefix": "prod/orders/orders_"}, {"Prefix": "prod/users/users_"}]
    assert [r["ID"] for r in rules] == ["cnpg-backup-cnpg-pgdump-backup-orders", "cnpg-backup-cnpg-pgdump-backup-users"]
    for r in rules:
        assert r["Status"] == "Enabled" and r["Expiration"] == {"Days": 14}
        assert r["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    # the worker's records never expire: no rule matches them
    for key in _worker_keys("prod/orders", "orders").values():
        expiring = [r for r in rules if key.startswith(r["Filter"]["Prefix"])]
        assert bool(expiring) == (naming.STATE_DIR not in key), key


@pytest.mark.parametrize(
    ("backup", "note"),
    [({"retentionDays": 14, "retention": {"weekly": 4}}, "backup.retention"), ({"retentionDays": 0}, "keep all")],
)
def test_lifecycle_without_expiry_when_the_worker_must_decide(backup: dict[str, Any], note: str) -> None:
    cfg = _cfg(backup=backup)
    (rule,) = aws_lifecycle.lifecycle(cfg, abort_incomplete_days=5)["Rules"]
    assert "Expiration" not in rule and rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 5}
    assert any(note in n for n in aws_lifecycle.notes(cfg))


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[object, str, str]:
    try:
        code: object = cli.main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_the_documents_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--set", f"s3.bucket={BUCKET},s3.prefix=prod,cnpg.secretName=a,cnpg.database=appdb"]
    code, out, err = _main(capsys, "iam-policy", *base)
    assert code == 0 and json.loads(out) == aws_policy.policy(_cfg(), "backup") and err == ""
    code, out, err = _main(
        capsys, "iam-policy", "--role", "restore", *base, "--set", "restore.backupBeforeRestore=true"
    )
    assert code == 0 and json.loads(out)["Statement"][1]["Sid"] == "ReadBackupsAndRecords"
    assert err.startswith("note: restore.backupBeforeRestore is set") and err.count("\n") == 1
    code, out, err = _main(
        capsys, "lifecycle", *base, "--set", "backup.retentionDays=9", "--abort-incomplete-days", "3"
    )
    (rule,) = json.loads(out)["Rules"]
    assert (
        code == 0
        and rule["Expiration"] == {"Days": 9}
        and rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 3
    )
    assert all(line.startswith("note: ") for line in err.splitlines()) and "replaces" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["iam-policy", "--set", "backup.enabled=false"], "config error: s3.bucket: required for iam-policy"),
        (["lifecycle", "--set", "backup.enabled=false,s3.bucket=my-backups"], "config error: cnpg.database: required"),
        (
            ["lifecycle", "-f", str(REPO / "examples/values.yaml"), "--abort-incomplete-days", "0"],
            "--abort-incomplete-days: 0",
        ),
        (["iam-policy", "--role", "admin"], "invalid choice: 'admin'"),
    ],
)
def test_cli_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    code, out, err = _main(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and expected in err, err
