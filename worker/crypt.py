"""Client-side encryption of the stored stream with age (https://age-encryption.org, via `pyrage`).

The backup encrypts after compression, before upload: the object (`….sql.gz.age`) holds only age
ciphertext, readable by whoever holds an identity (private key) matching one of the recipients.
The backup pods get the recipients (public keys) only; the identity reaches the restore Job and the
drill CronJob from a Secret, as an environment variable, never on argv or in a log line.

age's payload is a STREAM of 64 KiB chunks, each authenticated (ChaCha20-Poly1305), the last one
marked final: a flipped byte, a truncation at any point or a swapped chunk fails decryption, so a
decrypted stream that ended without error is the whole plaintext that was encrypted.

pyrage's streaming calls pull from a reader and push into a writer; `_pump` runs them on a thread
between two bounded queues so that the rest of the worker keeps its iterator-of-chunks shape and
its bounded memory (the source's own read-ahead in, OUT_QUEUE pieces of PIECE bytes out).
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

import pyrage

from . import contract, log
from .errors import UsageError, WorkerError
from .procs import Item, close_source, hand_over

SUFFIX = ".age"
PIECE = 1 << 20  # bytes per item handed to the consumer
OUT_QUEUE = 4  # items waiting for the consumer: with the one being filled, ≤ 5 MiB


class _Stopped(Exception):
    """The consumer went away (upload failed, signal): unwind the age thread."""


class _IterReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks, for pyrage to read from.

    An exception raised by the iterator (pg_dump failed, S3 read error) is kept, so the consumer
    sees it rather than pyrage's generic I/O error."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = memoryview(next(self._chunks))
            except StopIteration:
                return 0
            except BaseException as exc:
                self.error = exc
                raise
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _QueueWriter(io.RawIOBase):
    """Collects pyrage's small writes (8–64 KiB) into PIECE-sized items: every item handed to the
    consumer is a thread hand-off, and thousands of them per second would cost more than the cipher."""

    def __init__(self, out: queue.Queue[Item], stop: threading.Event) -> None:
        self._out, self._stop = out, stop
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = len(b)
        self._buf += b
        if len(self._buf) >= PIECE:
            self.hand_over()
        return n

    def hand_over(self) -> None:
        if not self._buf:
            return
        # The buffer itself, not a bytes() copy: nothing writes to it once handed over, and every
        # consumer (hashing, the upload, pipes, decompressors) takes it as it takes bytes.
        data, self._buf = cast(bytes, self._buf), bytearray()
        if not hand_over(self._out, data, self._stop):
            raise _Stopped()


def _threaded(produce: Callable[[queue.Queue[Item], threading.Event], None], depth: int, name: str) -> Iterator[bytes]:
    """What `produce` puts, yielded here while it runs on its own thread; its error is raised here.
    Leaving early sets the stop event, which ends the producer's next hand-over."""
    out: queue.Queue[Item] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    thread = threading.Thread(target=produce, args=(out, stop), name=name, daemon=True)
    thread.start()
    try:
        while (item := out.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


def _pump(
    chunks: Iterable[bytes],
    work: Callable[[io.RawIOBase, io.RawIOBase], None],
    name: str,
    on_error: Callable[[BaseException], BaseException],
) -> Iterator[bytes]:
    source = iter(chunks)
    reader = _IterReader(source)

    def run(out: queue.Queue[Item], stop: threading.Event) -> None:
        item: BaseException | None = None
        try:
            writer = _QueueWriter(out, stop)
            work(reader, writer)
            writer.hand_over()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            item = reader.error or on_error(exc)
        finally:
            close_source(source)
        hand_over(out, item, stop)

    return _threaded(run, OUT_QUEUE, name)


def ahead(chunks: Iterable[bytes], depth: int, name: str) -> Iterator[bytes]:
    """The same chunks, produced on a thread of their own up to `depth` ahead: the compressor then
    runs next to the cipher instead of taking turns with it on the age thread."""
    source = iter(chunks)

    def run(out: queue.Queue[Item], stop: threading.Event) -> None:
        try:
            for chunk in source:
                if not hand_over(out, chunk, stop):
                    return
            hand_over(out, None, stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            hand_over(out, exc, stop)
        finally:
            close_source(source)

    return _threaded(run, depth, name)


# --- keys ------------------------------------------------------------------------------------


def parse_recipients(text: str, source: str) -> list[Any]:
    """age recipients (`age1…`), separated by commas, spaces or new lines; `#` starts a comment."""
    found = []
    for line in text.splitlines():
        for word in line.split("#", 1)[0].replace(",", " ").split():
            try:
                found.append(pyrage.x25519.Recipient.from_str(word))
            except Exception:  # noqa: BLE001 - pyrage raises its own RecipientError
                raise UsageError(
                    f"{source}: {word[:12]!r}… is not an age recipient (an X25519 public key `age1…`)",
                    hint="give the public key printed by `age-keygen -y` / `cnpg-backup-worker keygen`",
                ) from None
    return found


def parse_identities(text: str, source: str) -> list[Any]:
    """age identities (`AGE-SECRET-KEY-1…`), one per line as `age-keygen` writes them; other lines are
    comments. Errors never echo the key."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(pyrage.x25519.Identity.from_str(line))
        except Exception:  # noqa: BLE001 - pyrage raises its own IdentityError
            raise UsageError(
                f"{source} holds a line that is not an age identity (expected AGE-SECRET-KEY-1…)",
                hint="put the whole file written by `age-keygen` (or `cnpg-backup-worker keygen`) in the Secret",
            ) from None
    if not found:
        raise UsageError(f"{source} holds no age identity", hint="the Secret key or file is empty")
    return found


def identities_from(env_value: str | None, path: str | None) -> list[Any]:
    """The identities for decryption: a file (`--identity-file`) or the Secret's environment variable."""
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise UsageError(f"cannot read the age identity file {path}: {exc.strerror}") from None
        ids = parse_identities(text, f"age identity file {path}")
        for line in text.splitlines():
            if line.strip().startswith("AGE-SECRET-KEY-"):
                log.register_secret(line.strip())
    elif env_value:
        ids = parse_identities(env_value, "the age identity (encryption.identitySecret)")
    else:
        return []
    return ids


def generate() -> tuple[str, str]:
    """(identity, recipient) as text, for `cnpg-backup-worker keygen`."""
    ident = pyrage.x25519.Identity.generate()
    return str(ident), str(ident.to_public())


# --- streams ---------------------------------------------------------------------------------


def encrypt(chunks: Iterable[bytes], recipients: Sequence[Any]) -> Iterator[bytes]:
    """age ciphertext of the concatenated chunks, as it is produced."""

    def work(src: io.RawIOBase, dst: io.RawIOBase) -> None:
        pyrage.encrypt_io(src, dst, list(recipients))

    def on_error(exc: BaseException) -> BaseException:
        return WorkerError(f"age encryption failed: {exc}", hint="nothing was stored")

    return _pump(chunks, work, "age-encrypt", on_error)


def decrypt(chunks: Iterable[bytes], identities: Sequence[Any], where: str) -> Iterator[bytes]:
    """The plaintext of an age stream, authenticated chunk by chunk; raises at the end of a
    truncated stream and at the first altered chunk."""

    def work(src: io.RawIOBase, dst: io.RawIOBase) -> None:
        pyrage.decrypt_io(src, dst, list(identities))

    def on_error(exc: BaseException) -> BaseException:
        if isinstance(exc, pyrage.DecryptError) and "no matching keys" in str(exc).lower():
            return UsageError(
                f"{where} is encrypted for other age recipients: the identity given does not match",
                hint="nothing was touched; use the identity (private key) whose public key was in "
                "encryption.recipients when this backup was taken",
            )
        return WorkerError(
            f"{where} fails age decryption ({exc}): the ciphertext is truncated or altered",
            hint="nothing was touched; the object is corrupt, choose another backup",
        )

    return _pump(chunks, work, "age-decrypt", on_error)


def require_identities(identities: Sequence[Any], where: str) -> None:
    if not identities:
        raise UsageError(
            f"{where} is encrypted (age) and no identity was given",
            hint="nothing was touched; set encryption.identitySecret (restore Job, drills), or pass "
            f"--identity-file or ${contract.AGE_IDENTITY.env} outside Kubernetes",
        )
