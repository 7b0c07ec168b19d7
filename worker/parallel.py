"""A parallel backup of one database (`backup.jobs` > 1, custom format): N pg_dump processes share
one exported snapshot, each streams its own archive to its own multipart upload, and the backup
exists only when every part does.

- One connection opens `REPEATABLE READ READ ONLY`, exports its snapshot and keeps the transaction
  open for the whole backup: every pg_dump imports it (`--snapshot`), so the parts are one
  consistent picture of the database, whatever commits meanwhile.
- The plan: user tables by size (`pg_table_size`, TOAST included), the largest spread over N bins
  (longest-first onto the least loaded). Part 0 is `pg_dump -Fc --exclude-table-data=<tables of the
  other parts>`: schema, sequences, large objects, every other table's data, a complete archive
  but for those tables' rows. Part i is `pg_dump -Fc --data-only --table=<its tables>`.
- Keys: part 0 is the backup key; part i is `<key>.part<i>` (worker/naming.py), which no backup
  pattern matches. Parts 1..N-1 are completed first, part 0 last, its manifest (listing every
  part's size and SHA-256) after that: until then nothing is listed or restorable. A failure or
  SIGTERM aborts every open upload and deletes the parts already completed; after a SIGKILL the
  next run aborts the uploads left open (worker/uploads.py), and completed parts without a manifest
  are orphans that prune removes after a day (worker/catalog.py).

Memory: per part, pg_dump's read-ahead (4 x 1 MiB) plus its upload ((queue 2 + 2 in flight + 1) x
8 MiB): about 45 MiB per job. Local disk: none.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql as psql

from . import log, naming, pg
from .backup_session import BackupSession
from .dump import PROGRESS_EVERY, BackupOptions, _flags
from .dumpstream import DumpStream
from .errors import WorkerError
from .manifest import COMPLETE_WITH_PARTS, Manifest
from .s3 import Bucket, utcnow
from .sql import MARKER_TABLE

# Tables smaller than this stay in part 0: a part per tiny table costs a process and an upload for
# nothing, and keeps pg_dump's argv short whatever the number of tables.
MIN_SPLIT_BYTES = 1 << 20
MAX_TABLES_PER_PART = 1000

# Ordinary and partition-leaf tables that hold rows pg_dump dumps: not temporary, not an
# extension's own (pg_dump dumps those only as the extension says), not the restore marker.
_TABLES_SQL = """
SELECT n.nspname, c.relname, pg_table_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
  AND NOT (n.nspname = 'public' AND c.relname = %s)
ORDER BY 3 DESC, 1, 2
"""


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    size: int

    @property
    def pattern(self) -> str:
        """A pg_dump pattern matching this table only: inside double quotes `*`, `?` and `.` are
        literal and `"` is doubled (the same rule on pg_dump 13 to 18, tested)."""
        return '"' + self.schema.replace('"', '""') + '"."' + self.name.replace('"', '""') + '"'

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def assign(tables: list[Table], jobs: int) -> list[list[Table]]:
    """N bins, bin 0 holding every small table: the large ones go longest first to the least loaded
    bin (bin 0 included, since it dumps the small tables and the schema too). Bins 1.. may be empty."""
    bins: list[list[Table]] = [[] for _ in range(jobs)]
    load = [0] * jobs
    for t in tables:
        if t.size < MIN_SPLIT_BYTES:
            bins[0].append(t)
            load[0] += t.size
    for t in sorted((t for t in tables if t.size >= MIN_SPLIT_BYTES), key=lambda t: (-t.size, t.qualified)):
        open_bins = [i for i in range(jobs) if i == 0 or len(bins[i]) < MAX_TABLES_PER_PART]
        i = min(open_bins, key=lambda i: (load[i], i))
        bins[i].append(t)
        load[i] += t.size
    return bins


def part_args(index: int, snapshot: str, bins: list[list[Table]]) -> list[str]:
    args = [f"--snapshot={snapshot}"]
    if index == 0:
        return args + [f"--exclude-table-data={t.pattern}" for b in bins[1:] for t in b]
    return args + ["--data-only"] + [f"--table={t.pattern}" for t in bins[index]]


@dataclass
class _Part:
    index: int
    key: str
    tables: list[Table]
    session: BackupSession
    dump: DumpStream
    error: BaseException | None = None
    thread: threading.Thread | None = None
    completed: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "key": self.key,
            "object_bytes": self.dump.stored_bytes,
            "sha256": self.dump.sha256,
            "raw_bytes": self.dump.raw_bytes,
            "tables": [t.qualified for t in self.tables],
        }


@dataclass
class Prepared:
    """What run_backup (worker/dump.py) found before the dump starts."""

    session: BackupSession  # part 0's, its key reserved
    client: pg.Client
    compression: str
    level: int
    recipients: list[Any]
    server_version: str
    user_tables: int
    started: datetime
    t0: float
    parts: list[_Part] = field(default_factory=list)


def _plan(conn: psycopg.Connection, opts: BackupOptions) -> tuple[str, list[list[Table]]]:
    """Export the snapshot, list the tables as it sees them, split them into bins and share-lock the
    split ones in the snapshot's transaction, as `pg_dump -j`'s leader does: from here to the end no
    ALTER/DROP/TRUNCATE slips in before their pg_dump locks them itself. Sizing a table takes its
    share lock too, so a table held by an ALTER TABLE fails the backup after the lock wait timeout."""
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if opts.lock_wait_timeout > 0:
            conn.execute(psql.SQL("SET LOCAL lock_timeout = {}").format(int(opts.lock_wait_timeout * 1000)))
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None  # a SELECT without FROM returns one row
        tables = [Table(s, n, int(b or 0)) for s, n, b in conn.execute(_TABLES_SQL, (MARKER_TABLE,)).fetchall()]
        bins = assign(tables, opts.jobs)
        split = [t for b in bins[1:] for t in b]
        if split:
            names = psql.SQL(", ").join(psql.Identifier(t.schema, t.name) for t in split)
            conn.execute(psql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(names))
        return str(row[0]), bins
    except psycopg.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkerError(
            f"could not plan a parallel backup of {pg.target(opts.database)}: {detail}",
            hint="nothing was stored; another session held a table lock (ALTER TABLE, LOCK TABLE, VACUUM FULL...: "
            "see pg_locks), or raise backup.lockWaitTimeoutSeconds"
            if "lock timeout" in detail
            else "nothing was stored; see the server's message",
        ) from None


def _start_part(p: Prepared, opts: BackupOptions, bucket: Bucket, index: int, args: list[str]) -> _Part:
    base = p.session
    assert base.name is not None  # reserved by run_backup
    if index == 0:
        session = base
    else:
        session = BackupSession(
            bucket,
            opts.prefix,
            opts.database,
            opts.format,
            p.started,
            part_size=base.part_size,
            concurrency=base.concurrency,
            compression=base.compression,
            encrypted=base.encrypted,
        )
        session.name = naming.BackupName(
            naming.part_key(base.name.key, index),
            opts.database,
            base.name.taken_at,
            base.name.format,
            base.name.compression,
            base.name.encrypted,
        )
    session.__enter__()
    dump = DumpStream(
        p.client,
        opts.database,
        opts.format,
        p.level,
        opts.lock_wait_timeout,
        p.compression,
        recipients=p.recipients,
        # backup.extraArgs that suit every part (no object filters: pg_dump_options.NOT_WITH_JOBS)
        extra_args=[*args, *opts.pg_dump_args],
    )
    part = _Part(index, session.name.key if session.name else "", [], session, dump)
    dump.__enter__()
    return part


def _pump(part: _Part, cancel: threading.Event) -> None:
    try:
        for data in part.dump.chunks():
            if cancel.is_set():
                return
            part.session.write(data)
        part.dump.finish()
    except BaseException as exc:  # noqa: BLE001 - the main thread raises the first one
        part.error = exc
        cancel.set()


def _wait(p: Prepared, cancel: threading.Event) -> None:
    """Until every part's pg_dump ended; joins with a timeout so that SIGTERM reaches this thread."""
    next_progress = time.monotonic() + PROGRESS_EVERY
    while any(part.thread and part.thread.is_alive() for part in p.parts):
        for part in p.parts:
            if part.thread:
                part.thread.join(timeout=0.2)
        if cancel.is_set():
            break
        if time.monotonic() >= next_progress:
            dumped = sum(part.dump.raw_bytes for part in p.parts)
            log.info(
                "backup progress",
                key=p.session.name.key if p.session.name else "",
                parts=len(p.parts),
                dumped=log.human_bytes(dumped),
                uploaded=log.human_bytes(sum(part.session.bytes_sent for part in p.parts)),
                rate=log.rate(dumped, time.monotonic() - p.t0),
            )
            next_progress += PROGRESS_EVERY
    failed = next((part for part in p.parts if part.error is not None), None)
    if failed is not None:
        assert failed.error is not None
        if isinstance(failed.error, WorkerError) and len(p.parts) > 1:
            raise WorkerError(f"part {failed.index} of {len(p.parts)}: {failed.error.message}", hint=failed.error.hint)
        raise failed.error


def _undo(p: Prepared, bucket: Bucket) -> None:
    """Kill every pg_dump, abort every open upload, delete the parts already completed."""
    for part in p.parts:
        part.dump.__exit__(None, None, None)
    for part in p.parts:
        if part.thread:
            part.thread.join(timeout=15)
    for part in p.parts:
        part.session.__exit__(None, None, None)
    p.session.__exit__(None, None, None)  # part 0's reservation, even when its upload never started
    done = [part.key for part in p.parts if part.completed]
    if done:
        try:
            bucket.delete(done)
        except WorkerError as exc:
            log.warning("could not delete the completed parts; prune removes them", keys=done, error=str(exc))


def run_parallel(bucket: Bucket, opts: BackupOptions, p: Prepared) -> Manifest:
    assert p.session.name is not None
    name = p.session.name
    with pg.connect(opts.database, autocommit=True) as snap:
        snapshot, bins = _plan(snap, opts)
        indexes = [0] + [i for i in range(1, opts.jobs) if bins[i]]
        log.info(
            "parallel backup plan",
            key=name.key,
            snapshot=snapshot,
            parts=len(indexes),
            sizes=", ".join(str(log.human_bytes(sum(t.size for t in bins[i]))) for i in indexes),
        )
        cancel = threading.Event()
        try:
            for n, i in enumerate(indexes):
                # parts are numbered densely: 1..len-1, whatever bins stayed empty
                part = _start_part(p, opts, bucket, n, part_args(i, snapshot, bins))
                part.tables = bins[i]
                p.parts.append(part)
            for part in p.parts:
                part.thread = threading.Thread(
                    target=_pump, args=(part, cancel), name=f"part-{part.index}", daemon=True
                )
                part.thread.start()
            _wait(p, cancel)
            for part in p.parts[1:]:
                part.session.complete()
                part.completed = True
            raw = sum(part.dump.raw_bytes for part in p.parts)
            head = p.parts[0].dump
            manifest = Manifest(
                database=opts.database,
                key=name.key,
                format=opts.format,
                compression=p.compression,
                server_version=p.server_version,
                pg_dump_version=p.client.version,
                pg_dump_major=p.client.major,
                raw_bytes=raw,
                object_bytes=head.stored_bytes,
                sha256=head.sha256,
                started_at=p.started.isoformat(),
                finished_at=utcnow().isoformat(),
                flags=_flags(bucket, opts, p.user_tables, raw),
                encryption={"scheme": "age", "recipients": [str(r) for r in p.recipients]} if p.recipients else {},
                parts=[part.describe() for part in p.parts[1:]],
                status=COMPLETE_WITH_PARTS if len(p.parts) > 1 else "complete",
                extra={
                    "user_tables": p.user_tables,
                    "compression_level": p.level,
                    "compressed_by": "pg_dump",
                    "jobs": opts.jobs,
                    "part0_tables_with_data": len(bins[0]),
                    "stored_bytes_total": sum(part.dump.stored_bytes for part in p.parts),
                },
            )
            p.session.publish(manifest)  # the manifest, then part 0: listed only once whole
            p.parts[0].completed = True
        except BaseException:
            cancel.set()
            _undo(p, bucket)
            raise
        for part in p.parts:
            part.dump.__exit__(None, None, None)
            part.session.__exit__(None, None, None)
    el = time.monotonic() - p.t0
    stored = int(manifest.extra["stored_bytes_total"])
    log.info(
        "backup complete",
        key=name.key,
        parts=len(p.parts),
        dumped=log.human_bytes(raw),
        stored=log.human_bytes(stored),
        duration=log.seconds(el),
        rate=log.rate(raw, el),
        sha256=manifest.sha256,
    )
    return manifest
