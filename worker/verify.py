"""Verification: prove a backup object intact, end to end, before any database is touched.

A plain object is decompressed in full (every gzip CRC or zstd frame checksum, pg_dump's dump-complete trailer) and its
SQL is scanned for what it will create (TOC entries, large objects), which the restore needs to
choose its path. A custom archive is staged on local disk and its TOC listed. Both are checked
against the manifest's size and SHA-256; while restoring, the bytes are checked again on the way.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from . import crypt, log, naming
from .compress import Decompressor
from .dumpstream import PLAIN_TRAILER
from .errors import WorkerError
from .manifest import Manifest
from .s3 import Bucket
from .sqlstream import DumpScanner

_DUMPED_BY = re.compile(rb"-- Dumped by pg_dump version (\d+)")


@dataclass
class Verified:
    key: str
    format: str
    compression: str  # plain: the stream's codec; custom: the codec inside the archive
    object_bytes: int
    raw_bytes: int
    sha256: str
    dump_major: int
    manifest: Manifest | None
    staged: str | None = None  # custom format: the verified archive on local disk
    # what the dump will create: TOC entry types and large objects (plain: counted while verifying;
    # custom: listed from the archive's TOC by the restore, which has the client tools)
    entries: Counter[str] = field(default_factory=Counter)
    large_objects: int = 0
    roles: set[str] = field(default_factory=set)  # plain: the roles the SQL refers to
    # age identities when the object is encrypted: the restore decrypts it again on the way
    identities: Sequence[Any] = ()
    encrypted: bool = False
    parts: list[Verified] = field(default_factory=list)  # a parallel backup's parts 1..N-1 (worker/parts.py)


class _PlainCheck:
    """A plain dump: every gzip CRC / zstd checksum, the trailer, and a scan of the SQL it will run."""

    def __init__(self, where: str, compression: str) -> None:
        self.where = where
        self.gz = Decompressor(compression)
        self.scanner = DumpScanner()
        self.first = self.last = b""

    def feed(self, chunk: bytes) -> None:
        try:
            out = self.gz.feed(chunk)
        except Exception as exc:  # noqa: BLE001 - any decoder error means corrupt
            raise WorkerError(
                f"{self.where} is not a valid {self.gz.codec} stream: {exc}",
                hint="the object is corrupt; choose another backup",
            ) from None
        if len(self.first) < 4096:
            self.first += out[: 4096 - len(self.first)]
        for _ in self.scanner.feed(out):
            pass
        if out:
            self.last = (self.last + out)[-1024:]

    def finish(self) -> None:
        try:
            self.gz.finish()
        except ValueError as exc:
            raise WorkerError(f"{self.where}: {exc}", hint="the object is truncated; choose another backup") from None
        if PLAIN_TRAILER not in self.last:
            raise WorkerError(
                f"{self.where} does not end with pg_dump's dump-complete trailer",
                hint="the dump was cut short when it was taken; choose another backup",
            )
        for _ in self.scanner.finish():
            pass
        if self.scanner.connects:
            raise WorkerError(
                f"{self.where} contains \\connect: it would switch databases in the middle of the restore",
                hint="it was not made by this tool or the chart (pg_dump --create); restore it by hand",
            )

    def dumped_by(self) -> int:
        m = _DUMPED_BY.search(self.first)
        return int(m.group(1)) if m else 0

    def discard(self) -> None:
        pass


class _CustomCheck:
    """A custom archive: its magic, staged on local disk for pg_restore (which needs to seek)."""

    def __init__(self, where: str, stage_dir: str | None, size: int) -> None:
        self.where = where
        self.first = b""
        directory = stage_dir or tempfile.gettempdir()
        try:
            free = shutil.disk_usage(directory).free
        except OSError:
            free = size  # cannot tell: staging itself reports a full disk
        if free < size:
            raise WorkerError(
                f"cannot stage {where} ({log.human_bytes(size)}) in {directory}: only {log.human_bytes(free)} free",
                hint="nothing was touched; raise restore.tmpSizeLimit (the pod's /tmp) or free the space",
            )
        try:
            fd, self.staged = tempfile.mkstemp(prefix="restore-", suffix=".dump", dir=stage_dir)
        except OSError as exc:
            raise WorkerError(
                f"cannot stage {where} in {stage_dir or tempfile.gettempdir()}: {exc.strerror}",
                hint="a custom-format restore needs a writable TMPDIR: the pod's /tmp emptyDir volume",
            ) from None
        self.fh: BinaryIO | None = os.fdopen(fd, "wb")

    def feed(self, chunk: bytes) -> None:
        if len(self.first) < 8:
            self.first += chunk[:8]
        try:
            assert self.fh is not None
            self.fh.write(chunk)
        except OSError as exc:
            raise WorkerError(
                f"cannot stage {self.where} in {os.path.dirname(self.staged)}: {exc.strerror}",
                hint="give the pod a larger /tmp (emptyDir sizeLimit) or use the plain format",
            ) from None

    def finish(self) -> None:
        if self.fh:
            self.fh.close()
            self.fh = None
        if not self.first.startswith(b"PGDMP"):
            raise WorkerError(f"{self.where} is not a pg_dump custom-format archive")

    def dumped_by(self) -> int:
        return 0

    def discard(self) -> None:
        if self.fh:
            self.fh.close()
            self.fh = None
        if os.path.exists(self.staged):
            os.unlink(self.staged)


class _Tally:
    """SHA-256 and size of the stored bytes (the ciphertext, when encrypted), as they pass."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

    def count(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.sha.update(chunk)
            self.size += len(chunk)
            yield chunk


def _plaintext(stored: Iterable[bytes], encrypted: bool, identities: Sequence[Any], where: str) -> Iterator[bytes]:
    return crypt.decrypt(stored, identities, where) if encrypted else iter(stored)


def plaintext_of(bucket: Bucket, key: str, manifest: Manifest, identities: Sequence[Any]) -> Iterator[bytes]:
    """An object's bytes as compressed (plain) or archived (custom): decrypted when encrypted."""
    where = f"s3://{bucket.loc.bucket}/{key}"
    if manifest.encrypted:
        crypt.require_identities(identities, where)
    return _plaintext(bucket.stream(key), manifest.encrypted, identities, where)


def verify(
    bucket: Bucket,
    key: str,
    manifest: Manifest | None,
    fmt: str,
    compression: str,
    stage_dir: str | None = None,
    identities: Sequence[Any] = (),
) -> Verified:
    """Read the object end to end and prove it intact (decrypting it, when it is encrypted), touching
    no database."""
    t0 = time.monotonic()
    head = bucket.head(key)
    if head is None:
        raise WorkerError(f"restore object s3://{bucket.loc.bucket}/{key} disappeared")
    where = f"s3://{bucket.loc.bucket}/{key}"
    if manifest and head.size != manifest.object_bytes:
        raise WorkerError(
            f"{where} is {head.size} bytes but its manifest says {manifest.object_bytes}",
            hint="the object is truncated or was replaced; choose another backup",
        )
    if head.size == 0:
        raise WorkerError(f"{where} is empty", hint="choose another backup")
    encrypted = manifest.encrypted if manifest else naming.is_encrypted(key)
    if encrypted:
        crypt.require_identities(identities, where)
    check: _PlainCheck | _CustomCheck = (
        _PlainCheck(where, compression) if fmt == "plain" else _CustomCheck(where, stage_dir, head.size)
    )
    tally = _Tally()
    try:
        for chunk in _plaintext(tally.count(bucket.stream(key)), encrypted, identities, where):
            check.feed(chunk)
        check.finish()
        digest, size = tally.sha.hexdigest(), tally.size
        if manifest and (digest != manifest.sha256 or size != manifest.object_bytes):
            raise WorkerError(
                f"{where} fails its checksum (SHA-256 {digest[:12]}…, manifest {manifest.sha256[:12]}…)",
                hint="the object is corrupt; choose another backup",
            )
    except BaseException:
        check.discard()
        raise
    plain = isinstance(check, _PlainCheck)
    raw = check.gz.raw_bytes if isinstance(check, _PlainCheck) else size
    log.info(
        "object verified",
        key=key,
        bytes=size,
        raw=log.human_bytes(raw),
        sha256=digest,
        duration=log.seconds(time.monotonic() - t0),
        checked=("age," if encrypted else "")
        + (
            f"size,sha256,{compression},trailer"
            if (plain and manifest)
            else f"{compression},trailer"
            if plain
            else "size,sha256,archive"
        ),
    )
    dump_major = manifest.pg_dump_major if manifest else check.dumped_by()
    if isinstance(check, _CustomCheck):
        return Verified(
            key,
            fmt,
            compression,
            size,
            raw,
            digest,
            dump_major,
            manifest,
            check.staged,
            identities=identities,
            encrypted=encrypted,
        )
    verified = Verified(
        key, fmt, compression, size, raw, digest, dump_major, manifest, identities=identities, encrypted=encrypted
    )
    verified.entries, verified.large_objects = check.scanner.types, check.scanner.large_objects
    verified.roles = check.scanner.roles
    return verified


def sql_from_object(bucket: Bucket, v: Verified) -> Iterator[bytes]:
    """Yields the plain SQL while re-checking the bytes against what verify() saw."""
    tally = _Tally()
    gz = Decompressor(v.compression)
    where = f"s3://{bucket.loc.bucket}/{v.key}"
    for chunk in _plaintext(tally.count(bucket.stream(v.key)), v.encrypted, v.identities, where):
        yield gz.feed(chunk)
    gz.finish()
    if tally.size != v.object_bytes or tally.sha.hexdigest() != v.sha256:
        raise WorkerError(
            f"s3://{bucket.loc.bucket}/{v.key} changed while it was being restored", hint="nothing was committed; retry"
        )
