"""S3 access: streaming multipart upload with explicit abort, paged listing (the client: worker/s3_client.py).

Modelled on barman's cloud layer: one class per concern, and an upload that either completes whole
or is aborted, so no partial object can ever appear under a backup's key.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from . import log
from .errors import WorkerError
from .s3_client import S3Location, describe, errors, make_client

if TYPE_CHECKING:
    import botocore.exceptions


MiB = 1024 * 1024
MIN_PART = 8 * MiB
MAX_PART = 5 * 1024 * MiB
MAX_PARTS = 10_000
# Parts are numbered from 1; keep a margin under the hard limit for the growth schedule below.
_PART_BUDGET = 9_000


class MultipartUpload:
    """Streams parts to one key; `complete()` makes the object appear, `abort()` discards every part.

    Parts are uploaded by `concurrency` threads from a bounded queue, so memory stays at roughly
    (queue depth + concurrency + 1) × (part size + one chunk) whatever the dump's size, and compression overlaps
    with uploading. Part size grows as parts accumulate so that even a dump far larger than the
    estimate stays under S3's 10,000-part limit.
    """

    def __init__(
        self,
        client: Any,
        loc: S3Location,
        key: str,
        *,
        part_size: int = MIN_PART,
        concurrency: int = 2,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.client, self.loc, self.key = client, loc, key
        self.part_size = max(MIN_PART, min(part_size, MAX_PART))
        self._concurrency = concurrency
        self._metadata = metadata or {}
        self._pending: list[bytes] = []  # chunks of the next part, not yet joined
        self._pending_bytes = 0
        self._parts: dict[int, str] = {}
        self._next_part = 1
        self._queue: queue.Queue[tuple[int, bytes | bytearray] | None] = queue.Queue(maxsize=concurrency)
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self.upload_id: str | None = None
        self.bytes_sent = 0
        self.finished = False

    def start(self) -> MultipartUpload:
        args = {"Bucket": self.loc.bucket, "Key": self.key, "Metadata": self._metadata, **self.loc.write_args()}
        if self.loc.storage_class:
            args["StorageClass"] = self.loc.storage_class
        try:
            self.upload_id = self.client.create_multipart_upload(**args)["UploadId"]
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
            raise describe(exc, bucket=self.loc.bucket, key=self.key) from None
        for i in range(self._concurrency):
            t = threading.Thread(target=self._worker, name=f"s3-upload-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            number, data = item
            try:
                if self._error is None:
                    resp = self.client.upload_part(
                        Bucket=self.loc.bucket,
                        Key=self.key,
                        UploadId=self.upload_id,
                        PartNumber=number,
                        Body=data,
                    )
                    with self._lock:
                        self._parts[number] = resp["ETag"]
                        self.bytes_sent += len(data)
            except BaseException as exc:  # noqa: BLE001 - surfaced by write()/complete()
                with self._lock:
                    if self._error is None:
                        self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            raise describe(self._error, bucket=self.loc.bucket, key=self.key) from None

    def _grow(self) -> None:
        # Double the part size every 1,000 parts past the budget's share: 8 MiB parts for the first
        # ~8 GB, then 16, 32 ... MiB. 9,000 parts reach far beyond S3's 5 TiB object limit.
        if self._next_part > 1 and (self._next_part - 1) % 1000 == 0 and self.part_size < MAX_PART:
            self.part_size = min(self.part_size * 2, MAX_PART)

    def _put(self, data: bytes | bytearray) -> None:
        if self._next_part > _PART_BUDGET:
            raise WorkerError(f"upload to s3://{self.loc.bucket}/{self.key} exceeded {_PART_BUDGET} parts")
        # A bounded put: blocks while `concurrency` parts are in flight, so memory stays bounded.
        while True:
            self._check()
            try:
                self._queue.put((self._next_part, data), timeout=1)
                break
            except queue.Full:
                continue
        self._next_part += 1
        self._grow()

    def write(self, data: bytes) -> None:
        """Queue `data` for upload. A part is cut at the first chunk boundary past `part_size` (S3
        wants parts of at least 5 MiB, not of one size), so its bytes are copied once, by the join,
        rather than appended to a buffer and sliced out again: at dump speed each copy of the
        stream costs about as much CPU as a SHA-256 pass over it."""
        self._check()
        if not data:
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= self.part_size:
            self._put(self._take())

    def _take(self) -> bytes:
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        return bytes(pending[0]) if len(pending) == 1 else b"".join(pending)

    def _drain(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()
        self._threads.clear()

    def complete(self, *, if_none_match: bool = True) -> None:
        if self._pending or self._next_part == 1:
            self._put(self._take())
        self._drain()
        self._check()
        parts = [{"PartNumber": n, "ETag": self._parts[n]} for n in sorted(self._parts)]
        args = {
            "Bucket": self.loc.bucket,
            "Key": self.key,
            "UploadId": self.upload_id,
            "MultipartUpload": {"Parts": parts},
        }
        if if_none_match:
            # Never replace an existing backup: two runs in the same second must not lose one.
            args["IfNoneMatch"] = "*"
        try:
            self.client.complete_multipart_upload(**args)
        except Exception as exc:  # noqa: BLE001
            raise describe(exc, bucket=self.loc.bucket, key=self.key) from None
        self.finished = True

    def abort(self) -> None:
        """Discard every uploaded part. Safe to call more than once and after a failure."""
        if self.finished or self.upload_id is None:
            return
        with self._lock:
            if self._error is None:
                self._error = WorkerError("upload aborted")
        # Unblock and stop the upload threads without waiting on a part that is still sending.
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
        for t in self._threads:
            t.join(timeout=15)
        for attempt in range(3):
            try:
                self.client.abort_multipart_upload(Bucket=self.loc.bucket, Key=self.key, UploadId=self.upload_id)
                self.finished = True
                log.info("aborted multipart upload", key=self.key)
                return
            except Exception as exc:  # noqa: BLE001
                if attempt == 2:
                    log.warning(
                        "could not abort multipart upload; the next backup or prune removes it",
                        key=self.key,
                        error=str(describe(exc, bucket=self.loc.bucket, key=self.key)),
                    )
                time.sleep(1 + attempt)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


def _not_found(exc: botocore.exceptions.ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class Bucket:
    """The few object operations the worker needs, each failing with one clear line."""

    def __init__(self, loc: S3Location, client: Any = None) -> None:
        self.loc = loc
        self._client = client
        self._making: threading.Thread | None = None
        self._made: list[Any] = []  # the client, or why it could not be made

    def prepare(self) -> Bucket:
        """Make the client on a thread from now on; the first request waits for it."""
        if self._client is None and self._making is None:

            def make() -> None:
                try:
                    self._made.append(make_client(self.loc))
                except Exception as exc:  # noqa: BLE001 - raised by the first request, in its thread
                    self._made.append(exc)

            self._making = threading.Thread(target=make, name="s3-client", daemon=True)
            self._making.start()
        return self

    @property
    def client(self) -> Any:
        if self._client is None:
            if self._making is None:
                try:
                    self._client = make_client(self.loc)
                except Exception as exc:  # noqa: BLE001 - e.g. AWS_CA_BUNDLE naming no file
                    raise describe(exc, bucket=self.loc.bucket) from None
            else:
                while self._making.is_alive():
                    self._making.join(0.5)  # in slices: SIGTERM's handler must be able to run
                if isinstance(self._made[0], Exception):
                    raise describe(self._made[0], bucket=self.loc.bucket) from None
                self._client = self._made[0]
        return self._client

    def _fail(self, exc: BaseException, key: str | None = None) -> WorkerError:
        return describe(exc, bucket=self.loc.bucket, key=key)

    def check(self, prefix: str = "") -> None:
        """Fail early with the real reason: a listing (unlike HEAD) returns S3's error code, and proves
        the ListBucket permission that `list`, `latest` and retention need anyway."""
        try:
            self.client.list_objects_v2(Bucket=self.loc.bucket, Prefix=prefix, MaxKeys=1)
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, errors.ClientError) and exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                raise WorkerError(f"S3 bucket {self.loc.bucket!r} does not exist", hint="check s3.bucket") from None
            raise self._fail(exc) from None

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under `prefix`, across as many pages as S3 returns (no 1,000-object cap)."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.loc.bucket, Prefix=prefix):
                for o in page.get("Contents", []):
                    yield ObjectInfo(o["Key"], o["Size"], o["LastModified"])
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, prefix or None) from None

    def head(self, key: str) -> ObjectInfo | None:
        try:
            r = self.client.head_object(Bucket=self.loc.bucket, Key=key)
        except errors.ClientError as exc:
            if _not_found(exc):
                return None
            raise self._fail(exc, key) from None
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, key) from None
        return ObjectInfo(key, r["ContentLength"], r["LastModified"])

    def get_bytes(self, key: str) -> bytes:
        data = self.get_if_exists(key)
        if data is None:
            raise WorkerError(
                f"s3://{self.loc.bucket}/{key} does not exist", hint="list the backups with `cnpg-backup-worker list`"
            )
        return data

    def get_if_exists(self, key: str) -> bytes | None:
        """The object's bytes, or None only when S3 says it does not exist. Any other failure
        (throttling, 5xx after retries, access denied) raises: callers must not mistake "could not
        read" for "not there" (a manifest read that failed would make a good backup look untrusted)."""
        try:
            return cast(bytes, self.client.get_object(Bucket=self.loc.bucket, Key=key)["Body"].read())
        except errors.ClientError as exc:
            if _not_found(exc):
                return None
            raise self._fail(exc, key) from None
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, key) from None

    def get_json(self, key: str) -> dict[str, Any] | None:
        data = self.get_if_exists(key)
        return None if data is None else json.loads(data)

    def stream(self, key: str, chunk: int = 1 * MiB) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.loc.bucket, Key=key)["Body"]
            yield from body.iter_chunks(chunk)
        except WorkerError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, key) from None

    def put_bytes(
        self, key: str, data: bytes, *, if_none_match: bool = False, content_type: str = "application/json"
    ) -> None:
        args = {"Bucket": self.loc.bucket, "Key": key, "Body": data, "ContentType": content_type}
        args.update(self.loc.write_args())
        if if_none_match:
            args["IfNoneMatch"] = "*"
        try:
            self.client.put_object(**args)
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, key) from None

    def try_create(self, key: str, data: bytes) -> bool:
        """Create `key` only if it does not exist (If-None-Match: *); False when it already did."""
        try:
            self.client.put_object(Bucket=self.loc.bucket, Key=key, Body=data, IfNoneMatch="*", **self.loc.write_args())
            return True
        except errors.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise self._fail(exc, key) from None
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, key) from None

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            try:
                resp = self.client.delete_objects(Bucket=self.loc.bucket, Delete={"Objects": batch, "Quiet": True})
            except Exception as exc:  # noqa: BLE001
                raise self._fail(exc, batch[0]["Key"]) from None
            if resp.get("Errors"):
                e = resp["Errors"][0]
                raise WorkerError(
                    f"S3 refused to delete s3://{self.loc.bucket}/{e.get('Key')}: {e.get('Code')} {e.get('Message', '')}"
                )

    def open_uploads(self, prefix: str) -> Iterator[tuple[str, str, datetime]]:
        """(key, upload id, initiated) of every unfinished multipart upload under `prefix`."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.loc.bucket, Prefix=prefix):
                for u in page.get("Uploads", []):
                    yield u["Key"], u["UploadId"], u["Initiated"]
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, prefix or None) from None

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.loc.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, key) from None


def utcnow() -> datetime:
    return datetime.now(UTC)


def hostname() -> str:
    return socket.gethostname()
