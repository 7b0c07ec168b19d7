"""Verification: prove a backup object intact, end to end, before any database is touched.

A plain object is decompressed in full (every gzip CRC, pg_dump's dump-complete trailer) and its
SQL is scanned for what it will create (TOC entries, large objects), which the restore needs to
choose its path. A custom archive is staged on local disk and its TOC listed. Both are checked
against the manifest's size and SHA-256; while restoring, the bytes are checked again on the way.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from . import log
from .compress import GunzipStream
from .dump import PLAIN_TRAILER
from .errors import WorkerError
from .manifest import Manifest
from .s3 import Bucket
from .sqlstream import DumpScanner

_DUMPED_BY = re.compile(rb"-- Dumped by pg_dump version (\d+)")


@dataclass
class Verified:
    key: str
    format: str
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


def verify(bucket: Bucket, key: str, manifest: Manifest | None, fmt: str, stage_dir: str | None = None) -> Verified:
    """Read the object end to end and prove it intact, touching no database."""
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
    sha = hashlib.sha256()
    size = 0
    staged = None
    first = b""
    last = b""
    gz = GunzipStream() if fmt == "plain" else None
    scanner = DumpScanner() if gz else None
    fh = None
    try:
        if fmt == "custom":
            try:
                fd, staged = tempfile.mkstemp(prefix="restore-", suffix=".dump", dir=stage_dir)
            except OSError as exc:
                raise WorkerError(
                    f"cannot stage {where} in {stage_dir or tempfile.gettempdir()}: {exc.strerror}",
                    hint="a custom-format restore needs a writable TMPDIR: the pod's /tmp emptyDir volume",
                ) from None
            fh = os.fdopen(fd, "wb")
        for chunk in bucket.stream(key):
            sha.update(chunk)
            size += len(chunk)
            if gz:
                try:
                    out = gz.feed(chunk)
                except Exception as exc:  # noqa: BLE001 - any decoder error means corrupt
                    raise WorkerError(
                        f"{where} is not a valid gzip stream: {exc}",
                        hint="the object is corrupt; choose another backup",
                    ) from None
                if len(first) < 4096:
                    first += out[: 4096 - len(first)]
                assert scanner is not None  # there is a scanner whenever there is a gzip stream
                for _ in scanner.feed(out):
                    pass
                if out:
                    last = (last + out)[-1024:]
            else:
                if len(first) < 8:
                    first += chunk[:8]
                try:
                    # custom: `fh` is open (a cast, not an assert: an unknown format fails here as before)
                    cast(BinaryIO, fh).write(chunk)
                except OSError as exc:
                    assert staged is not None  # `fh` was opened on it
                    raise WorkerError(
                        f"cannot stage {where} in {os.path.dirname(staged)}: {exc.strerror}",
                        hint="give the pod a larger /tmp (emptyDir sizeLimit) or use the plain format",
                    ) from None
        if fh:
            fh.close()
            fh = None
        if gz:
            try:
                gz.finish()
            except ValueError as exc:
                raise WorkerError(f"{where}: {exc}", hint="the object is truncated; choose another backup") from None
            assert scanner is not None  # there is a scanner whenever there is a gzip stream
            if PLAIN_TRAILER not in last:
                raise WorkerError(
                    f"{where} does not end with pg_dump's dump-complete trailer",
                    hint="the dump was cut short when it was taken; choose another backup",
                )
            for _ in scanner.finish():
                pass
            if scanner.connects:
                raise WorkerError(
                    f"{where} contains \\connect: it would switch databases in the middle of the restore",
                    hint="it was not made by this tool or the chart (pg_dump --create); restore it by hand",
                )
        elif not first.startswith(b"PGDMP"):
            raise WorkerError(f"{where} is not a pg_dump custom-format archive")
        digest = sha.hexdigest()
        if manifest and (digest != manifest.sha256 or size != manifest.object_bytes):
            raise WorkerError(
                f"{where} fails its checksum (SHA-256 {digest[:12]}…, manifest {manifest.sha256[:12]}…)",
                hint="the object is corrupt; choose another backup",
            )
        if manifest:
            dump_major = manifest.pg_dump_major
        else:
            m = _DUMPED_BY.search(first)
            dump_major = int(m.group(1)) if m else 0
    except BaseException:
        if fh:
            fh.close()
        if staged and os.path.exists(staged):
            os.unlink(staged)
        raise
    el = time.monotonic() - t0
    raw = gz.raw_bytes if gz else size
    log.info(
        "object verified",
        key=key,
        bytes=size,
        raw=log.human_bytes(raw),
        sha256=digest,
        duration=f"{el:.1f}s",
        checked="size,sha256,gzip,trailer" if (gz and manifest) else "gzip,trailer" if gz else "size,sha256,archive",
    )
    verified = Verified(key, fmt, size, raw, digest, dump_major, manifest, staged)
    if scanner:
        verified.entries, verified.large_objects = scanner.types, scanner.large_objects
    return verified


def sql_from_object(bucket: Bucket, v: Verified) -> Iterator[bytes]:
    """Yields the plain SQL while re-checking the bytes against what verify() saw."""
    sha = hashlib.sha256()
    size = 0
    gz = GunzipStream()
    for chunk in bucket.stream(v.key):
        sha.update(chunk)
        size += len(chunk)
        yield gz.feed(chunk)
    gz.finish()
    if size != v.object_bytes or sha.hexdigest() != v.sha256:
        raise WorkerError(
            f"s3://{bucket.loc.bucket}/{v.key} changed while it was being restored", hint="nothing was committed; retry"
        )
