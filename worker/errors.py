"""The worker's error types: one line that says what failed, on what, and what to do next."""

from __future__ import annotations

from typing import TYPE_CHECKING

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TERMINATED = 143


if TYPE_CHECKING:
    _OneLineBase = BaseException  # _OneLine is only ever mixed into exception classes
else:
    _OneLineBase = object


class _OneLine(_OneLineBase):
    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class WorkerError(_OneLine, Exception):
    """A failure the user must act on. ``str()`` is the single line printed before exiting."""


class UsageError(WorkerError):
    """Bad flags or environment: nothing was attempted."""

    exit_code = EXIT_USAGE


class Terminated(_OneLine, BaseException):
    """SIGTERM/SIGINT arrived (pod eviction, node drain, Ctrl-C).

    A BaseException, like KeyboardInterrupt, so that no `except Exception` or `except WorkerError` on
    the way (an S3 call, the readiness retry loop, a manifest read) can swallow it or turn it into an
    ordinary failure: the worker must stop, abort its upload and exit 143.
    """

    exit_code = EXIT_TERMINATED
