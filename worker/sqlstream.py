"""pg_dump's plain SQL read as a stream: what it will create, and the transaction control it brings.

A plain dump (and `pg_restore -f -` of an archive) wraps each large-object data section in a
`BEGIN;` … `COMMIT;` of its own. Inside the restore's transaction that `COMMIT;` would commit
everything before it — the `force` preamble's DROPs included — so those two lines are turned into
comments. They are found by position, never by a text search: only the `BEGIN;` that follows a
`Type: BLOBS` TOC header, outside COPY data, and the `COMMIT;` that closes that section after
nothing but `lo_open`/`lowrite`/`lo_close` lines. A function body or a COPY row holding the line
`COMMIT;` passes through untouched, and so does a function body that imitates a whole TOC header:
quoted text (dollar-quoted bodies, string literals, quoted names) is never taken for a header. Anything this
scanner does not recognise is left as it is; the
restore's commit guard (worker/sql.py) then refuses a premature COMMIT, so an unknown layout fails
safely instead of committing part of a restore.

Everything else passes through byte for byte, and COPY data (the bulk of a dump) is skipped with a
single `bytes.find` per block, so the scan costs little next to decompression.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Generator, Iterable, Iterator

_TOP, _COPY, _LO_HEAD, _LO_BODY = range(4)
_TOP_LINE = re.compile(
    rb"^(?:(?P<copy>COPY [^\n]* FROM stdin;)"
    rb"|-- (?:Data for )?Name: [^\n]*; Type: (?P<type>[A-Z][A-Z ]*); Schema: [^\n]*"
    rb"|(?P<lo>SELECT pg_catalog\.lo_create\('[0-9]+'\))"
    rb"|(?P<connect>\\c(?:onnect)?\b[^\n]*))"
    # Quoting, so that no text inside a literal, an identifier or a body is taken for a header:
    # a dollar quote (not glued to an identifier: `a$b$` is a name), a single or double quote (a
    # doubled '' or "" closes and reopens), and a `--` comment, which runs to the end of its line.
    rb"|(?P<dollar>(?<![A-Za-z0-9_$])\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$)"
    rb"|(?P<quote>['\"])"
    rb"|(?P<comment>--[^\n]*)",
    re.M,
)
_LO_STATEMENT = (b"SELECT pg_catalog.lo_open(", b"SELECT pg_catalog.lowrite(", b"SELECT pg_catalog.lo_close(")
BEGIN_REPLACEMENT = b"-- BEGIN; (cnpg-pgdump-backup: large objects join the restore's own transaction)\n"
COMMIT_REPLACEMENT = b"-- COMMIT; (cnpg-pgdump-backup: the restore commits once, at its end)\n"


class DumpScanner:
    """Feed it a plain dump chunk by chunk; it yields the same SQL with the large-object sections'
    own BEGIN/COMMIT commented out, and counts the TOC entries by type on the way."""

    def __init__(self) -> None:
        self.types: Counter[str] = Counter()  # TOC entry type -> count ("TABLE", "INDEX", ...)
        self.large_objects = 0  # lo_create statements: one per large object
        self.rewritten = 0  # BEGIN/COMMIT lines turned into comments
        self.connects = 0  # \connect meta-commands: a restore must never switch databases
        self._state = _TOP
        self._carry = b""
        self._bol = True  # does the carried/next byte start a line?
        # inside a quoted text: the token that closes it ($$, $tag$, ' or "); no header there is real
        self._quote: bytes | None = None

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        buf = self._carry + chunk if self._carry else chunk
        self._carry = b""
        pos, n = 0, len(buf)
        while pos < n:
            if self._state == _COPY:
                pos = yield from self._copy(buf, pos)
                if self._state == _COPY:
                    return
                continue
            end = buf.find(b"\n", pos)
            if end < 0:  # a partial line: wait for the rest
                self._carry = buf[pos:]
                return
            if self._state == _TOP:
                pos = yield from self._top(buf, pos)
            else:
                line = buf[pos : end + 1]
                yield self._lo_line(line)
                pos = end + 1
                self._bol = True

    def finish(self) -> Iterator[bytes]:
        if self._carry:
            rest, self._carry = self._carry, b""
            if self._state in (_LO_HEAD, _LO_BODY):
                yield self._lo_line(rest)
            else:
                yield rest

    def scan(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.finish()

    def _top(self, buf: bytes, pos: int) -> Generator[bytes, None, int]:
        """From a line start: pass DDL through up to the next line that changes state."""
        last_nl = buf.rfind(b"\n", pos) + 1  # only whole lines are looked at
        for m in _TOP_LINE.finditer(buf, pos, last_nl):
            token = m.group("dollar") or m.group("quote")
            if self._quote is not None:
                if token == self._quote:
                    self._quote = None
                continue  # a body's, a literal's or a name's text, whatever it looks like
            if token:
                self._quote = token
                continue
            if m.group("comment"):
                continue
            if m.group("type"):
                kind = m.group("type").decode().strip()
                self.types[kind] += 1
                if kind == "BLOBS":
                    end = buf.index(b"\n", m.start()) + 1
                    yield buf[pos:end]
                    self._state = _LO_HEAD
                    return end
            elif m.group("lo"):
                self.large_objects += 1
            elif m.group("connect"):
                self.connects += 1
            elif m.group("copy"):
                end = buf.index(b"\n", m.start()) + 1
                yield buf[pos:end]
                self._state, self._bol = _COPY, True
                return end
        yield buf[pos:last_nl]
        if last_nl < len(buf):
            self._carry = buf[last_nl:]
        return len(buf)

    def _copy(self, buf: bytes, pos: int) -> Generator[bytes, None, int]:
        """COPY data ends at a line `\\.`; no data row can be that line (COPY escapes backslashes)."""
        if self._bol and buf.startswith(b"\\.\n", pos):
            stop = pos
        else:
            i = buf.find(b"\n\\.\n", pos)
            stop = i + 1 if i >= 0 else -1
        if stop < 0:
            keep = max(pos, len(buf) - 3)  # "\n\\." may continue in the next chunk
            if keep > pos:
                yield buf[pos:keep]
            self._bol = buf[keep - 1 : keep] == b"\n" if keep > pos else self._bol
            self._carry = buf[keep:]
            return len(buf)
        end = stop + 3
        yield buf[pos:end]
        self._state, self._bol = _TOP, True
        return end

    def _lo_line(self, line: bytes) -> bytes:
        text = line.rstrip(b"\n")
        if self._state == _LO_HEAD:
            if text == b"BEGIN;":
                self._state = _LO_BODY
                self.rewritten += 1
                return BEGIN_REPLACEMENT
            if not (text == b"" or text.startswith((b"--", b"SET ", b"RESET "))):
                self._state = _TOP  # not the layout we know: leave it alone (the guard stays armed)
            return line
        if text == b"COMMIT;":
            self._state = _TOP
            self.rewritten += 1
            return COMMIT_REPLACEMENT
        if not (text == b"" or text.startswith(_LO_STATEMENT)):
            self._state = _TOP
        return line
