"""Child processes of the worker (pg_dump, psql, pg_restore): their stderr, their pipes, their end."""

from __future__ import annotations

import collections
import fcntl
import subprocess
import threading

from . import log

PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class StderrTail(threading.Thread):
    """Keeps the last lines a child wrote to stderr, for the error message, without unbounded memory."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True, name="stderr-tail")
        self.stream = stream
        self.lines: collections.deque[str] = collections.deque(maxlen=40)

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.lines.append(line)

    def summary(self) -> str:
        errs = [line for line in self.lines if "error" in line.lower() or "fatal" in line.lower()]
        return log.redact((errs or list(self.lines) or ["(no output)"])[0])


def kill(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()


def widen_pipe(stream) -> None:
    # A 64 KiB pipe fills in a fraction of a millisecond at pg_dump's speed: pg_dump then blocks
    # until the worker is scheduled. 1 MiB lets both run in longer stretches with fewer wake-ups.
    try:
        fcntl.fcntl(stream.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # the system's pipe-max-size is lower: the default size still works
