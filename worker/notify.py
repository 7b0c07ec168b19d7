"""Telling someone: a heartbeat ping (healthchecks.io style) and a webhook message (generic JSON
with a `text` field, which Slack and Mattermost incoming webhooks accept) after a backup run.

Both URLs usually carry a secret (a check UUID, a webhook token): they come from the environment
(the manifests fill it from a Secret), are registered for redaction, and only their host is
logged. A notification that cannot be delivered is a warning: it never changes the run's outcome.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from . import contract, log
from .metrics import RunRecord

HEARTBEAT_ENV = contract.HEARTBEAT_URL.env
WEBHOOK_ENV = contract.WEBHOOK_URL.env
NOTIFY_SUCCESS_ENV = contract.NOTIFY_SUCCESS.env


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


def _send(url: str, what: str, data: bytes | None = None) -> bool:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - http(s) checked by the caller
            resp.read(1024)
        return True
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "code", None) or exc
        log.warning(f"{what} to {_host(url)} failed: {log.redact(str(reason))}")
        return False


def _checked(env: str) -> str | None:
    url = os.environ.get(env, "").strip()
    if not url:
        return None
    log.register_secret(url)
    if not url.startswith(("http://", "https://")):
        log.warning(f"{env} is not an http(s) URL; not notifying")
        return None
    return url


def after_backup(database: str, run: RunRecord) -> None:
    heartbeat = _checked(HEARTBEAT_ENV)
    if heartbeat:
        # healthchecks.io: GET <url> signals success, <url>/fail a failure
        url = heartbeat if run.outcome == "success" else heartbeat.rstrip("/") + "/fail"
        if _send(url, "heartbeat ping"):
            log.info("heartbeat sent", host=_host(heartbeat), outcome=run.outcome)
    webhook = _checked(WEBHOOK_ENV)
    notify_success = os.environ.get(NOTIFY_SUCCESS_ENV, "").lower() in ("1", "true", "yes")
    if webhook and (run.outcome != "success" or notify_success):
        if run.outcome == "success":
            text = f"backup of {database} succeeded: {run.key} ({log.human_bytes(run.stored_bytes)})"
            if run.flags:
                text += f", flagged: {'; '.join(run.flags)}"
        else:
            text = f"backup of {database} FAILED: {run.error}"
        body = {"text": text, "database": database, "outcome": run.outcome, "key": run.key, "error": run.error}
        if _send(webhook, "webhook", json.dumps(body).encode()):
            log.info("webhook notified", host=_host(webhook), outcome=run.outcome)


def after_drill(database: str, drill: dict[str, Any]) -> None:
    """A failed drill is worth a message (and a /fail ping) as much as a failed backup."""
    ok = drill.get("outcome") == "success"
    run = RunRecord(
        "success" if ok else "failure",
        str(drill.get("started_at", "")),
        str(drill.get("finished_at", "")),
        float(drill.get("duration_s", 0)),
        key=str(drill.get("key", "")),
        error=f"restore drill: {drill.get('error', '')}" if not ok else "",
    )
    webhook = _checked(WEBHOOK_ENV)
    if webhook and not ok:
        text = f"restore drill of {database} FAILED: {drill.get('error', '')}"
        body = {"text": text, "database": database, "outcome": "drill-failure", "key": run.key, "error": run.error}
        if _send(webhook, "webhook", json.dumps(body).encode()):
            log.info("webhook notified", host=_host(webhook), outcome="drill-failure")
    heartbeat = _checked(HEARTBEAT_ENV)
    if heartbeat and not ok:  # a passing drill does not stand in for the backup's own heartbeat
        if _send(heartbeat.rstrip("/") + "/fail", "heartbeat ping"):
            log.info("heartbeat sent", host=_host(heartbeat), outcome="drill-failure")
