"""Apply a globals backup (worker/globals.py) to a cluster: add what is missing, change nothing that exists.

Never run as the SQL pg_dumpall wrote: that would reset the password of every role it names (the
bootstrap superuser's included) and re-grant what was revoked since. Instead every statement is
parsed and judged against the roles the cluster had before the restore:

- `CREATE ROLE r`: only when r does not exist; then its `ALTER ROLE r WITH ...` (attributes, and the
  password if the backup holds one), `ALTER ROLE r SET ...`, `COMMENT ON ROLE r`, `SECURITY LABEL ... ON
  ROLE r` apply too. A role that existed keeps its password, attributes, settings and comment.
- `GRANT role TO member ...`: only when member is not yet a member of role (memberships are added,
  never changed); `GRANT ... ON PARAMETER` is added as it is.
- Tablespaces (`CREATE/ALTER/COMMENT ON/GRANT ... ON TABLESPACE`) are skipped and reported: one needs a
  directory on the server (CNPG declares tablespaces in the Cluster spec).
- `REVOKE` is skipped (it removes, and this restore never removes); `DROP` or anything not listed here
  refuses the whole object before anything runs.

Everything runs in one transaction: a statement that fails (or a signal) rolls back every role created
so far, so the cluster's roles are as they were. `dry_run` runs it all and rolls back.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from . import crypt, log, naming
from . import globals as gl
from .catalog import load_manifest
from .compress import Decompressor
from .errors import UsageError, WorkerError
from .manifest import Manifest
from .s3 import Bucket

MAX_OBJECT_BYTES = 256 * 1024 * 1024  # roles fit in kilobytes; anything this big is not a globals dump

_ID = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_IDS = rf"{_ID}(?:\s*,\s*{_ID})*"
_RULES: list[tuple[str, re.Pattern[str]]] = [
    (kind, re.compile(pattern, re.IGNORECASE | re.DOTALL))
    for kind, pattern in (
        ("session", r"^(?:SET\s|SELECT\s+pg_catalog\.set_config\()"),
        ("create_role", rf"^CREATE\s+ROLE\s+(?P<role>{_ID})$"),
        ("role_setting", rf"^ALTER\s+ROLE\s+(?P<role>{_ID})\s+IN\s+DATABASE\s+(?P<db>{_ID})\s+(?:SET|RESET)\s"),
        ("role_attributes", rf"^ALTER\s+ROLE\s+(?P<role>{_ID})\s+WITH\s"),
        ("role_setting", rf"^ALTER\s+ROLE\s+(?P<role>{_ID})\s+(?:SET|RESET)\s"),
        ("role_comment", rf"^COMMENT\s+ON\s+ROLE\s+(?P<role>{_ID})\s+IS\s"),
        ("role_label", rf"^SECURITY\s+LABEL\s+(?:FOR\s+{_ID}\s+)?ON\s+ROLE\s+(?P<role>{_ID})\s+IS\s"),
        (
            "tablespace",
            r"^(?:CREATE|ALTER)\s+TABLESPACE\s|^COMMENT\s+ON\s+TABLESPACE\s|^SECURITY\s+LABEL\s.*\sON\s+TABLESPACE\s",
        ),
        ("tablespace", r"^(?:GRANT|REVOKE)\s.*\sON\s+TABLESPACE\s"),
        ("grant_on", r"^GRANT\s.*\sON\s+PARAMETER\s"),
        ("revoke", r"^REVOKE\s"),
        (
            "membership",
            rf"^GRANT\s+(?P<roles>{_IDS})\s+TO\s+(?P<members>{_IDS})"
            rf"(?P<opts>\s+WITH\s+.*?)?(?:\s+GRANTED\s+BY\s+(?P<grantor>{_ID}))?$",
        ),
    )
]


_GRANTED_BY = re.compile(rf"\s+GRANTED\s+BY\s+{_ID}$", re.IGNORECASE)


def unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident.lower()


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _idents(text: str) -> list[str]:
    return [unquote(m) for m in re.findall(_ID, text)]


def statements(sql: str) -> Iterator[str]:
    """The SQL statements of a pg_dumpall script, without comments and psql meta-commands (`\\restrict`).

    Quotes are respected (a role comment may span lines and hold `;` or `--`); pg_dumpall writes
    standard strings, E'' strings are read with their backslash escapes, and it writes no dollar quotes."""
    buf: list[str] = []
    i, n = 0, len(sql)
    at_start = True  # at the start of a statement: a backslash begins a meta-command line
    while i < n:
        c = sql[i]
        if at_start and c.isspace():
            i += 1
            continue
        if c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if at_start and c == "\\":
            end = sql.find("\n", i)
            meta = sql[i : n if end < 0 else end].split()[0]
            if meta not in ("\\restrict", "\\unrestrict"):
                raise WorkerError(f"globals backup holds the psql meta-command {meta}, which this restore does not run")
            i = n if end < 0 else end + 1
            continue
        at_start = False
        if c in "'\"":
            escapes = (
                c == "'" and i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            )
            j = i + 1
            while j < n:
                if escapes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                raise WorkerError("globals backup ends inside a quoted string", hint="the object is cut short")
            buf.append(sql[i : j + 1])
            i = j + 1
            continue
        if c == ";":
            text = "".join(buf).strip()
            if text:
                yield text
            buf, at_start = [], True
            i += 1
            continue
        buf.append(c)
        i += 1
    if "".join(buf).strip():
        raise WorkerError("globals backup ends inside a statement", hint="the object is cut short")


def classify(stmt: str) -> tuple[str, dict[str, str]]:
    for kind, pattern in _RULES:
        m = pattern.match(stmt)
        if m:
            return kind, {k: v for k, v in m.groupdict().items() if v is not None}
    raise WorkerError(
        f"globals backup holds a statement this restore does not apply: {stmt[:80]!r}",
        hint="nothing was changed; only the SQL of `pg_dumpall --globals-only` (no --clean) is applied",
    )


@dataclass
class Report:
    created: list[str] = field(default_factory=list)  # roles created
    existing: list[str] = field(default_factory=list)  # roles that existed: left exactly as they were
    memberships_added: list[str] = field(default_factory=list)
    memberships_existing: int = 0
    settings: int = 0  # ALTER ROLE ... SET, COMMENT, SECURITY LABEL, GRANT ON PARAMETER applied
    skipped: list[str] = field(default_factory=list)  # tablespaces, REVOKE, settings for missing databases

    def fields(self) -> dict[str, Any]:
        return {
            "created": ",".join(self.created) or "none",
            "existing": ",".join(self.existing) or "none",
            "memberships_added": len(self.memberships_added),
            "memberships_existing": self.memberships_existing,
            "settings": self.settings,
            "skipped": len(self.skipped),
        }


def _plan_and_run(conn: psycopg.Connection, sql: str, report: Report) -> None:
    stmts = [(s, *classify(s)) for s in statements(sql)]  # refuses the whole object before anything runs
    existed = {r for (r,) in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    databases = {d for (d,) in conn.execute("SELECT datname FROM pg_database").fetchall()}
    created: set[str] = set()
    for stmt, kind, parts in stmts:
        role = unquote(parts["role"]) if "role" in parts else None
        run = True
        if kind == "create_role":
            assert role is not None
            if role in existed:
                report.existing.append(role)
                run = False
            else:
                created.add(role)
                report.created.append(role)
        elif kind in ("role_attributes", "role_setting", "role_comment", "role_label"):
            run = role in created  # a role that existed keeps its password, attributes and settings
            if run and "db" in parts and unquote(parts["db"]) not in databases:
                report.skipped.append(f"{stmt[:60]}... (no database {unquote(parts['db'])} here)")
                run = False
            if run and kind != "role_attributes":
                report.settings += 1
        elif kind == "membership":
            pairs = [(r, m) for r in _idents(parts["roles"]) for m in _idents(parts["members"])]
            missing = [(r, m) for r, m in pairs if not _is_member(conn, m, r)]
            if not missing:
                report.memberships_existing += len(pairs)
                run = False
            else:
                report.memberships_added += [f"{m} in {r}" for r, m in missing]
                grantor = parts.get("grantor")
                if grantor and unquote(grantor) not in existed | created:
                    # the source's grantor is not here: the membership is granted by the restoring superuser
                    stmt = _GRANTED_BY.sub("", stmt)
        elif kind == "grant_on":
            report.settings += 1
        elif kind in ("tablespace", "revoke"):
            report.skipped.append(stmt[:80])
            run = False
        if run:
            conn.execute(stmt.encode())  # bytes: run as written, no client-side parameter parsing


def _is_member(conn: psycopg.Connection, member: str, role: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member"
        " WHERE r.rolname = %s AND m.rolname = %s",
        (role, member),
    ).fetchone()
    return row is not None


def apply_sql(sql: str, database: str, *, dry_run: bool = False) -> Report:
    """Apply a globals script in one transaction as the superuser; on any failure nothing stays."""
    report = Report()
    with gl.connect_superuser(database, autocommit=False) as conn:
        try:
            _plan_and_run(conn, sql, report)
        except psycopg.Error as exc:
            conn.rollback()
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WorkerError(
                f"applying the globals backup failed, rolled back (no role was created or changed): {detail}",
                hint="fix the conflict on the cluster (or restore the database without --globals) and run it again",
            ) from None
        except BaseException:
            conn.rollback()
            raise
        if dry_run:
            conn.rollback()
        else:
            conn.commit()
    for line in report.skipped:
        log.warning(f"globals restore: skipped {line}", hint="tablespaces and REVOKEs are never applied")
    return report


def read_object(bucket: Bucket, prefix: str, obj: str, identities: Sequence[Any] = ()) -> tuple[str, str]:
    """(key, SQL) of a globals backup, checked against its manifest (size, SHA-256) and its trailer."""
    gprefix = gl.globals_prefix(prefix)
    if obj == "latest":
        key = gl.latest(bucket, prefix).name.key
    else:
        obj = obj.strip()
        key = obj if gl.is_globals_key(obj) else naming.join(gprefix, obj.removeprefix("/"))
        if naming.parse(key, gprefix, gl.GLOBALS_NAME) is None:
            raise UsageError(
                f"{obj!r} is not a globals backup under s3://{bucket.loc.bucket}/{gprefix}/",
                hint="pass a key from `cnpg-backup-worker list --globals` (or its file name), or 'latest'",
            )
    manifest = catalog_manifest(bucket, key)
    where = f"s3://{bucket.loc.bucket}/{key}"
    if manifest.object_bytes > MAX_OBJECT_BYTES:  # read whole into memory below: bound it
        raise WorkerError(
            f"{where} is {log.human_bytes(manifest.object_bytes)}, too big for a globals backup; not applied",
            hint="pass a key from `cnpg-backup-worker list --globals`",
        )
    data = bucket.get_bytes(key)
    if len(data) != manifest.object_bytes or hashlib.sha256(data).hexdigest() != manifest.sha256:
        raise WorkerError(f"{where} does not match its manifest (size or SHA-256)", hint="the object is corrupt")
    if manifest.encrypted:  # age authenticates every chunk: altered or cut short fails here
        crypt.require_identities(identities, where)
        data = b"".join(crypt.decrypt([data], identities, where))
    d = Decompressor(manifest.codec)
    try:
        sql = d.feed(data)
        d.finish()
    except Exception as exc:  # noqa: BLE001 - any decoder error means corrupt
        raise WorkerError(
            f"{where} is not a valid {manifest.codec} stream: {exc}", hint="the object is corrupt"
        ) from None
    if gl.TRAILER not in sql[-1024:]:
        raise WorkerError(f"{where} lacks the dump-complete trailer", hint="the object is cut short")
    return key, sql.decode()


def catalog_manifest(bucket: Bucket, key: str) -> Manifest:
    if bucket.head(key) is None:
        raise WorkerError(
            f"globals backup s3://{bucket.loc.bucket}/{key} does not exist",
            hint="run `cnpg-backup-worker list --globals` and pass one of its keys, or 'latest'",
        )
    manifest = load_manifest(bucket, key)
    if manifest is None or not manifest.complete or manifest.extra.get("kind") != gl.KIND:
        raise WorkerError(
            f"s3://{bucket.loc.bucket}/{key} has no complete globals manifest; not applied",
            hint="choose another globals backup (`cnpg-backup-worker list --globals`)",
        )
    return manifest


def restore_globals(
    bucket: Bucket, prefix: str, obj: str, database: str, *, dry_run: bool = False, identities: Sequence[Any] = ()
) -> Report:
    key, sql = read_object(bucket, prefix, obj, identities)
    log.info("globals restore starting", key=key, dry_run=dry_run)
    report = apply_sql(sql, database, dry_run=dry_run)
    log.info(
        "globals restore rolled back (dry run)" if dry_run else "globals restore complete", key=key, **report.fields()
    )
    return report
