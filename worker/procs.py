"""Child processes of the worker (pg_dump, psql, pg_restore): their stderr, their pipes, their end."""

from __future__ import annotations

import collections
import ctypes
import fcntl
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from . import log

PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class StderrTail(threading.Thread):
    """Keeps the last lines a child wrote to stderr, for the error message, without unbounded memory."""

    def __init__(self, stream: IO[bytes]) -> None:
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


_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved now: the child must not load anything
except (OSError, AttributeError):  # not Linux: children are still killed on every path we see
    _prctl = None


def _die_with_parent(parent: int) -> None:
    # Runs in the child between fork and exec. If the worker dies by SIGKILL (OOM killer, kill -9)
    # the kernel kills the child too: a psql left alone would otherwise read end-of-input and act on
    # it with nobody watching. The check closes the race of a parent that died before prctl ran.
    assert _prctl is not None  # child_options() installs this hook only when prctl resolved
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def child_options() -> dict[str, Any]:
    """Popen keyword arguments every child of the worker gets: it must not outlive the worker.

    The parent-death signal belongs to the thread that forked, so it is set only from the main
    thread (where the worker starts all its children); elsewhere the child still dies with its
    pipes, just not on SIGKILL.
    """
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return {}
    parent = os.getpid()
    return {"preexec_fn": lambda: _die_with_parent(parent)}


def kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()


def widen_pipe(stream: IO[bytes]) -> None:
    # A 64 KiB pipe fills in a fraction of a millisecond at pg_dump's speed: pg_dump then blocks
    # until the worker is scheduled. 1 MiB lets both run in longer stretches with fewer wake-ups.
    try:
        fcntl.fcntl(stream.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # the system's pipe-max-size is lower: the default size still works


# --- hand-overs between threads (worker/crypt.py, worker/dumpstream.py) ---------------------------

Item = bytes | BaseException | None  # a piece, the producer's error, or None: the end
_PUT_POLL = 0.5


def hand_over(out: queue.Queue[Item], item: Item, stop: threading.Event) -> bool:
    """Hand `item` over unless the consumer went away (`stop`); False then."""
    while not stop.is_set():
        try:
            out.put(item, timeout=_PUT_POLL)
            return True
        except queue.Full:
            continue
    return False


def close_source(source: Iterator[bytes]) -> None:
    close = getattr(source, "close", None)
    if close:
        close()  # a generator's own clean-up (pg_dump's reader thread) runs now, not at GC
