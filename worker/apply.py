"""Running a restore's SQL against the target: the client processes, their end, and what they wait on.

Three ways, chosen by worker/restore.py:
- `transaction`: psql fed by the worker; the worker opens the transaction, arms the commit guard,
  and sends the final word (worker/sql.py) only after the last byte was read and verified. psql is
  not given `--single-transaction`: at end of input without the final word it just disconnects, and
  the server rolls back. Killing the worker kills psql (parent-death signal): the same rollback.
- `autocommit`: psql without a transaction (empty target whose schema cannot fit one transaction).
- `pg_restore`: `pg_restore --jobs N` straight into an empty target.
The last two cannot roll back; the caller empties the database again when they fail.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from io import BufferedReader
from typing import cast

from . import log, pg
from .errors import WorkerError
from .procs import StderrTail, child_options, kill, widen_pipe
from .sql import COMMIT_GUARD, FINAL_WORD, FORCE_PREAMBLE, session_settings
from .sqlstream import DumpScanner


def app_name() -> str:
    """The application_name of this worker's restore sessions: how they are found and ended."""
    return f"cnpg-pgdump-backup-restore-{os.getpid()}"


def restore_env(dbname: str) -> dict[str, str]:
    """The environment of a restore's client processes: found and ended by their application_name."""
    return _env(dbname)


def _env(dbname: str) -> dict[str, str]:
    env = pg.client_env()
    env["PGDATABASE"] = dbname
    env["PGAPPNAME"] = app_name()
    return env


class Monitor(threading.Thread):
    """Every `interval` seconds: how far the restore is, and whether it waits on someone's lock."""

    def __init__(self, dbname: str, interval: float) -> None:
        super().__init__(daemon=True, name="restore-monitor")
        self.dbname, self.interval = dbname, interval
        self.sent = 0
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self._report()
            except Exception as exc:  # noqa: BLE001 - a monitoring hiccup must not stop the restore
                log.log.debug("restore monitor: %s", exc)

    def _report(self) -> None:
        el = time.monotonic() - self._t0
        with pg.connect(self.dbname, timeout=5) as conn:
            rows = conn.execute(
                "SELECT a.pid, a.wait_event_type, a.wait_event, pg_blocking_pids(a.pid),"
                " left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80)"
                " FROM pg_stat_activity a WHERE a.application_name = %s",
                (app_name(),),
            ).fetchall()
            waiting = [r for r in rows if r[1] == "Lock"]
            if not waiting:
                log.info(
                    "restore progress",
                    sent=log.human_bytes(self.sent),
                    elapsed=f"{el:.0f}s",
                    rate=log.rate(self.sent, el),
                    sessions=len(rows),
                )
                return
            for _pid, _, event, blockers, query in waiting:
                # Who holds it, not what it ran: another session's query text may carry its secrets.
                held = conn.execute(
                    "SELECT pid, usename, application_name, state, now() - xact_start"
                    " FROM pg_stat_activity WHERE pid = ANY(%s)",
                    (blockers,),
                ).fetchall()
                who = (
                    "; ".join(f"pid {b[0]} ({b[1]}, {b[2] or 'no application_name'}, {b[3]} for {b[4]})" for b in held)
                    or "unknown"
                )
                log.warning(
                    "restore waiting for a lock", lock=event, statement=query, blocked_by=who, elapsed=f"{el:.0f}s"
                )

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def end_sessions(dbname: str, timeout: float = 20) -> None:
    """Terminate this worker's restore sessions still on the server (their client was killed): the
    server rolls back at once instead of when it next notices the socket is gone."""
    deadline = time.monotonic() + timeout
    with pg.connect(dbname, timeout=5) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (app_name(),),
            ).fetchone()
            assert row is not None  # an aggregate SELECT always returns one row
            left = row[0]
            if not left:
                return
            time.sleep(0.2)
    # Checking the database now would compare it while the restore may still be changing it.
    raise WorkerError(f"the restore's server sessions in {dbname!r} did not end within {timeout:g} s")


def _psql(client: pg.Client, dbname: str) -> tuple[subprocess.Popen[bytes], StderrTail]:
    cmd = [client.tool("psql"), "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null"]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(dbname),
        **child_options(),
    )
    assert proc.stdin is not None and proc.stderr is not None  # both are PIPEs
    widen_pipe(proc.stdin)
    tail = StderrTail(proc.stderr)
    tail.start()
    return proc, tail


def _feed(proc: subprocess.Popen[bytes], pieces: Iterable[bytes], monitor: Monitor) -> bool:
    """Write until the input ends; False when psql stopped reading (it hit an error)."""
    assert proc.stdin is not None  # a psql from _psql(): stdin is a PIPE
    try:
        for data in pieces:
            if data:
                proc.stdin.write(data)
                monitor.sent += len(data)
        return True
    except BrokenPipeError:
        return False


def run_psql(
    client: pg.Client,
    dbname: str,
    chunks: Iterable[bytes],
    *,
    transaction: bool,
    force: bool,
    server_major: int,
    monitor: Monitor,
    lock_timeout: float = 0,
) -> DumpScanner | None:
    proc, tail = _psql(client, dbname)
    assert proc.stdin is not None  # a PIPE (see _psql)
    scanner = DumpScanner() if transaction else None
    try:
        opening = session_settings(server_major, lock_timeout)
        if transaction:
            opening += COMMIT_GUARD + (FORCE_PREAMBLE if force else "")
        ok = _feed(proc, [opening.encode()], monitor)
        ok = ok and _feed(proc, scanner.scan(chunks) if scanner else chunks, monitor)
        # Every byte is read and verified (the object stream raises otherwise, before this line):
        # only now may the transaction commit.
        ok = ok and _feed(proc, [FINAL_WORD.encode()] if transaction else [], monitor)
        if ok:
            try:
                proc.stdin.close()  # flushes the last buffered bytes, the final word among them
            except BrokenPipeError:
                ok = False  # psql stopped reading: it hit an error before the end
        rc = proc.wait()
        tail.join(timeout=10)
        if rc != 0 or not ok:
            raise WorkerError(tail.summary())
        return scanner
    finally:
        kill(proc)  # on any failure before the final word: psql dies, the transaction never commits
        if proc.stdin and not proc.stdin.closed:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass


def run_pg_restore(client: pg.Client, dbname: str, archive: str, jobs: int) -> None:
    cmd = [client.tool("pg_restore"), "--no-password", "--exit-on-error", f"--jobs={jobs}", "-d", dbname, archive]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=_env(dbname),
        **child_options(),
    )
    assert proc.stderr is not None  # a PIPE
    tail = StderrTail(proc.stderr)
    tail.start()
    try:
        rc = proc.wait()
    finally:
        kill(proc)
        tail.join(timeout=10)
    if rc != 0:
        raise WorkerError(tail.summary())


def pg_restore_sql(client: pg.Client, archive: str, key: str, extra: Sequence[str] = ()) -> Iterator[bytes]:
    """A custom archive as plain SQL (`pg_restore -f -`), for the psql paths; `extra`: e.g. a --section."""
    proc = subprocess.Popen(
        [client.tool("pg_restore"), *extra, "-f", "-", archive],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=pg.client_env(),
        **child_options(),
    )
    assert proc.stdout is not None and proc.stderr is not None  # both are PIPEs
    widen_pipe(proc.stdout)
    tail = StderrTail(proc.stderr)
    tail.start()
    try:
        while chunk := cast(BufferedReader, proc.stdout).read1(1 << 20):  # a buffered PIPE (typeshed: IO[bytes])
            yield chunk
        if proc.wait() != 0:
            raise WorkerError(f"pg_restore could not read {key}: {tail.summary()}")
    finally:
        kill(proc)
