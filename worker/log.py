"""Logging: one line per phase, as text or JSON, with every known secret redacted.

Redaction is defence in depth: no code path logs a password on purpose, but a library error message
(a connection string, a signed URL) could carry one, so every record is scrubbed before it is written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

_SECRET_ENV = (
    "PGPASSWORD",
    "CNPG_BACKUP_SUPERUSER_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "CNPG_BACKUP_AGE_IDENTITY",
)
_secrets: set[str] = set()


_patterns: dict[str, re.Pattern[str]] = {}
# A secret this long is redacted wherever it appears; a shorter one only as a whole word, so a
# password like "test" does not turn "latest" into "la***" (and leak that the password is "test").
_ANYWHERE = 12


def register_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        _secrets.add(value)
        if len(value) < _ANYWHERE:
            _patterns[value] = re.compile(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])")


def redact(text: str) -> str:
    for s in _secrets:
        if s in text:
            pattern = _patterns.get(s)
            text = pattern.sub("***", text) if pattern else text.replace(s, "***")
    return text


class Bytes(int):
    """A byte count: human in text logs ("13.1MiB"), a number in JSON logs."""

    def __str__(self) -> str:
        n = float(self)
        for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(n) < 1024 or unit == "TiB":
                return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
            n /= 1024
        return f"{n:.1f}TiB"  # pragma: no cover - the loop returns

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)  # width/alignment apply to the human form


class Seconds(float):
    """A duration: "12.3s" in text logs, a number of seconds in JSON logs."""

    def __str__(self) -> str:
        return f"{float(self):.1f}s"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class Rate(float):
    """Throughput in MB/s: "123.4MB/s" in text logs, a number (MB/s) in JSON logs."""

    def __str__(self) -> str:
        return f"{float(self):.1f}MB/s"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        fields = getattr(record, "fields", None) or {}
        extra = "".join(f" {k}={v}" for k, v in fields.items())
        text = f"{ts} {record.levelname} {record.getMessage()}{extra}"
        if record.exc_info:  # only with -v: the traceback, scrubbed like every other line
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        doc.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        # Redact before encoding: JSON escapes a secret holding `"`, `\` or control characters, and
        # the escaped form would no longer match.
        doc = {k: redact(v) if isinstance(v, str) else v for k, v in doc.items()}
        return redact(json.dumps(doc, default=lambda o: redact(str(o)), ensure_ascii=False))


log = logging.getLogger("cnpg-backup-worker")


def setup(fmt: str = "text", verbose: bool = False) -> None:
    for name in _SECRET_ENV:
        register_secret(os.environ.get(name))
    # the age identity file: each key line on its own too, so a message quoting one line is caught
    for line in os.environ.get("CNPG_BACKUP_AGE_IDENTITY", "").splitlines():
        if line.strip().startswith("AGE-SECRET-KEY-"):
            register_secret(line.strip())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    # boto's own debug logs print request headers; keep them quiet whatever the root level is.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def info(msg: str, **fields: object) -> None:
    log.info(msg, extra={"fields": fields})


def warning(msg: str, **fields: object) -> None:
    log.warning(msg, extra={"fields": fields})


def error(msg: str, **fields: object) -> None:
    log.error(msg, extra={"fields": fields})


def human_bytes(n: float) -> Bytes:
    return Bytes(int(n))


def seconds(s: float) -> Seconds:
    return Seconds(round(s, 3))


def rate(nbytes: int, seconds: float) -> Rate:
    return Rate(round(nbytes / max(seconds, 1e-6) / 1e6, 1))
