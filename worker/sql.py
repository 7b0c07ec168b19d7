"""SQL the restore sends around a dump: the `force` preamble and prelude compatibility fixes."""

from __future__ import annotations

# `force` replaces the database's contents: inside the restore's own transaction, everything the
# dump could collide with is dropped first. Extension members and the `public` schema itself (its
# owner and privileges belong to the database) stay. If anything fails, all of it rolls back.
FORCE_PREAMBLE = r"""
DO $cnpg_force$
DECLARE r record;
BEGIN
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
                             AND d.objid = c.oid AND d.deptype IN ('e', 'i', 'a')) LOOP
    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                     WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.relname);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure::text AS sig, p.prokind FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public'
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                             AND d.objid = p.oid AND d.deptype = 'e') LOOP
    EXECUTE format('DROP %s IF EXISTS %s CASCADE',
      CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, r.sig);
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
END
$cnpg_force$;
"""


_PRELUDE_BYTES = 64 * 1024
# Settings newer pg_dump writes into the prelude that older servers reject ("unrecognized
# configuration parameter"): parameter -> first server major that knows it.
_NEWER_SETTINGS = {b"transaction_timeout": 17}


def compat_prelude(chunks, server_major: int):
    """Comment out prelude SET lines the target server does not know.

    pg_dump 17+ writes `SET transaction_timeout = 0;` whatever server it dumped, so its dump of a
    16 server cannot be restored into that same server without this. Only the prelude (the first
    64 KiB, before any data) is looked at; table data passes through untouched.
    """
    drop = [name for name, major in _NEWER_SETTINGS.items() if server_major < major]
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= _PRELUDE_BYTES:
            break
    for name in drop:
        head = head.replace(b"\nSET " + name + b" = ", b"\n-- (not supported by this server) SET " + name + b" = ")
    yield head
    yield from it
