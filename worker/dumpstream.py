"""One pg_dump run as a stream of the bytes to store: `pg_dump` stdout → (gzip|zstd) → (age) → chunks,
hashed and counted on the way, judged complete only at the end (exit 0, output present, the plain dump's
trailer or the custom archive's magic)."""

from __future__ import annotations

import hashlib
import queue
import subprocess
import threading
from collections.abc import Iterator, Sequence
from io import BufferedReader
from typing import Any, cast

from . import crypt, pg
from .compress import compressor
from .errors import WorkerError
from .procs import Item, StderrTail, child_options, close_source, hand_over, kill, widen_pipe
from .s3 import MiB
from .sqlstream import DumpScanner

READ_CHUNK = 1 * MiB
READ_AHEAD = 4  # blocks read ahead of the compressor
# A plain dump that finished ends with this comment (followed, from 17.6 on, by `\unrestrict`).
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"
CUSTOM_MAGIC = b"PGDMP"


class Ahead:
    """The stored bytes pulled from `chunks` on a thread of their own from construction on, up to
    `depth` chunks ahead of the consumer: pg_dump runs, and its output is compressed, while the S3
    side is still getting ready. `close()` ends the thread at its next hand-over."""

    def __init__(self, chunks: Iterator[bytes], depth: int) -> None:
        self._out: queue.Queue[Item] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(chunks,), name="dump-ahead", daemon=True)
        self._thread.start()

    def _run(self, chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                if not hand_over(self._out, chunk, self._stop):
                    return
            hand_over(self._out, None, self._stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            hand_over(self._out, exc, self._stop)
        finally:
            close_source(chunks)

    def __iter__(self) -> Iterator[bytes]:
        while (item := self._out.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()


def dump_command(
    client: pg.Client,
    fmt: str,
    lock_wait_s: float = 0,
    compression: str = "gzip",
    level: int = 0,
    extra_args: Sequence[str] = (),  # backup.extraArgs, checked by worker/pg_dump_options.py
) -> list[str]:
    # The database name comes from PGDATABASE and the password from PGPASSWORD: neither on argv.
    cmd = [client.tool("pg_dump"), "--no-password"]
    if fmt == "custom":
        cmd.append("--format=custom")
        if compression == "gzip":
            cmd.append(f"--compress={level}")  # every pg_dump reads a bare level as gzip
        else:
            cmd.append(f"--compress={compression}:{level}")
    else:
        cmd.append("--format=plain")
    if lock_wait_s > 0:
        cmd.append(f"--lock-wait-timeout={int(lock_wait_s * 1000)}")  # milliseconds
    return [*cmd, *extra_args]


class DumpStream:
    """`with DumpStream(...) as dump: for data in dump.chunks(): ...; dump.finish()`.

    Leaving the block without `finish()` (an error, a signal) kills pg_dump."""

    def __init__(
        self,
        client: pg.Client,
        database: str,
        fmt: str,
        compression_level: int,
        lock_wait_s: float = 0,
        compression: str = "gzip",
        count_rows: bool = False,
        recipients: Sequence[Any] = (),
        extra_args: Sequence[str] = (),
    ) -> None:
        self.client, self.database, self.format, self.lock_wait_s = client, database, fmt, lock_wait_s
        self.extra_args = tuple(extra_args)
        # plain: the worker compresses pg_dump's output; custom: pg_dump compresses inside the archive
        self.compression, self.compression_level = compression, compression_level
        self.recipients = recipients  # age public keys: the stored bytes are ciphertext
        self.raw_bytes = self.compressed_bytes = self.stored_bytes = 0
        self._sha = hashlib.sha256()
        self._head = self._last = b""
        # plain, when restore drills will want them: every table's COPY rows, counted on the way
        # (the dump's own snapshot, so exact); ~1 s of CPU per GB of SQL, hence only on request
        self.rows = DumpScanner(passthrough=False) if fmt == "plain" and count_rows else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tail: StderrTail | None = None

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def __enter__(self) -> DumpStream:
        env = pg.client_env()
        env["PGDATABASE"] = self.database
        self._proc = subprocess.Popen(
            dump_command(
                self.client, self.format, self.lock_wait_s, self.compression, self.compression_level, self.extra_args
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            **child_options(),
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None  # both are PIPEs
        widen_pipe(self._proc.stdout)
        self._tail = StderrTail(self._proc.stderr)
        self._tail.start()
        return self

    def __exit__(self, *exc: object) -> None:
        kill(self._proc)

    def chunks(self) -> Iterator[bytes]:
        """The bytes to store, as pg_dump produces them: compressed, then encrypted with recipients."""
        stream = self._compressed()
        if self.recipients:
            stream = crypt.encrypt(crypt.ahead(stream, READ_AHEAD, "compressor"), self.recipients)
        for data in stream:
            self._sha.update(data)
            self.stored_bytes += len(data)
            yield data

    def _compressed(self) -> Iterator[bytes]:
        """pg_dump's output, compressed by the worker (plain) or as pg_dump wrote it (custom).

        A reader thread keeps pg_dump's pipe drained while this thread compresses, hashes and
        uploads (the compressors and hashlib release the GIL), so pg_dump never waits for the
        compressor; memory: READ_AHEAD blocks of READ_CHUNK, plus one compressed block."""
        assert self._proc is not None and self._proc.stdout is not None
        comp = compressor(self.compression_level, self.compression) if self.format == "plain" else None
        blocks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=READ_AHEAD)
        stop = threading.Event()
        stdout = cast(BufferedReader, self._proc.stdout)  # typeshed: IO[bytes]

        def put(item: bytes | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    blocks.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                # read(), not read1(): whole blocks (the pipe hands over ~30 KiB at a time)
                while chunk := stdout.read(READ_CHUNK):
                    if not put(chunk):
                        return
                put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
                put(exc)

        reader = threading.Thread(target=read, name="pg_dump-reader", daemon=True)
        reader.start()
        try:
            while (chunk := blocks.get()) is not None:
                if isinstance(chunk, BaseException):
                    raise chunk
                if len(self._head) < 8:
                    self._head += chunk[:8]
                self.raw_bytes += len(chunk)
                self._last = (self._last + chunk[-1024:])[-1024:]
                if self.rows:
                    for _ in self.rows.feed(chunk):
                        pass
                data = comp.compress(chunk) if comp else chunk
                if data:
                    self.compressed_bytes += len(data)
                    yield data
            if comp:
                data = comp.flush()
                self.compressed_bytes += len(data)
                yield data
        finally:
            stop.set()

    def finish(self) -> None:
        """Raise unless pg_dump exited 0 and its output is a whole dump."""
        assert self._proc is not None and self._tail is not None
        rc = self._proc.wait()
        self._tail.join(timeout=10)
        where = pg.target(self.database)
        if rc != 0:
            summary = self._tail.summary()
            hint = "nothing was stored; see the pg_dump message"
            # pg_dump bounds its lock wait with statement_timeout, set only around LOCK TABLE
            if self.lock_wait_s > 0 and ("statement timeout" in summary or "could not obtain lock" in summary):
                hint = (
                    f"nothing was stored; another session held a table lock for more than {self.lock_wait_s:g} s "
                    "(ALTER TABLE, LOCK TABLE, VACUUM FULL...: see pg_locks), or raise backup.lockWaitTimeoutSeconds"
                )
            raise WorkerError(f"pg_dump of {where} failed (exit {rc}): {summary}", hint=hint)
        if self.raw_bytes == 0:
            raise WorkerError(
                f"pg_dump of {where} produced no output although it exited 0",
                hint="nothing was stored; an empty dump is not a backup",
            )
        if self.format == "plain" and PLAIN_TRAILER not in self._last:
            raise WorkerError(
                f"pg_dump output for {where} lacks the dump-complete trailer",
                hint="nothing was stored; the dump was cut short",
            )
        if self.format == "custom" and not self._head.startswith(CUSTOM_MAGIC):
            raise WorkerError(f"pg_dump output for {where} is not a custom-format archive")
