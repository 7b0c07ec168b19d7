"""Backup: `pg_dump` stdout → gzip|zstd (or pg_dump's own archive compression) → SHA-256 → S3 multipart upload, with bounded memory.

The object appears only when everything succeeded: pg_dump exited 0, its output ended with the
dump-complete trailer, every part uploaded. Any failure on the way, including SIGTERM from an
evicted pod, aborts the multipart upload, so no partial object is ever visible. The manifest is
written just before the object appears, so no listing sees the object without it; a backup without
one is never trusted.

Two objects do the work: `DumpStream` (worker/dumpstream.py: the pg_dump process and what it
produced) and `BackupSession` (worker/backup_session.py: the key, the upload, publish or abort).
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field

from . import catalog, contract, crypt, log, naming, pg, uploads
from .backup_session import BackupSession
from .dumpstream import Ahead, DumpStream
from .errors import WorkerError
from .manifest import Manifest
from .s3 import MIN_PART, Bucket, utcnow
from .sql import MARKER_TABLE

PROGRESS_EVERY = 30.0  # seconds between progress lines during long dumps
# Chunks (~1 MiB of pg_dump's output each, compressed) held while the S3 side gets ready after
# pg_dump started; past that, pg_dump waits. No more than the upload's own parts hold later.
DUMP_AHEAD = 16


@dataclass
class BackupOptions:
    prefix: str
    database: str
    format: str = contract.DEFAULT_FORMAT
    compression_level: int = contract.DEFAULT_COMPRESSION_LEVEL
    compression: str = contract.DEFAULT_COMPRESSION
    compression_chosen: bool = True  # False: the format's default codec, not the user's choice
    level_chosen: bool = True  # False: the codec's default level, so a fallback codec takes its own
    upload_concurrency: int = 2
    lock_wait_timeout: float = contract.DEFAULT_DUMP_LOCK_WAIT_SECONDS  # seconds; 0: wait for ever
    flag_shrink_percent: int = contract.DEFAULT_FLAG_SHRINK_PERCENT  # 0: never flag a shrink
    record_row_counts: bool = False  # plain: per-table COPY row counts in the manifest, for drills
    recipients: list[str] = field(default_factory=list)  # age public keys: encrypt the object (worker/crypt.py)
    pg_dump_args: tuple[str, ...] = ()  # backup.extraArgs, already checked (worker/pg_dump_options.py)
    jobs: int = 1  # pg_dump processes sharing one snapshot, custom format only (worker/parallel.py)


def _part_size(estimate: int) -> int:
    # Memory is (queue depth + uploads in flight + 1) x part size, so the part size must not follow
    # the database's size: always start at MIN_PART. The upload doubles its part size every 1,000
    # parts, which alone keeps any dump under S3's 10,000-part limit (8 GiB at 8 MiB parts, then
    # 16 GiB more at 16 MiB, ... about 4 TiB in 9,000 parts).
    return MIN_PART


def _client_and_codec(server_major: int, opts: BackupOptions) -> tuple[pg.Client, str, int]:
    """The pg_dump to run and the codec it writes: zstd/lz4 archives need pg_dump 16+ built with
    them, which dumps any older server too; without one the archive falls back to gzip, said out loud."""
    purpose = f"pg_dump of a PostgreSQL {server_major} server"
    if opts.format != "custom" or opts.compression == "gzip":
        return pg.choose_client(server_major, purpose), opts.compression, opts.compression_level
    clients = pg.installed_clients()
    able = [c for c in clients if c.major >= server_major and c.writes_archive_codec(opts.compression)]
    if able:
        return able[0], opts.compression, opts.compression_level
    client = pg.choose_client(server_major, purpose, clients)
    # A codec the user chose and did not get is a warning; the custom format's default (zstd) falling
    # back on an older client is news, not a fault, and would otherwise warn on every run.
    say = log.warning if opts.compression_chosen else log.info
    level = min(opts.compression_level, 9) if opts.level_chosen else contract.default_level("gzip")
    say(
        f"no pg_dump here writes {opts.compression} archives (pg_dump 16+ built with {opts.compression} "
        f"does; pg_dump {client.major} here does not): this custom archive is compressed with gzip instead",
        database=opts.database,
        compression_level=level,
    )
    return client, "gzip", level


def _flags(bucket: Bucket, opts: BackupOptions, user_tables: int, raw_bytes: int) -> list[str]:
    """Why this backup, complete as it is, should not be trusted as `latest` without a look."""
    flags = []
    if user_tables == 0:
        flags.append("no user tables")
    if opts.flag_shrink_percent > 0:
        # Against the previous complete backup, flagged or not: after a deliberate purge only the first
        # smaller backup is flagged, not every later one (which would leave `latest` ever older).
        try:
            previous = catalog.latest_complete(bucket, opts.prefix, opts.database, include_flagged=True)
        except WorkerError:
            previous = None  # the first backup: nothing to compare with
        if previous and previous.manifest and previous.manifest.raw_bytes > 0:
            before = previous.manifest.raw_bytes
            drop = 100 * (before - raw_bytes) / before
            if drop > opts.flag_shrink_percent:
                flags.append(
                    f"shrank {drop:.0f}% against {previous.name.key.rsplit('/', 1)[-1]} "
                    f"({log.human_bytes(raw_bytes)} vs {log.human_bytes(before)} of SQL)"
                )
    for flag in flags:
        log.warning(
            f"backup flagged: {flag}; it is stored, but `restore latest` passes over it",
            database=opts.database,
            hint="a rebuilt or emptied database? check it; set backup.suspend while rebuilding a cluster",
        )
    return flags


def run_backup(bucket: Bucket, opts: BackupOptions) -> Manifest:
    if opts.jobs > 1 and opts.format != "custom":
        raise WorkerError(
            f"a parallel backup ({opts.jobs} jobs) needs the custom format, not {opts.format!r}",
            hint=f"set backup.format: custom, or backup.jobs: 1 ({contract.FORMAT.env}, --dump-jobs)",
        )
    recipients = crypt.parse_recipients("\n".join(opts.recipients), f"${contract.AGE_RECIPIENTS.env}")
    started = utcnow()
    t0 = time.monotonic()
    with pg.connect(opts.database) as conn:
        info = pg.server_info(conn)
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None  # a SELECT without FROM always returns one row
        estimate = int(row[0])
        user_tables = pg.table_count(conn)
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{MARKER_TABLE}",)).fetchone()
        if row and row[0]:
            raise WorkerError(
                f"database {opts.database!r} on {pg.target(opts.database)} holds a partial restore "
                f"(table public.{MARKER_TABLE}: a restore is running or was interrupted); backup refused",
                hint="a backup now would store the partial restore as `latest`; let the restore finish, "
                "or run it again (it empties the database first)",
            )
    client, compression, level = _client_and_codec(info.major, opts)
    session = BackupSession(
        bucket,
        opts.prefix,
        opts.database,
        opts.format,
        started,
        compression=compression,
        encrypted=bool(recipients),
        part_size=_part_size(estimate),
        concurrency=opts.upload_concurrency,
    )

    def prepare_s3() -> naming.BackupName:
        # Listed under the database's own backups: all a least-privilege policy lets it list
        # (`python -m app iam-policy`), and what `latest` and retention list anyway.
        bucket.check(naming.join(opts.prefix, opts.database + "_"))
        uploads.abort_stale(bucket, opts.prefix, opts.database)
        name = session.reserve()
        log.info(
            "backup starting",
            database=opts.database,
            server=info.version,
            pg_dump=client.version,
            key=name.key,
            bucket=bucket.loc.bucket,
            format=opts.format,
            compression=f"{compression}:{level}",
            encryption=f"age, {len(recipients)} recipient(s)" if recipients else "none",
            db_size=log.human_bytes(estimate),
            jobs=opts.jobs,
        )
        return name

    if opts.jobs > 1:
        from .parallel import Prepared, run_parallel  # it builds on this module

        prepare_s3()
        prepared = Prepared(session, client, compression, level, recipients, info.version, user_tables, started, t0)
        return run_parallel(bucket, opts, prepared)
    dump = DumpStream(
        client,
        opts.database,
        opts.format,
        level,
        opts.lock_wait_timeout,
        compression,
        count_rows=opts.record_row_counts,
        recipients=recipients,
        extra_args=opts.pg_dump_args,
    )
    # pg_dump starts before the S3 side is ready (the client, the checks, the key, the upload): its
    # first DUMP_AHEAD chunks wait in memory meanwhile. Leaving early aborts the upload, then kills
    # pg_dump: nothing is stored either way.
    with dump, closing(Ahead(dump.chunks(), DUMP_AHEAD)) as ahead:
        name = prepare_s3()
        with session:
            next_progress = time.monotonic() + PROGRESS_EVERY
            for data in ahead:
                session.write(data)
                if time.monotonic() >= next_progress:
                    log.info(
                        "backup progress",
                        key=name.key,
                        dumped=log.human_bytes(dump.raw_bytes),
                        uploaded=log.human_bytes(session.bytes_sent),
                        rate=log.rate(dump.raw_bytes, time.monotonic() - t0),
                    )
                    next_progress += PROGRESS_EVERY
            dump.finish()
            flags = _flags(bucket, opts, user_tables, dump.raw_bytes)
            manifest = Manifest(
                database=opts.database,
                key=name.key,
                format=opts.format,
                compression=compression,
                server_version=info.version,
                pg_dump_version=client.version,
                pg_dump_major=client.major,
                raw_bytes=dump.raw_bytes,
                object_bytes=dump.stored_bytes,
                sha256=dump.sha256,
                started_at=started.isoformat(),
                finished_at=utcnow().isoformat(),
                flags=flags,
                encryption={"scheme": "age", "recipients": [str(r) for r in recipients]} if recipients else {},
                extra={
                    "user_tables": user_tables,
                    **({"row_counts": dict(dump.rows.rows)} if dump.rows else {}),
                    "compression_level": level,
                    "compressed_by": "pg_dump" if opts.format == "custom" else "worker",
                    # what the backup leaves out (--exclude-table=...) is part of what it is
                    **({"pg_dump_extra_args": list(opts.pg_dump_args)} if opts.pg_dump_args else {}),
                },
            )
            session.publish(manifest)
    el = time.monotonic() - t0
    log.info(
        "backup complete",
        key=name.key,
        dumped=log.human_bytes(dump.raw_bytes),
        stored=log.human_bytes(dump.stored_bytes),
        ratio=round(dump.stored_bytes / dump.raw_bytes, 3),
        duration=log.seconds(el),
        rate=log.rate(dump.raw_bytes, el),
        sha256=manifest.sha256,
    )
    return manifest
