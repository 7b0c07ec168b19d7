"""Backup: `pg_dump` stdout → gzip → SHA-256 → S3 multipart upload, with bounded memory.

The object appears only when everything succeeded: pg_dump exited 0, its output ended with the
dump-complete trailer, every part uploaded. Any failure on the way, including SIGTERM from an
evicted pod, aborts the multipart upload, so no partial object is ever visible. The manifest is
written last; a backup without one is never trusted.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from io import BufferedReader
from typing import cast

from . import contract, log, naming, pg, uploads
from .compress import compressor
from .errors import WorkerError
from .manifest import Manifest
from .procs import StderrTail, child_options, kill, widen_pipe
from .s3 import MIN_PART, Bucket, MiB, MultipartUpload, utcnow

READ_CHUNK = 1 * MiB
PROGRESS_EVERY = 30.0  # seconds between progress lines during long dumps
# A plain dump that finished ends with this comment (followed, from 17.6 on, by `\unrestrict`).
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"
CUSTOM_MAGIC = b"PGDMP"


@dataclass
class BackupOptions:
    prefix: str
    database: str
    format: str = contract.DEFAULT_FORMAT
    compression_level: int = contract.DEFAULT_COMPRESSION_LEVEL
    upload_concurrency: int = 2


def _part_size(estimate: int) -> int:
    # Memory is (queue depth + uploads in flight + 1) x part size, so the part size must not follow
    # the database's size: always start at MIN_PART. The upload doubles its part size every 1,000
    # parts, which alone keeps any dump under S3's 10,000-part limit (8 GiB at 8 MiB parts, then
    # 16 GiB more at 16 MiB, ... about 4 TiB in 9,000 parts).
    return MIN_PART


def dump_command(client: pg.Client, fmt: str) -> list[str]:
    # The database name comes from PGDATABASE and the password from PGPASSWORD: neither on argv.
    cmd = [client.tool("pg_dump"), "--no-password"]
    cmd += ["--format=custom"] if fmt == "custom" else ["--format=plain"]
    return cmd


def _reserve_key(bucket: Bucket, opts: BackupOptions, started: datetime) -> tuple[naming.BackupName, str]:
    """Claim this backup's key before uploading, so two backups started in the same second (a
    manual run beside the CronJob, `concurrencyPolicy: Allow`) get distinct keys instead of one
    silently replacing the other: the loser moves to the next second."""
    for offset in range(10):
        name = naming.new_backup_key(opts.prefix, opts.database, opts.format, started + timedelta(seconds=offset))
        lock = naming.state_key(opts.prefix, "keys", name.key.rsplit("/", 1)[-1])
        if bucket.head(name.key) is None and bucket.try_create(lock, b"reserved"):
            return name, lock
    raise WorkerError(
        f"could not reserve a backup key for {opts.database!r} under s3://{bucket.loc.bucket}/{opts.prefix}",
        hint="ten backups of this database started within ten seconds; retry later",
    )


def run_backup(bucket: Bucket, opts: BackupOptions) -> Manifest:
    started = utcnow()
    t0 = time.monotonic()
    with pg.connect(opts.database) as conn:
        info = pg.server_info(conn)
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None  # a SELECT without FROM always returns one row
        estimate = int(row[0])
    client = pg.choose_client(info.major, f"pg_dump of a PostgreSQL {info.major} server")
    uploads.abort_stale(bucket, opts.prefix, opts.database)
    name, lock = _reserve_key(bucket, opts, started)
    log.info(
        "backup starting",
        database=opts.database,
        server=info.version,
        pg_dump=client.version,
        key=name.key,
        bucket=bucket.loc.bucket,
        format=opts.format,
        db_size=log.human_bytes(estimate),
    )

    upload = MultipartUpload(
        bucket.client,
        bucket.loc,
        name.key,
        part_size=_part_size(estimate),
        concurrency=opts.upload_concurrency,
        metadata={"database": opts.database, "tool": "cnpg-pgdump-backup"},
    )
    proc: subprocess.Popen[bytes] | None = None
    heartbeat: uploads.Heartbeat | None = None
    try:
        upload.start()
        assert upload.upload_id is not None  # start() set it or raised
        heartbeat = uploads.Heartbeat(bucket, opts.prefix, name.key, upload.upload_id).start()
        env = pg.client_env()
        env["PGDATABASE"] = opts.database
        proc = subprocess.Popen(
            dump_command(client, opts.format),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            **child_options(),
        )
        assert proc.stdout is not None and proc.stderr is not None  # both are PIPEs
        widen_pipe(proc.stdout)
        tail = StderrTail(proc.stderr)
        tail.start()
        comp = compressor(opts.compression_level) if opts.format == "plain" else None
        sha = hashlib.sha256()
        raw = out_bytes = 0
        head = b""
        last = b""
        next_progress = time.monotonic() + PROGRESS_EVERY
        while True:
            chunk = cast(BufferedReader, proc.stdout).read1(READ_CHUNK)  # a buffered PIPE (typeshed: IO[bytes])
            if not chunk:
                break
            if len(head) < 8:
                head += chunk[:8]
            raw += len(chunk)
            last = (last + chunk)[-1024:]
            data = comp.compress(chunk) if comp else chunk
            if data:
                sha.update(data)
                out_bytes += len(data)
                upload.write(data)
            if time.monotonic() >= next_progress:
                el = time.monotonic() - t0
                log.info(
                    "backup progress",
                    key=name.key,
                    dumped=log.human_bytes(raw),
                    uploaded=log.human_bytes(upload.bytes_sent),
                    rate=log.rate(raw, el),
                )
                next_progress += PROGRESS_EVERY
        if comp:
            data = comp.flush()
            sha.update(data)
            out_bytes += len(data)
            upload.write(data)
        rc = proc.wait()
        tail.join(timeout=10)
        if rc != 0:
            raise WorkerError(
                f"pg_dump of {pg.target(opts.database)} failed (exit {rc}): {tail.summary()}",
                hint="nothing was stored; see the pg_dump message",
            )
        if raw == 0:
            raise WorkerError(
                f"pg_dump of {pg.target(opts.database)} produced no output although it exited 0",
                hint="nothing was stored; an empty dump is not a backup",
            )
        if opts.format == "plain" and PLAIN_TRAILER not in last:
            raise WorkerError(
                f"pg_dump output for {pg.target(opts.database)} lacks the dump-complete trailer",
                hint="nothing was stored; the dump was cut short",
            )
        if opts.format == "custom" and not head.startswith(CUSTOM_MAGIC):
            raise WorkerError(f"pg_dump output for {pg.target(opts.database)} is not a custom-format archive")
        upload.complete()
        manifest = Manifest(
            database=opts.database,
            key=name.key,
            format=opts.format,
            compression="gzip" if comp else "pg_dump",
            server_version=info.version,
            pg_dump_version=client.version,
            pg_dump_major=client.major,
            raw_bytes=raw,
            object_bytes=out_bytes,
            sha256=sha.hexdigest(),
            started_at=started.isoformat(),
            finished_at=utcnow().isoformat(),
            extra={"compression_level": opts.compression_level if comp else None},
        )
        try:
            bucket.put_bytes(name.manifest_key, manifest.to_json())
        except WorkerError:
            # Without its manifest the object would never be trusted; remove it rather than leave
            # something that looks like a backup to tools that do not read manifests.
            try:
                bucket.delete([name.key])
            except WorkerError as exc:
                log.warning("could not remove the unmanifested object; prune removes it", key=name.key, error=str(exc))
            raise
    except BaseException:
        kill(proc)
        upload.abort()
        raise
    finally:
        if heartbeat:
            # An upload whose abort failed keeps its marker: on MinIO the marker is the only way the
            # next run's abort_stale() finds it (uploads are not listable by prefix there).
            heartbeat.stop(remove=upload.finished)
        try:
            bucket.delete([lock])
        except WorkerError:
            pass  # a leftover reservation blocks nothing: its second has passed
    el = time.monotonic() - t0
    log.info(
        "backup complete",
        key=name.key,
        dumped=log.human_bytes(raw),
        stored=log.human_bytes(out_bytes),
        ratio=f"{out_bytes / raw:.3f}",
        duration=f"{el:.1f}s",
        rate=log.rate(raw, el),
        sha256=manifest.sha256,
    )
    return manifest
