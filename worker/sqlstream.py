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
    rb"|(?P<connect>\\c(?:onnect)?\b[^\n]*)"
    rb"|(?P<acl>(?:GRANT|REVOKE|ALTER DEFAULT PRIVILEGES|CREATE POLICY|ALTER [^\n]* OWNER TO) [^\n]*))"
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


_OWNER = re.compile(rb"; Owner: ([^;\n]+)$")
_IDENT = rb'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_ROLE_LIST = re.compile(rb"\b(?:TO|FROM|FOR ROLE|FOR USER|AUTHORIZATION) (" + _IDENT + rb"(?:, ?" + _IDENT + rb")*)")
_NOT_ROLES = {"PUBLIC", "CURRENT_USER", "SESSION_USER", "CURRENT_ROLE", "GROUP"}


def _roles_in(statement: bytes) -> set[str]:
    """Role names in a GRANT/REVOKE/OWNER TO/policy line, pg_dump's quoting undone."""
    roles = set()
    for m in _ROLE_LIST.finditer(statement):
        for ident in re.findall(_IDENT, m.group(1)):
            name = ident[1:-1].replace(b'""', b'"') if ident.startswith(b'"') else ident
            text = name.decode("utf-8", "replace")
            if text.upper() not in _NOT_ROLES:
                roles.add(text)
    return roles


def _copy_target(line: bytes) -> str:
    """`COPY sales."Order" (id, x) FROM stdin;` -> `sales."Order"` (pg_dump's own quoting)."""
    body = line[len(b"COPY ") : -len(b" FROM stdin;")]
    # the column list starts at the first " (" outside a quoted name
    quoted, i = False, 0
    while i < len(body):
        c = body[i : i + 1]
        if c == b'"':
            quoted = not quoted
        elif not quoted and body.startswith(b" (", i):
            body = body[:i]
            break
        i += 1
    return body.decode("utf-8", "replace")


class DumpScanner:
    """Feed it a plain dump chunk by chunk; it yields the same SQL with the large-object sections'
    own BEGIN/COMMIT commented out, and counts the TOC entries by type on the way."""

    def __init__(self, *, passthrough: bool = True) -> None:
        # passthrough=False: only count (the backup's row counts), without re-yielding COPY data
        self._pass = passthrough
        self.types: Counter[str] = Counter()  # TOC entry type -> count ("TABLE", "INDEX", ...)
        self.large_objects = 0  # lo_create statements: one per large object
        self.rewritten = 0  # BEGIN/COMMIT lines turned into comments
        self.connects = 0  # \connect meta-commands: a restore must never switch databases
        # rows of each table's COPY data, by the name the COPY line gives (as pg_dump quotes it):
        # counted in the dump's own snapshot, so a restore drill can compare them exactly
        self.rows: Counter[str] = Counter()
        self._copying = ""
        # roles the dump refers to (owners, grantees, policy roles): a restore drill creates them
        # in its scratch server, whose only role is its own
        self.roles: set[str] = set()
        self._state = _TOP
        self._carry = b""
        self._bol = True  # does the carried/next byte start a line?
        # inside a quoted text: the token that closes it ($$, $tag$, ' or "); no header there is real
        self._quote: bytes | None = None

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if self._carry and self._state == _COPY and len(self._carry) <= 3 and len(chunk) > 4:
            # the tail held back in case it starts "\n\\.": settle it with the next few bytes, so a
            # megabyte chunk is not copied just to prepend three bytes
            head = self._carry + chunk[:4]
            if b"\\." not in head:
                self.rows[self._copying] += self._carry.count(b"\n")
                if self._pass:
                    yield self._carry
                self._carry = b""
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
        at = pos
        while True:
            if self._quote is not None and self._quote.startswith(b"$"):
                # Inside a dollar-quoted body only its own closing tag counts, wherever it stands:
                # `AS $$SELECT x * 2$$` closes on the `$$` glued to the 2, which the opening
                # token's rule (not glued to an identifier) would not match.
                close = buf.find(self._quote, at, last_nl)
                if close < 0:
                    break
                at, self._quote = close + len(self._quote), None
                continue
            m = _TOP_LINE.search(buf, at, last_nl)
            if m is None:
                break
            at = max(m.end(), at + 1) if m.end() == m.start() else m.end()
            token = m.group("dollar") or m.group("quote")
            if self._quote is not None:
                if token == self._quote:
                    self._quote = None
                continue  # a literal's or a name's text, whatever it looks like
            if token:
                self._quote = token
                continue
            if m.group("comment"):
                continue
            if m.group("acl"):
                self.roles.update(_roles_in(m.group("acl")))
                continue
            if m.group("type"):
                owner = _OWNER.search(m.group(0))
                if owner:
                    self.roles.add(owner.group(1).decode("utf-8", "replace"))
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
                self._copying = _copy_target(m.group("copy"))
                self.rows[self._copying] += 0
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
                self.rows[self._copying] += buf.count(b"\n", pos, keep)
                if self._pass:
                    yield buf[pos:keep]
            self._bol = buf[keep - 1 : keep] == b"\n" if keep > pos else self._bol
            self._carry = buf[keep:]
            return len(buf)
        end = stop + 3
        self.rows[self._copying] += buf.count(b"\n", pos, stop)
        if self._pass:
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
