"""Multipart uploads left open by a killed worker (SIGKILL, OOM, node loss) are cleaned up here.

An open upload is invisible to `list` and to restores, but it holds storage. A running backup keeps
a small heartbeat object under `<prefix>/.cnpg-backup/uploads/`; an upload whose heartbeat is older
than the stale age (or that has none and is older than a day) was abandoned, and the next backup or
`prune` of the same database aborts it. Uploads of other databases and other tools are left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime, timedelta
from typing import Any, cast

from . import log, naming
from .errors import WorkerError
from .s3 import Bucket, hostname, utcnow

UNKNOWN_UPLOAD_AGE = timedelta(hours=24)


def stale_after() -> timedelta:
    return timedelta(seconds=float(os.environ.get("CNPG_BACKUP_STALE_UPLOAD_SECONDS", "300")))


def _marker_key(prefix: str, upload_id: str) -> str:
    digest = hashlib.sha256(upload_id.encode()).hexdigest()[:24]
    return naming.state_key(prefix, "uploads", f"{digest}.json")


class Heartbeat:
    def __init__(self, bucket: Bucket, prefix: str, key: str, upload_id: str) -> None:
        self.bucket, self.key, self.upload_id = bucket, key, upload_id
        self.marker = _marker_key(prefix, upload_id)
        self.interval = max(1.0, stale_after().total_seconds() / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="upload-heartbeat")

    def _beat(self) -> None:
        doc = {
            "key": self.key,
            "upload_id": self.upload_id,
            "host": hostname(),
            "pid": os.getpid(),
            "heartbeat": utcnow().isoformat(),
        }
        self.bucket.put_bytes(self.marker, json.dumps(doc).encode())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except WorkerError as exc:  # a missed beat only risks an early cleanup by another run
                log.warning("upload heartbeat failed", key=self.key, error=str(exc))

    def start(self) -> Heartbeat:
        # The marker matters only if this worker dies: an S3 blip on the first beat must not fail a
        # backup the upload's own retries would carry through; the thread beats again soon.
        try:
            self._beat()
        except WorkerError as exc:
            log.warning("upload heartbeat failed; retrying in the background", key=self.key, error=str(exc))
        self._thread.start()
        return self

    def stop(self, remove: bool) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if remove:
            try:
                self.bucket.delete([self.marker])
            except WorkerError:
                pass


def _ours(key: str, prefix: str, database: str) -> bool:
    """A backup key of this database, or one of a parallel backup's parts (worker/parallel.py)."""
    part = naming.part_of(key)
    return naming.parse(part[0] if part else key, prefix, database) is not None


def abort_stale(bucket: Bucket, prefix: str, database: str, *, dry_run: bool = False) -> list[str]:
    """Abort this database's abandoned multipart uploads; return their keys.

    Uploads are found two ways: S3's upload listing by prefix (AWS), and this tool's own heartbeat
    markers, which name key and upload id. The markers matter because some S3-compatible servers
    (MinIO among them) list uploads only for an exact key, never for a prefix.
    """
    now = utcnow()
    candidates: dict[str, tuple[str, datetime | None]] = {}
    initiated: datetime | None
    for key, upload_id, initiated in bucket.open_uploads(naming.join(prefix, database + "_")):
        candidates[upload_id] = (key, initiated)
    markers: dict[str, dict[str, Any]] = {}
    for obj in bucket.list_objects(naming.state_key(prefix, "uploads") + "/"):
        try:
            doc = json.loads(bucket.get_bytes(obj.key))
        except (WorkerError, ValueError):
            continue
        if isinstance(doc, dict) and _ours(str(doc.get("key", "")), prefix, database):
            markers[doc["upload_id"]] = doc
            candidates.setdefault(doc["upload_id"], (doc["key"], None))
    aborted = []
    for upload_id, (key, initiated) in candidates.items():
        if not _ours(key, prefix, database):
            continue
        marker = markers.get(upload_id)
        if marker:
            stale = now - datetime.fromisoformat(marker["heartbeat"]) > stale_after()
        else:
            stale = initiated is not None and now - initiated > UNKNOWN_UPLOAD_AGE
        if not stale:
            continue
        if not dry_run:
            try:
                bucket.abort_upload(key, upload_id)
            except WorkerError as exc:
                if "NoSuchUpload" not in str(exc):
                    raise
            if marker:
                bucket.delete([_marker_key(prefix, upload_id)])
        log.info(
            "aborted abandoned multipart upload" if not dry_run else "would abort abandoned multipart upload",
            # without a marker, `stale` above holds only when `initiated` is set
            key=key,
            started=marker["heartbeat"] if marker else cast(datetime, initiated).isoformat(),
        )
        aborted.append(key)
    _remove_old_reservations(bucket, prefix, database, now, dry_run)
    return aborted


def _remove_old_reservations(bucket: Bucket, prefix: str, database: str, now: datetime, dry_run: bool) -> None:
    # A key reservation matters only in the second it names (later backups take later seconds); one
    # left by a run that could not reach S3 at its end is removed once it is as old as a stale upload.
    old = [
        o.key
        for o in bucket.list_objects(naming.state_key(prefix, "keys", database + "_"))
        if naming.parse(naming.join(prefix, o.key.rsplit("/", 1)[-1]), prefix, database)
        and now - o.last_modified > stale_after()
    ]
    if old and not dry_run:
        bucket.delete(old)
