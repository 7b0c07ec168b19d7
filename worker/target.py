"""The restore's target database: what it holds (a fingerprint to compare), and emptying it again.

The fingerprint is what lets the worker say "unchanged" truthfully: taken before the restore and
again after a failure, it compares every user object by identity (OID and name: a table dropped and
recreated, even with the same name, differs), every large object, and the exact row count of each
small table. A restore never writes into a table that existed before it — it either drops it (with
`force`, inside the transaction) or creates new ones — so identical objects with identical OIDs
mean identical contents.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from . import log, pg
from .errors import WorkerError
from .sql import FORCE_PREAMBLE, MARKER_TABLE
from .sqlstream import DumpScanner

if TYPE_CHECKING:
    from .verify import Verified

_USER_NS = """n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'"""
_NOT_EXT = """NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{cat}'::regclass
                          AND d.objid = {oid} AND d.deptype = 'e')"""

FINGERPRINT_SQL = f"""
SELECT 'relation', c.oid::bigint, n.nspname || '.' || c.relname || ' (' || c.relkind::text || ')'
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_NS} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I', 'c')
   AND {_NOT_EXT.format(cat="pg_class", oid="c.oid")}
UNION ALL
SELECT 'routine', p.oid::bigint, p.oid::regprocedure::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {_USER_NS} AND {_NOT_EXT.format(cat="pg_proc", oid="p.oid")}
UNION ALL
SELECT 'type', t.oid::bigint, n.nspname || '.' || t.typname
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE {_USER_NS} AND t.typtype IN ('e', 'd', 'r', 'm')
   AND {_NOT_EXT.format(cat="pg_type", oid="t.oid")}
UNION ALL
SELECT 'schema', n.oid::bigint, n.nspname FROM pg_namespace n
 WHERE {_USER_NS} AND n.nspname <> 'public' AND {_NOT_EXT.format(cat="pg_namespace", oid="n.oid")}
UNION ALL
SELECT 'large object', m.oid::bigint, m.oid::text FROM pg_largeobject_metadata m
UNION ALL
SELECT 'extension', e.oid::bigint, e.extname || ' ' || e.extversion FROM pg_extension e WHERE e.extname <> 'plpgsql'
"""
# Exact row counts cost a scan: only for tables small enough to count in passing.
SMALL_TABLES_SQL = f"""
SELECT c.oid::bigint, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_NS} AND c.relkind = 'r' AND c.relpages < 1280
   AND {_NOT_EXT.format(cat="pg_class", oid="c.oid")}
 ORDER BY c.relpages LIMIT 200
"""
# User objects: what a restore would collide with (indexes and row types come with their tables).
_COUNTED = {"relation", "routine", "type", "schema", "large object"}


@dataclass(frozen=True)
class Fingerprint:
    objects: frozenset[tuple[str, int, str]]
    row_counts: tuple[tuple[int, int], ...] = field(default=())

    @property
    def user_objects(self) -> int:
        """Objects a restore collides with: relations except indexes/row types, and the rest."""
        return sum(
            1 for kind, _, name in self.objects if kind in _COUNTED and not name.endswith((" (i)", " (I)", " (c)"))
        )

    @property
    def large_objects(self) -> int:
        return sum(1 for kind, _, _ in self.objects if kind == "large object")

    @property
    def has_marker(self) -> bool:
        return any(kind == "relation" and name == f"public.{MARKER_TABLE} (r)" for kind, _, name in self.objects)

    def describe(self) -> str:
        return (
            f"{self.user_objects} user objects ({self.large_objects} large objects), "
            f"row counts of {len(self.row_counts)} small tables"
        )

    def difference(self, after: Fingerprint) -> str:
        """What changed, in a few words a human can act on ('' when nothing did)."""
        gone = sorted(self.objects - after.objects, key=lambda o: o[2])
        new = sorted(after.objects - self.objects, key=lambda o: o[2])
        parts = []
        if gone:
            parts.append(f"{len(gone)} objects gone (e.g. {', '.join(o[2] for o in gone[:3])})")
        if new:
            parts.append(f"{len(new)} objects new (e.g. {', '.join(o[2] for o in new[:3])})")
        counts_before, counts_after = dict(self.row_counts), dict(after.row_counts)
        changed = [oid for oid, n in counts_before.items() if oid in counts_after and counts_after[oid] != n]
        if changed:
            parts.append(f"row counts of {len(changed)} tables differ")
        return "; ".join(parts)


def fingerprint(conn: psycopg.Connection) -> Fingerprint:
    objects = frozenset((k, int(o), str(name)) for k, o, name in conn.execute(FINGERPRINT_SQL).fetchall())
    counts = []
    for oid, qualified in conn.execute(SMALL_TABLES_SQL).fetchall():
        try:
            row = conn.execute(f"SELECT count(*) FROM {qualified}").fetchone()
            assert row is not None  # an aggregate SELECT always returns one row
            counts.append((int(oid), int(row[0])))
        except psycopg.Error:
            # not readable by this role (another owner): its identity is still compared above
            if not conn.autocommit:
                conn.rollback()
    return Fingerprint(objects, tuple(sorted(counts)))


def empty_database(conn: psycopg.Connection, batch: int = 100) -> None:
    """Remove every user object, committing in batches so that the lock table never has to hold
    a whole huge schema at once (the reason a restore ran outside one transaction)."""
    rels = conn.execute(f"""
        SELECT format('DROP %s IF EXISTS %I.%I CASCADE', CASE c.relkind WHEN 'v' THEN 'VIEW'
                 WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                 ELSE 'TABLE' END, n.nspname, c.relname)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {_USER_NS} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           AND NOT (n.nspname = 'public' AND c.relname = '{MARKER_TABLE}')  -- dropped last, below
           AND (c.relispartition  -- leaf first, in batches: a parent's CASCADE would lock them all at once
                OR NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                               AND d.objid = c.oid AND d.objsubid = 0 AND d.refobjid <> c.oid
                               AND d.deptype IN ('e', 'i', 'a')))
         ORDER BY c.relispartition DESC, c.relkind = 'S', c.oid DESC""").fetchall()
    for i in range(0, len(rels), batch):
        with conn.transaction():
            for (stmt,) in rels[i : i + batch]:
                conn.execute(stmt)
    while True:
        with conn.transaction():
            row = conn.execute(
                "SELECT count(pg_catalog.lo_unlink(oid)) FROM (SELECT oid FROM pg_largeobject_metadata LIMIT 1000) m"
            ).fetchone()
            assert row is not None  # an aggregate SELECT always returns one row
            n = row[0]
        if not n:
            break
    # Schema by schema (a tenant schema's routines and types in one transaction each), then the
    # rest and, in that same last transaction, the marker: until everything is gone the database
    # stays marked as holding a partial restore.
    schemas = conn.execute(f"""
        SELECT format('DROP SCHEMA IF EXISTS %I CASCADE', n.nspname) FROM pg_namespace n
         WHERE {_USER_NS} AND n.nspname <> 'public'
           AND {_NOT_EXT.format(cat="pg_namespace", oid="n.oid")}""").fetchall()
    for (stmt,) in schemas:
        with conn.transaction():
            conn.execute(stmt)
    with conn.transaction():
        conn.execute(FORCE_PREAMBLE)  # what is left is small: public's routines, types, operators
        conn.execute(f"DROP TABLE IF EXISTS public.{MARKER_TABLE}")
    log.log.debug("database emptied: %d relations", len(rels))


def create_roles(v: Verified, client: pg.Client, dbname: str) -> None:
    """Restore drills only: create (NOLOGIN) every role the dump refers to that the server lacks."""
    roles = set(v.roles)
    if v.format == "custom":
        assert v.staged is not None
        scanner = DumpScanner(passthrough=False)
        p = subprocess.run(
            [client.tool("pg_restore"), "--schema-only", "--file=-", v.staged],
            capture_output=True,
            env=pg.client_env(),
            check=False,
        )
        if p.returncode != 0:
            raise WorkerError(f"pg_restore could not list the roles of {v.key}: {p.stderr.decode()[-300:]}")
        for _ in scanner.scan([p.stdout]):
            pass
        roles |= scanner.roles
    with pg.connect(dbname) as conn:
        existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
        for role in sorted(roles - existing):
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    log.info("roles created for the restore", count=len(roles - existing))


def ensure_database(maintenance_db: str, name: str, *, create: bool) -> None:
    """A restore into another database (--target-database): create it with --create, or say how."""
    with pg.connect(maintenance_db) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        where = pg.target(name)
        role = conn.execute("SELECT current_user").fetchone()
        user = role[0] if role else "?"
        if not create:
            raise WorkerError(
                f"target database {name!r} does not exist on {where}; nothing was touched",
                hint="pass --create (restore.createDatabase) to create it, or create it first "
                "(CloudNativePG: a Database resource)",
            )
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            raise WorkerError(
                f"role {user!r} may not create database {name!r} on {where} (it lacks CREATEDB); nothing was touched",
                hint=f"create it first (CloudNativePG: a Database resource with spec.name {name} and owner {user}), "
                "or grant CREATEDB",
            ) from None
    log.info("target database created", database=name, owner=user)
