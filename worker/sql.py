"""SQL the restore sends around a dump: the `force` preamble and prelude compatibility fixes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# `force` replaces the database's contents: inside the restore's own transaction, everything the
# dump could collide with is dropped first — large objects, every user schema, and in `public` its
# relations, routines, types, operators, collations and text-search objects. Extension members and
# the `public` schema itself (its owner and privileges belong to the database) stay, and so do
# database-level objects a dump of one database may also carry: event triggers, publications,
# subscriptions, database settings (a dump holding one that exists fails, and rolls back).
FORCE_PREAMBLE = r"""
DO $cnpg_force$
DECLARE r record;
BEGIN
  FOR r IN SELECT m.oid FROM pg_largeobject_metadata m LOOP
    PERFORM pg_catalog.lo_unlink(r.oid);
  END LOOP;
  FOR r IN SELECT n.nspname FROM pg_namespace n
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
             AND n.nspname NOT LIKE 'pg\_%'
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                             AND d.objid = n.oid AND d.deptype = 'e') LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
  END LOOP;
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                             AND d.objid = c.oid AND d.objsubid = 0 AND d.refobjid <> c.oid
                             AND d.deptype IN ('e', 'i', 'a')) LOOP
    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                     WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.relname);
  END LOOP;
  FOR r IN SELECT p.oid, p.prokind FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public'
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                             AND d.objid = p.oid AND d.deptype = 'e') LOOP
    IF EXISTS (SELECT 1 FROM pg_proc WHERE oid = r.oid) THEN
      EXECUTE format('DROP %s %s CASCADE',
        CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
        r.oid::regprocedure);
    END IF;
  END LOOP;
  FOR r IN SELECT t.typname, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public'
             AND (t.typtype IN ('e', 'd', 'r')
                  OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                             AND d.objid = t.oid AND d.deptype = 'e') LOOP
    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE',
      CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.typname);
  END LOOP;
  FOR r IN SELECT o.oid FROM pg_operator o WHERE o.oprnamespace = 'public'::regnamespace
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_operator'::regclass
                             AND d.objid = o.oid AND d.deptype = 'e') LOOP
    IF EXISTS (SELECT 1 FROM pg_operator WHERE oid = r.oid) THEN
      EXECUTE format('DROP OPERATOR %s CASCADE', r.oid::regoperator);
    END IF;
  END LOOP;
  FOR r IN SELECT c.collname FROM pg_collation c WHERE c.collnamespace = 'public'::regnamespace
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_collation'::regclass
                             AND d.objid = c.oid AND d.deptype = 'e') LOOP
    EXECUTE format('DROP COLLATION IF EXISTS public.%I CASCADE', r.collname);
  END LOOP;
  FOR r IN SELECT c.cfgname FROM pg_ts_config c WHERE c.cfgnamespace = 'public'::regnamespace
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_ts_config'::regclass
                             AND d.objid = c.oid AND d.deptype = 'e') LOOP
    EXECUTE format('DROP TEXT SEARCH CONFIGURATION IF EXISTS public.%I CASCADE', r.cfgname);
  END LOOP;
  FOR r IN SELECT t.dictname FROM pg_ts_dict t WHERE t.dictnamespace = 'public'::regnamespace
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_ts_dict'::regclass
                             AND d.objid = t.oid AND d.deptype = 'e') LOOP
    EXECUTE format('DROP TEXT SEARCH DICTIONARY IF EXISTS public.%I CASCADE', r.dictname);
  END LOOP;
END
$cnpg_force$;
"""


_PRELUDE_BYTES = 64 * 1024
# Settings newer pg_dump writes into the prelude that older servers reject ("unrecognized
# configuration parameter"): parameter -> first server major that knows it.
_NEWER_SETTINGS = {b"transaction_timeout": 17}


def compat_prelude(chunks: Iterable[bytes], server_major: int, lock_timeout_s: float = 0) -> Iterator[bytes]:
    """Comment out prelude SET lines the target server does not know; apply our lock timeout.

    pg_dump 17+ writes `SET transaction_timeout = 0;` whatever server it dumped, so its dump of a
    16 server cannot be restored into that same server without this. Every dump also writes
    `SET lock_timeout = 0;` (wait for ever); with a timeout configured, that line sets ours instead,
    so a restore stuck behind an application's lock fails (and rolls back) instead of hanging.
    Only the prelude (the first 64 KiB, before any data) is looked at; data passes through untouched.
    """
    drop = [name for name, major in _NEWER_SETTINGS.items() if server_major < major]
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= _PRELUDE_BYTES:
            break
    if lock_timeout_s > 0:
        head = head.replace(
            b"\nSET lock_timeout = 0;\n", b"\nSET lock_timeout = '%dms';\n" % int(lock_timeout_s * 1000), 1
        )
    for name in drop:
        head = head.replace(b"\nSET " + name + b" = ", b"\n-- (not supported by this server) SET " + name + b" = ")
    yield head
    yield from it


# The commit guard. A transaction can be committed from inside its own SQL: a dump's `COMMIT;`, or
# psql committing `--single-transaction` work when its input simply ends (a killed worker). The
# guard is a deferred constraint trigger on a temporary table: it fires at any COMMIT and aborts it
# unless the worker has said its final word (`FINAL_WORD`), which it sends only after every byte of
# the dump was read, verified and executed. A premature COMMIT therefore rolls everything back.
GUARD_SETTING = "cnpg_pgdump_backup.commit"
COMMIT_GUARD = f"""
BEGIN;
CREATE TEMPORARY TABLE cnpg_restore_guard (armed boolean);
CREATE FUNCTION pg_temp.cnpg_restore_guard() RETURNS trigger LANGUAGE plpgsql AS $cnpg_guard$
BEGIN
  IF coalesce(current_setting('{GUARD_SETTING}', true), '') <> 'yes' THEN
    RAISE EXCEPTION 'cnpg-pgdump-backup: COMMIT before the end of the restore was refused; nothing was committed'
      USING HINT = 'the restore stream ended early or the dump holds transaction control of its own';
  END IF;
  RETURN NULL;
END
$cnpg_guard$;
CREATE CONSTRAINT TRIGGER cnpg_restore_guard AFTER INSERT ON pg_temp.cnpg_restore_guard
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pg_temp.cnpg_restore_guard();
ALTER TABLE pg_temp.cnpg_restore_guard ENABLE ALWAYS TRIGGER cnpg_restore_guard;
INSERT INTO pg_temp.cnpg_restore_guard VALUES (true);
"""
FINAL_WORD = f"\nSET LOCAL {GUARD_SETTING} = 'yes';\nCOMMIT;\n"


def session_settings(server_major: int, lock_timeout_s: float = 0) -> str:
    # From 14 on the backend checks its client while a statement runs: a psql killed mid-CREATE
    # INDEX ends that statement (and its transaction) at once instead of when it next writes.
    out = "SET client_connection_check_interval = '1s';\n" if server_major >= 14 else ""
    # The force preamble runs before the dump's own `SET lock_timeout` (rewritten by compat_prelude):
    # its DROPs wait on applications' locks too, so the timeout must hold from the first statement.
    if lock_timeout_s > 0:
        out += f"SET lock_timeout = '{int(lock_timeout_s * 1000)}ms';\n"
    return out


# A non-transactional restore (empty target, schema too large for one transaction) marks the
# database first, committed: a worker killed mid-way leaves the marker, and the next restore knows
# the contents are a partial restore of an empty database, which it may empty again.
MARKER_TABLE = "cnpg_pgdump_backup_restore_incomplete"
CREATE_MARKER = (
    f"CREATE TABLE public.{MARKER_TABLE} (started_at timestamptz NOT NULL DEFAULT now(), object text NOT NULL)"
)
