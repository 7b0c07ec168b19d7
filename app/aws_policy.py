"""Least-privilege IAM policies for the configured bucket and database prefixes
(`python -m app iam-policy --role backup|restore`).

Every action is one the worker performs (worker/s3.py `Bucket` is the complete list of its S3
calls); each statement's Sid says what it is for. S3 authorizes a multipart upload's
Create/UploadPart/Complete calls as s3:PutObject, HeadObject as s3:GetObject and a batch
DeleteObjects per key as s3:DeleteObject, so those three cover them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from .aws_keys import DatabaseKeys, database_keys

if TYPE_CHECKING:
    from .config import Config

Role = Literal["backup", "restore"]
ROLES: tuple[Role, ...] = ("backup", "restore")
# What AWS accepts in one managed policy (whitespace not counted); inline ones hold less.
MANAGED_POLICY_MAX_CHARS = 6144


def partition(region: str) -> str:
    """The ARN partition of an AWS region: China and GovCloud have their own."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def iam_literal(text: str) -> str:
    """`text` matched literally in an ARN or a StringLike condition: `*`, `?` and `$` are IAM
    wildcards / policy-variable syntax, so a prefix or database name holding them is escaped."""
    return "".join("${" + c + "}" if c in "*?$" else c for c in text)


def _under(prefixes: Iterable[str]) -> list[str]:
    return [iam_literal(p) + "*" for p in prefixes]


def _statement(sid: str, actions: list[str], resources: list[str], **condition: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        doc["Condition"] = condition
    return doc


def policy(cfg: Config, role: Role, database: str | None = None) -> dict[str, Any]:
    """The IAM policy document for `role`: `backup` is what the backup and drill pods need (the
    generated restore Job too: it uses the same credentials); `restore` is the read-mostly set for
    a separate identity that restores. `database`: only that databases[] entry's objects."""
    dbs = database_keys(cfg, "iam-policy", database)
    bucket_arn = f"arn:{partition(cfg.s3.region)}:s3:::{cfg.s3.bucket}"

    def objects(prefixes: Iterable[str]) -> list[str]:
        return [f"{bucket_arn}/{p}" for p in _under(prefixes)]

    backups = [d.backups for d in dbs]
    state = [d.state for d in dbs] + [d.globals for d in dbs]
    # S3 answers a GetObject/HeadObject of a missing key with 404 only to a caller allowed to list
    # that key (else 403): a first backup's status object, a new key and a restore ledger not yet
    # written must read as "not there", so both roles list the same prefixes per database.
    listing = _statement(
        "ListOnlyTheDatabasePrefixes",
        ["s3:ListBucket"],
        [bucket_arn],
        StringLike={"s3:prefix": _under(backups + state)},
    )
    if role == "backup":
        statements = [
            listing,
            # Not restricted by prefix: S3 offers no s3:prefix condition for this listing, which
            # shows the names of unfinished uploads (no contents); the worker aborts its own.
            _statement("FindAbandonedUploads", ["s3:ListBucketMultipartUploads"], [bucket_arn]),
            _statement(
                "WriteReadAndPruneBackupsAndRecords",
                [
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                objects(backups + state),
            ),
        ]
    else:
        statements = [
            listing,
            _statement("ReadBackupsAndRecords", ["s3:GetObject"], objects(backups + state)),
            # While a restore reads a backup, a pending-restore record keeps retention (the next
            # backup's prune) from deleting it; the restore removes the record when it ends.
            _statement(
                "AnnounceTheBackupBeingRestored",
                ["s3:PutObject", "s3:DeleteObject"],
                objects(d.state_of("pending") for d in dbs),
            ),
            # The declarative restore Job records its run, so a re-created Job fails instead of
            # restoring again over newer data.
            _statement("RecordTheRestoreRun", ["s3:PutObject"], objects(d.state_of("restores") for d in dbs)),
        ]
    kms = _kms_statement(cfg)
    if kms:
        statements.append(kms)
    return {"Version": "2012-10-17", "Statement": statements}


def _kms_statement(cfg: Config) -> dict[str, Any] | None:
    """With s3.sse aws:kms and a customer-managed key: both roles write objects (the restore its
    records), which needs kms:GenerateDataKey, and read them (and complete multipart uploads),
    which needs kms:Decrypt; S3 never calls kms:Encrypt for SSE-KMS. Only through S3
    (kms:ViaService). Without s3.kmsKeyId S3 uses the account's AWS-managed key `aws/s3`, whose key
    policy already lets the account's S3 users use it through S3: no statement then."""
    s3 = cfg.s3
    if s3.sse != "aws:kms" or not s3.kms_key_id:
        return None
    part = partition(s3.region)
    domain = "amazonaws.com.cn" if part == "aws-cn" else "amazonaws.com"
    condition: dict[str, Any] = {"StringEquals": {"kms:ViaService": f"s3.{s3.region}.{domain}"}}
    key = s3.kms_key_id
    if key.startswith("arn:") and ":alias/" not in key:
        resource = key
    elif key.startswith("alias/") or ":alias/" in key:
        # An alias is not a key ARN: allow the key(s) that carry the alias.
        region, account = (key.split(":")[3], key.split(":")[4]) if key.startswith("arn:") else (s3.region, "*")
        resource = f"arn:{part}:kms:{region}:{account}:key/*"
        alias = key[key.index("alias/") :]
        condition["ForAnyValue:StringEquals"] = {"kms:ResourceAliases": [alias]}
    else:  # a bare key id: unique, so any account of the partition
        resource = f"arn:{part}:kms:{s3.region}:*:key/{key}"
    return _statement("UseTheBucketKmsKeyThroughS3", ["kms:GenerateDataKey", "kms:Decrypt"], [resource], **condition)


def notes(cfg: Config, role: Role, document: dict[str, Any]) -> list[str]:
    """What the user must know besides the document (printed on stderr, the JSON stays clean)."""
    out = []
    if role == "restore" and cfg.restore.backup_before_restore:
        out.append("restore.backupBeforeRestore is set: that restore takes a backup first and needs the backup policy")
    size = len(json.dumps(document, separators=(",", ":")))
    if size > MANAGED_POLICY_MAX_CHARS:
        out.append(
            f"the policy is {size} characters, more than the {MANAGED_POLICY_MAX_CHARS} AWS accepts in one "
            "managed policy: split the databases over several configs (one policy each)"
        )
    return out


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


__all__ = ["ROLES", "DatabaseKeys", "Role", "notes", "partition", "policy", "render"]
