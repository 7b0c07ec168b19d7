"""One backup's life in the bucket, in barman's manner: reserve the key, open the multipart upload
with its heartbeat, stream parts, then either publish (write the manifest, complete the upload) or
abort — and in every case release the reservation.

    with BackupSession(bucket, prefix, database, fmt, started, part_size) as session:
        session.write(data) ...
        session.publish(manifest)

Leaving the block without `publish()` (an error, SIGTERM) aborts the upload: no object appears.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from . import log, naming, uploads
from .errors import WorkerError
from .manifest import Manifest
from .s3 import Bucket, MultipartUpload


class BackupSession:
    def __init__(
        self,
        bucket: Bucket,
        prefix: str,
        database: str,
        fmt: str,
        started: datetime,
        part_size: int,
        concurrency: int,
        compression: str = "gzip",
        encrypted: bool = False,
    ) -> None:
        self.bucket, self.prefix, self.database, self.format = bucket, prefix, database, fmt
        self.compression, self.encrypted = compression, encrypted
        self.started, self.part_size, self.concurrency = started, part_size, concurrency
        self.name: naming.BackupName | None = None
        self._lock: str | None = None
        self._upload: MultipartUpload | None = None
        self._heartbeat: uploads.Heartbeat | None = None

    # --- the key ---------------------------------------------------------------------------

    def reserve(self) -> naming.BackupName:
        """Claim the key before uploading, so two backups started in the same second (a manual run
        next to the CronJob's) never write the same key, one silently replacing the other: the
        loser moves to the next second."""
        for offset in range(10):
            name = naming.new_backup_key(
                self.prefix,
                self.database,
                self.format,
                self.started + timedelta(seconds=offset),
                self.compression,
                self.encrypted,
            )
            lock = naming.state_key(self.prefix, "keys", name.key.rsplit("/", 1)[-1])
            # The lock first, then the key: a backup holds its lock until its object is complete,
            # so once the lock is ours the key is either free or taken for good. (Key first let a
            # run see it free, then take the lock its owner had just released after completing.)
            if self.bucket.try_create(lock, b"reserved"):
                if self.bucket.head(name.key) is None:
                    self.name, self._lock = name, lock
                    return name
                try:
                    self.bucket.delete([lock])
                except WorkerError:
                    pass  # a leftover reservation blocks nothing: its second has passed
        raise WorkerError(
            f"could not reserve a backup key for {self.database!r} under s3://{self.bucket.loc.bucket}/{self.prefix}",
            hint="ten backups of this database started within ten seconds; retry later",
        )

    # --- the upload --------------------------------------------------------------------------

    def __enter__(self) -> BackupSession:
        name = self.name or self.reserve()
        try:
            self._upload = MultipartUpload(
                self.bucket.client,
                self.bucket.loc,
                name.key,
                part_size=self.part_size,
                concurrency=self.concurrency,
                metadata={"database": self.database, "tool": "cnpg-pgdump-backup"},
            )
            self._upload.start()
            assert self._upload.upload_id is not None  # start() set it or raised
            self._heartbeat = uploads.Heartbeat(self.bucket, self.prefix, name.key, self._upload.upload_id).start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    @property
    def bytes_sent(self) -> int:
        return self._upload.bytes_sent if self._upload else 0

    def write(self, data: bytes) -> None:
        assert self._upload is not None
        self._upload.write(data)

    def complete(self) -> None:
        """Make the object appear (a parallel backup's part: its manifest is the backup's)."""
        assert self._upload is not None
        self._upload.complete()

    def publish(self, manifest: Manifest) -> None:
        """Write the manifest, then make the object appear. In that order a listing never sees the
        object without its manifest (it would read as an unverified backup for a moment), while a
        manifest without its object is nothing to a listing or a restore: both start from objects.
        If the object cannot be made to appear, its manifest is removed again."""
        assert self._upload is not None and self.name is not None
        # If-None-Match: the key is reserved, so a manifest already there is someone else's
        self.bucket.put_bytes(self.name.manifest_key, manifest.to_json(), if_none_match=True)
        try:
            self.complete()
        except BaseException:
            try:
                self.bucket.delete([self.name.manifest_key])
            except WorkerError as exc:
                log.warning(
                    "could not remove the manifest of an object that never appeared; it names no object "
                    "and nothing reads it",
                    key=self.name.manifest_key,
                    error=str(exc),
                )
            raise

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        upload = self._upload
        try:
            if upload is not None and not upload.finished:
                upload.abort()
        finally:
            if self._heartbeat is not None:
                # An upload whose abort failed keeps its marker: on MinIO the marker is the only way
                # the next run's abort_stale() finds it (uploads are not listable by prefix there).
                self._heartbeat.stop(remove=upload is not None and upload.finished)
            if self._lock is not None:
                try:
                    self.bucket.delete([self._lock])
                except WorkerError:
                    pass  # a leftover reservation blocks nothing: its second has passed
