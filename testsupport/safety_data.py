"""Databases that break naive restores, a full fingerprint to compare them, and server-side faults.

The source holds what a real application database does and a restore must carry: large objects,
partitions, a materialized view, a function whose body has a line `COMMIT;`, COPY rows that look
like pg_dump's own headers and transaction control, a comment holding `$$` and a name with an
apostrophe (quoting the dump scanner must see through), and a table big enough that a signal can be
delivered while its data is still flowing.
"""

from __future__ import annotations

import hashlib

from testsupport.dataset import SCHEMA_SQL

TRAPS_SQL = r"""
CREATE TABLE public.bulk (id bigint PRIMARY KEY, label text);
INSERT INTO public.bulk SELECT g, 'row ' || g || repeat(' padding', 8) FROM generate_series(1, 150000) g;
CREATE TABLE public.dumpish (line text);
INSERT INTO public.dumpish VALUES ('-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -'), ('BEGIN;'),
  ('COMMIT;'), (E'COMMIT;\nCOMMIT;'), ('\.');
CREATE FUNCTION public.has_commit_line() RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
  RETURN 'the next line is a comment, not a COMMIT of the dump';
-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -
COMMIT;
END
$body$;
CREATE TABLE public.events (id int, at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.events SELECT g, date '2024-01-01' + g, 'event ' || g FROM generate_series(1, 600) g;
CREATE MATERIALIZED VIEW public.event_counts AS SELECT date_trunc('month', at) AS m, count(*) FROM public.events GROUP BY 1;
SELECT lo_from_bytea(0, convert_to(repeat('large object one ', 5000), 'UTF8'));
SELECT lo_from_bytea(0, '\x00ff00ff'::bytea);
COMMENT ON TABLE public.bulk IS 'costs $$ and it''s quoted';
CREATE TABLE public."o'brien" (x text);
INSERT INTO public."o'brien" VALUES ('it''s here');
CREATE TABLE public.zz_last (id int);
GRANT SELECT ON public.zz_last TO PUBLIC;
"""

PRECIOUS_SQL = r"""
CREATE TABLE public.precious (id int PRIMARY KEY, v text);
INSERT INTO public.precious SELECT g, 'keep ' || g FROM generate_series(1, 300) g;
CREATE SCHEMA other;
CREATE TABLE other.t (x int);
INSERT INTO other.t VALUES (1), (2);
SELECT lo_from_bytea(0, 'a large object of the target'::bytea);
"""


def load_source(server, database: str) -> None:
    server.create_database(database)
    with server.connect(database) as c:
        c.execute(SCHEMA_SQL)
        c.execute(TRAPS_SQL)


def full_fingerprint(conn, *, with_oids: bool = True) -> dict:
    """Everything a restore could change: every user object (with its OID, so that a table dropped
    and re-created differs), every table's data, every large object's bytes, every routine's body."""
    oid = "c.oid::bigint" if with_oids else "0"
    rels = conn.execute(
        f"""SELECT n.nspname, c.relname, c.relkind::text, {oid} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
            ORDER BY 1, 2"""
    ).fetchall()
    out: dict = {"relations": rels}
    for nsp, rel, kind, _ in rels:
        q = f'"{nsp}"."{rel}"'
        if (
            kind == "m"
            and not conn.execute(f"SELECT relispopulated FROM pg_class WHERE oid = '{q}'::regclass").fetchone()[0]
        ):
            out[f"data {nsp}.{rel}"] = "not populated"
        elif kind in ("r", "m"):
            rows = conn.execute(f"SELECT t::text FROM {q} t ORDER BY 1").fetchall()
            out[f"data {nsp}.{rel}"] = hashlib.sha256("\n".join(r[0] for r in rows).encode()).hexdigest()
    lo_oid = "oid::bigint" if with_oids else "0"
    out["large objects"] = conn.execute(
        f"SELECT {lo_oid}, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY 2, 1"
    ).fetchall()
    out["routines"] = conn.execute(
        """SELECT p.oid::regprocedure::text, md5(p.prosrc) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"""
    ).fetchall()
    out["types"] = conn.execute(
        """SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
             AND t.typtype IN ('e', 'd') ORDER BY 1"""
    ).fetchall()
    return out


# Server-side faults: an event trigger (created by the superuser, left alone by the restore) fails
# the restore at a chosen point of the dump.
FAULT_TAGS = {
    "before_data": "CREATE VIEW",  # pre-data, before any COPY
    "after_large_objects": "CREATE INDEX",  # post-data, after the large-object section
    "last_statement": "GRANT",  # the privileges, at the very end
}


def arm_fault(server, database: str, fault: str) -> None:
    tag = FAULT_TAGS[fault]
    with server.connect(database) as c:
        c.execute(f"""
            CREATE FUNCTION pg_catalog.cnpg_test_fault() RETURNS event_trigger LANGUAGE plpgsql AS $f$
            BEGIN RAISE EXCEPTION 'injected fault at %', tg_tag; END $f$;
            CREATE EVENT TRIGGER cnpg_test_fault ON ddl_command_start WHEN TAG IN ('{tag}')
              EXECUTE FUNCTION pg_catalog.cnpg_test_fault();""")


def arm_pause(server, database: str, seconds: float = 3) -> None:
    """Hold the restore for `seconds` at its first CREATE INDEX: after the tables, their data and
    the large-object section, before the indexes. A signal sent while `paused` is true lands there,
    however fast the machine (a restore of this source takes well under a second)."""
    with server.connect(database) as c:
        c.execute(f"""
            CREATE FUNCTION pg_catalog.cnpg_test_pause() RETURNS event_trigger LANGUAGE plpgsql AS $f$
            BEGIN PERFORM pg_sleep({seconds}); END $f$;
            CREATE EVENT TRIGGER cnpg_test_pause ON ddl_command_start WHEN TAG IN ('CREATE INDEX')
              EXECUTE FUNCTION pg_catalog.cnpg_test_pause();""")


def paused(server, database: str) -> bool:
    with server.connect() as c:
        return bool(
            c.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND wait_event = 'PgSleep'"
                " AND application_name LIKE 'cnpg-pgdump-backup-restore-%%'",
                (database,),
            ).fetchone()
        )


def restore_sessions(server, database: str) -> int:
    """The worker's restore sessions (application_name cnpg-pgdump-backup-restore-<pid>) still on the server."""
    with server.connect() as c:
        return c.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            " AND application_name LIKE 'cnpg-pgdump-backup-restore-%%'",
            (database,),
        ).fetchone()[0]


def disarm_fault(server, database: str) -> None:
    with server.connect(database) as c:
        c.execute("DROP EVENT TRIGGER IF EXISTS cnpg_test_fault; DROP FUNCTION IF EXISTS pg_catalog.cnpg_test_fault()")
