"""The compressors and decompressors of the stored bytes, one per codec.

- gzip: the chart's `.sql.gz`, via ISA-L (several times faster than zlib's gzip). Levels 1–3 use
  ISA-L's own levels; 4–9 fall back to zlib at that level for users who want the smallest object
  and accept the slower dump. Either way the output is standard gzip (RFC 1952).
- zstd: `.sql.zst` (RFC 8878), via `zstandard`, multi-threaded, with a content checksum per frame.
- lz4: only inside custom archives, where pg_dump itself compresses (worker/dumpstream.py).

Decompressors prove a stream complete and intact: every gzip member's CRC32/ISIZE or zstd frame's
checksum is checked by the library; `finish()` fails when the stream stops inside a member/frame,
which is what a truncated upload looks like.
"""

from __future__ import annotations

import zlib
from typing import Final, Protocol

import zstandard
from isal import isal_zlib

from . import contract

PLAIN_CODECS: Final = ("gzip", "zstd")  # lz4 exists for custom archives only (pg_dump -Z lz4)
_GZIP_WBITS = 31  # 16 + 15: gzip header and trailer (CRC32, ISIZE)


class Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self) -> bytes: ...


def compressor(level: int, codec: str = "gzip") -> Compressor:
    """The worker's compressor for a plain dump."""
    problem = contract.compression_problem("plain", codec, level)
    if problem:
        raise ValueError(problem)
    if codec == "zstd":
        # threads=-1: one per CPU; the stream stays one frame, with its checksum.
        return zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True).compressobj()
    if level <= 3:
        return isal_zlib.compressobj(level, isal_zlib.DEFLATED, _GZIP_WBITS)
    return zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)


class _Unit(Protocol):
    """One gzip member's or zstd frame's decoder."""

    eof: bool
    unused_data: bytes

    def decompress(self, data: bytes, /) -> bytes: ...


class Decompressor:
    """Decompresses a stream of one or more gzip members / zstd frames and proves it complete."""

    def __init__(self, codec: str = "gzip") -> None:
        if codec not in PLAIN_CODECS:
            raise ValueError(f"no stream decompressor for {codec!r}")
        self.codec = codec
        self._d = self._unit()
        self._in_member = False
        self.members = 0
        self.raw_bytes = 0

    def _unit(self) -> _Unit:
        if self.codec == "zstd":
            return zstandard.ZstdDecompressor().decompressobj()  # type: ignore[return-value]
        return isal_zlib.decompressobj(_GZIP_WBITS)

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            self._in_member = True
            out.append(self._d.decompress(data))
            if self._d.eof:
                self.members += 1
                self._in_member = False
                data = self._d.unused_data
                self._d = self._unit()
            else:
                data = b""
        result = b"".join(out)
        self.raw_bytes += len(result)
        return result

    def finish(self) -> None:
        if self.members == 0 or self._in_member:
            unit = "frame" if self.codec == "zstd" else "member"
            raise ValueError(f"{self.codec} stream is truncated (it ends inside a {unit})")
