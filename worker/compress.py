"""gzip streams in the chart's `.sql.gz` format, via ISA-L (several times faster than zlib's gzip).

Levels 1–3 use ISA-L's own levels; 4–9 fall back to zlib at that level for users who want the
smallest object and accept the slower dump. Either way the output is standard gzip (RFC 1952).
"""

from __future__ import annotations

import zlib

from isal import isal_zlib

_GZIP_WBITS = 31  # 16 + 15: gzip header and trailer (CRC32, ISIZE)


def compressor(level: int) -> isal_zlib.Compress | zlib._Compress:
    if 1 <= level <= 3:
        return isal_zlib.compressobj(level, isal_zlib.DEFLATED, _GZIP_WBITS)
    if 4 <= level <= 9:
        return zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    raise ValueError(f"compression level must be 1-9, got {level}")


class GunzipStream:
    """Decompresses a (possibly multi-member) gzip stream and proves it is complete and intact.

    The CRC32 and length in each member's trailer are checked by the decompressor; `finish()` fails
    when the stream stops inside a member, which is what a truncated upload looks like.
    """

    def __init__(self) -> None:
        self._d = isal_zlib.decompressobj(_GZIP_WBITS)
        self._in_member = False
        self.members = 0
        self.raw_bytes = 0

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            self._in_member = True
            out.append(self._d.decompress(data))
            if self._d.eof:
                self.members += 1
                self._in_member = False
                data = self._d.unused_data
                self._d = isal_zlib.decompressobj(_GZIP_WBITS)
            else:
                data = b""
        result = b"".join(out)
        self.raw_bytes += len(result)
        return result

    def finish(self) -> None:
        if self.members == 0 or self._in_member:
            raise ValueError("gzip stream is truncated (it ends inside a member)")
