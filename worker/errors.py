"""The worker's error type: one line that says what failed, on what, and what to do next."""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TERMINATED = 143


class WorkerError(Exception):
    """A failure the user must act on. ``str()`` is the single line printed before exiting."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class UsageError(WorkerError):
    """Bad flags or environment: nothing was attempted."""

    exit_code = EXIT_USAGE


class Terminated(WorkerError):
    """SIGTERM/SIGINT arrived (pod eviction, node drain, Ctrl-C)."""

    exit_code = EXIT_TERMINATED
