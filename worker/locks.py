"""Lock capacity: can the restore run as one transaction on this server?

One transaction holds a lock on every object it creates, drops or changes the owner of, until it
commits, and the server's lock table is shared and fixed in size:
`max_locks_per_transaction × (max_connections + background slots + max_prepared_transactions)`.
A dump with thousands of relations (multi-tenant schemas, partitions) needs more than CloudNativePG's
defaults allow, and fails late with `out of shared memory`. The restore counts what the dump will
lock before it starts — from the archive's TOC or the plain stream's TOC headers, read during
verification — and decides: one transaction when it fits, the non-transactional path for an empty
target, and for a forced restore that cannot fit, a refusal that says what to set.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

# Locks per TOC entry while restoring, by entry type (measured on PostgreSQL 13–18: a table takes its
# own, its TOAST table's and index's; a primary key its index; ALTER … OWNER locks the object).
# Entry types not listed take one; these take none of their own: data, comments, privileges.
_CREATE_LOCKS = {"TABLE": 3, "MATERIALIZED VIEW": 3}
_NO_LOCKS = {
    "TABLE DATA",
    "SEQUENCE SET",
    "SEQUENCE OWNED BY",
    "DEFAULT",
    "COMMENT",
    "ACL",
    "DEFAULT ACL",
    "BLOBS",
    "BLOB",
    "BLOB METADATA",
    "LARGE OBJECT",
    "ENCODING",
    "STDSTRINGS",
    "SEARCHPATH",
    "DATABASE",
    "DATABASE PROPERTIES",
    "TABLE ATTACH",
    "INDEX ATTACH",
    "ROW SECURITY",
    "SECURITY LABEL",
    "MATERIALIZED VIEW DATA",
    "EXTENSION",
    "SCHEMA",
}
# Dropping an existing object locks it and every object that depends on it (row types, TOAST,
# constraints, defaults): per object found in the target's catalog.
_DROP_LOCKS = {"relation": 4, "routine": 1, "type": 2, "schema": 1, "large object": 1}
# Other sessions hold locks too, and the table's nominal size is what is promised.
HEADROOM = 0.8


def need_for_entries(types: Counter[str], large_objects: int) -> int:
    n = 16  # the restore's own session: guard, catalogs, the target's schemas
    for kind, count in types.items():
        if kind not in _NO_LOCKS:
            n += _CREATE_LOCKS.get(kind, 1) * count
    return n + large_objects


def need_for_drop(objects: Iterable[tuple[str, int, str]]) -> int:
    return sum(_DROP_LOCKS.get(kind, 1) for kind, _, _ in objects)


_BLOB_RANGE = re.compile(r"^\d+; \d+ \d+ BLOB METADATA - (\d+)\.\.(\d+) ")


def archive_entries(pg_restore: str, archive: str, env: dict[str, str]) -> tuple[Counter[str], int]:
    """TOC entry types and large-object count of a custom archive (`pg_restore -l`)."""
    out = subprocess.run([pg_restore, "-l", archive], capture_output=True, text=True, env=env, check=True).stdout
    types: Counter[str] = Counter()
    los = 0
    for line in out.splitlines():
        if not line or line.startswith(";"):
            continue
        kind = _known_kind(line)
        types[kind] += 1
        r = _BLOB_RANGE.match(line)
        if r:
            los += int(r.group(2)) - int(r.group(1)) + 1  # at most the range: a batch is <= 1000
        elif kind == "BLOB":
            los += 1
    return types, los


_KINDS = sorted(
    {
        *_CREATE_LOCKS,
        *_NO_LOCKS,
        "INDEX",
        "CONSTRAINT",
        "FK CONSTRAINT",
        "SEQUENCE",
        "VIEW",
        "FOREIGN TABLE",
        "FUNCTION",
        "PROCEDURE",
        "AGGREGATE",
        "TYPE",
        "DOMAIN",
        "TRIGGER",
        "RULE",
        "POLICY",
        "EVENT TRIGGER",
        "PUBLICATION",
        "PUBLICATION TABLE",
        "SUBSCRIPTION",
        "OPERATOR",
        "COLLATION",
        "CAST",
        "CONVERSION",
    },
    key=len,
    reverse=True,
)


def _known_kind(line: str) -> str:
    rest = line.split(" ", 3)[3] if line.count(" ") >= 3 else ""
    for kind in _KINDS:
        if rest.startswith(kind + " "):
            return kind
    return rest.split(" ", 1)[0]


@dataclass(frozen=True)
class Capacity:
    max_locks_per_transaction: int
    slots: int  # backends + prepared transactions the lock table is sized for
    in_use: int

    @property
    def total(self) -> int:
        return self.max_locks_per_transaction * self.slots

    @property
    def available(self) -> int:
        return int(self.total * HEADROOM) - self.in_use

    def setting_for(self, need: int) -> int:
        """The max_locks_per_transaction that would let `need` locks fit."""
        return max(self.max_locks_per_transaction + 1, math.ceil((need + self.in_use) / HEADROOM / self.slots))


def capacity(conn: psycopg.Connection) -> Capacity:
    rows: dict[str, int] = dict(
        conn.execute(
            "SELECT name, setting::int FROM pg_settings WHERE name IN ('max_locks_per_transaction', 'max_connections',"
            " 'max_prepared_transactions', 'max_worker_processes', 'max_wal_senders', 'autovacuum_max_workers',"
            " 'autovacuum_worker_slots')"
        ).fetchall()
    )
    autovacuum = rows.get("autovacuum_worker_slots", rows.get("autovacuum_max_workers", 3))
    slots = (
        rows["max_connections"]
        + autovacuum
        + 1
        + rows.get("max_worker_processes", 8)
        + rows.get("max_wal_senders", 0)
        + rows.get("max_prepared_transactions", 0)
    )
    row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype <> 'virtualxid'").fetchone()
    assert row is not None  # an aggregate SELECT always returns one row
    in_use = int(row[0])
    return Capacity(rows["max_locks_per_transaction"], slots, in_use)
