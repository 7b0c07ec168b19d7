"""S3 names: bucket, prefix, endpoint, region, storage class, restore object keys. The rules are
S3's own (bucket naming) or prevent keys that the worker and S3 would treat differently."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator

from .validation import rule, url_base_problem

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")


def bucket_problem(value: str) -> str | None:
    if not value:
        return None  # "required" is a cross-field rule: only when something runs
    hint = " (S3 bucket names: 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit)"
    if value.startswith("s3://"):
        return f"'{value}' is a URL; give only the bucket name, e.g. '{value[5:].split('/')[0]}'"
    if not 3 <= len(value) <= 63:
        return f"'{value}' must be 3 to 63 characters long" + hint
    if not _BUCKET.match(value):
        return f"'{value}' is not a valid bucket name" + hint
    if ".." in value:
        return f"'{value}' must not contain two adjacent periods"
    try:
        ipaddress.IPv4Address(value)
        return f"'{value}' must not be formatted as an IP address"
    except ValueError:
        pass
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if value.startswith(prefix):
            return f"'{value}' must not start with '{prefix}' (reserved by S3)"
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"):
        if value.endswith(suffix):
            return f"'{value}' must not end with '{suffix}' (reserved by S3)"
    return None


def prefix_problem(value: str) -> str | None:
    if value.startswith("/"):
        return f"'{value}' must not start with '/' (S3 keys are relative to the bucket: use '{value.lstrip('/')}')"
    if "//" in value:
        return f"'{value}' must not contain '//' (it would create an empty path segment)"
    if ".." in value:
        return f"'{value}' must not contain '..'"
    if any(ord(c) < 32 for c in value):
        return "must not contain control characters"
    return None


def _strip_trailing_slash(value: Any) -> Any:
    # `appdb/` and `appdb` mean the same folder; the worker adds the separator itself.
    return value.rstrip("/") if isinstance(value, str) and value.strip("/") else value


S3Prefix = Annotated[str, BeforeValidator(_strip_trailing_slash), rule(prefix_problem)]
S3Bucket = Annotated[str, rule(bucket_problem)]


def endpoint_problem(value: str) -> str | None:
    if not value:
        return None
    # Never echo a URL with credentials in it.
    parts, problem = url_base_problem(
        value,
        example="https://s3.eu-central-1.amazonaws.com",
        parse_example="http://minio.minio.svc.cluster.local:9000",
        credentials_hint="; put them in the S3 Secret",
    )
    if parts is None:
        return problem
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"'{value}' must not have a path, query or fragment; the bucket is s3.bucket and the folder is s3.prefix"
    return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "is not a valid URL (expected e.g. http://minio.minio.svc.cluster.local:9000)"
    if parts.username or parts.password:
        # Never echo the URL: it contains credentials.
        return "must not contain credentials (user:password@); put them in the S3 Secret"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"'{value}' must be an http:// or https:// URL with a host, e.g. https://s3.eu-central-1.amazonaws.com"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"'{value}' must not have a path, query or fragment; the bucket is s3.bucket and the folder is s3.prefix"
    return None


S3Endpoint = Annotated[str, rule(endpoint_problem)]


def region_problem(value: str) -> str | None:
    if not re.match(r"^[A-Za-z0-9-]+$", value):
        return f"'{value}' is not a valid region name (e.g. us-east-1)"
    return None


def storage_class_problem(value: str) -> str | None:
    if value and not re.match(r"^[A-Z0-9_]+$", value):
        return f"'{value}' is not an S3 storage class (e.g. STANDARD, STANDARD_IA, GLACIER_IR)"
    return None


S3Region = Annotated[str, rule(region_problem)]
S3StorageClass = Annotated[str, rule(storage_class_problem)]


def restore_object_problem(value: str) -> str | None:
    if not value:
        return None
    if value != value.strip():
        # The worker strips the key; a config that differs from what is restored (and a " latest"
        # that is not `latest`) must not pass review unnoticed.
        return f"{value!r} has leading or trailing spaces; remove them"
    if value.startswith("s3://"):
        without_scheme = value[5:]
        key = without_scheme.partition("/")[2]
        return (
            f"'{value}' is a URL; give the object key without 's3://' and the bucket name "
            f"(the bucket is s3.bucket), e.g. '{key or 'appdb/appdb_2024-01-21_02-00-00.sql.gz'}'"
        )
    if value.startswith("/"):
        return f"'{value}' must not start with '/' (S3 keys are relative to the bucket: use '{value.lstrip('/')}')"
    if value.endswith("/"):
        return f"'{value}' names a folder; give a backup file name, a full key, or 'latest'"
    if any(ord(c) < 32 for c in value) or len(value.encode()) > 1024:
        return "is not a valid S3 object key (control characters or longer than 1024 bytes)"
    return None


RestoreObject = Annotated[str, rule(restore_object_problem)]
