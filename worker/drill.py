"""Restore drills: prove the newest backup restores, without touching the production cluster.

`cnpg-backup-worker drill` takes the newest complete, unflagged backup (or --object), restores it
through the ordinary restore path (download, SHA-256 against the manifest, decompression, the
restore's own checks) into a throw-away PostgreSQL started in the pod (worker/scratch_pg.py), and
compares every table's row count with the count in the backup:

- plain dumps: the counts the backup recorded while streaming pg_dump's COPY data — the dump's
  own snapshot, so they are exact (manifest `extra.row_counts`);
- custom archives: the counts in the archive, read back with `pg_restore --data-only` (the worker
  does not parse archives while writing them), so a drill proves the archive restores whole.

The result goes to the status object and the metrics (`status`, `check`, CnpgBackupDrillFailed),
and any difference fails the drill with one line naming the table.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg import sql

from . import catalog, log, metrics, naming, notify, parts, pg
from .compress import Decompressor
from .errors import WorkerError
from .manifest import Manifest
from .restore import RestoreOptions, run_restore
from .s3 import Bucket, utcnow
from .scratch_pg import ScratchServer, choose_server
from .sqlstream import DumpScanner
from .verify import plaintext_of

DRILL_DATABASE = "cnpg_drill"
_LIBPQ = (
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGDATABASE",
    "PGSERVICE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGOPTIONS",
)


def split_name(name: str) -> tuple[str, str]:
    '''pg_dump's quoting undone: sales."Order ""x""" is ("sales", 'Order "x"').'''
    parts, cur, quoted, i = [], [], False, 0
    while i < len(name):
        c = name[i]
        if c == '"':
            if quoted and name[i + 1 : i + 2] == '"':
                cur.append('"')
                i += 1
            else:
                quoted = not quoted
        elif c == "." and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    if len(parts) != 2:
        raise ValueError(f"not a schema-qualified table name: {name!r}")
    return parts[0], parts[1]


@contextmanager
def _libpq_env(env: dict[str, str]) -> Iterator[None]:
    """Point every libpq use in this process (and its children) at the scratch server only."""
    saved = {k: os.environ.get(k) for k in _LIBPQ}
    for k in _LIBPQ:
        os.environ.pop(k, None)
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _plain_counts(bucket: Bucket, key: str, m: Manifest, identities: Sequence[Any]) -> dict[str, int]:
    d, scanner = Decompressor(m.codec), DumpScanner(passthrough=False)
    for chunk in plaintext_of(bucket, key, m, identities):
        for _ in scanner.feed(d.feed(chunk)):
            pass
    d.finish()
    for _ in scanner.finish():
        pass
    return dict(scanner.rows)


def _archive_counts(bucket: Bucket, key: str, m: Manifest, identities: Sequence[Any]) -> dict[str, int]:
    """Row counts of a custom archive: `pg_restore --data-only -f -` reading it from a pipe."""
    at_least = max(m.pg_dump_major, 16 if m.codec in ("zstd", "lz4") else 1)
    client = pg.choose_client(at_least, "reading the archive's row counts")
    proc = subprocess.Popen(
        [client.tool("pg_restore"), "--data-only", "--file=-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=pg.client_env(),
    )
    assert proc.stdin and proc.stdout and proc.stderr
    errors: list[BaseException] = []

    def feed() -> None:
        try:
            for chunk in plaintext_of(bucket, key, m, identities):
                proc.stdin.write(chunk)  # type: ignore[union-attr]
        except BaseException as exc:  # noqa: BLE001 - reported after pg_restore ends
            errors.append(exc)
        finally:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    scanner = DumpScanner(passthrough=False)
    while chunk := proc.stdout.read(1 << 20):
        for _ in scanner.feed(chunk):
            pass
    for _ in scanner.finish():
        pass
    err = proc.stderr.read().decode("utf-8", "replace").strip()
    rc = proc.wait()
    t.join(timeout=30)
    if errors and isinstance(errors[0], WorkerError):  # reading the object failed (key, decryption): say that
        raise errors[0]
    if rc != 0 or errors:
        detail = err.splitlines()[-1] if err else (str(errors[0]) if errors else f"exit {rc}")
        raise WorkerError(f"drill: reading the row counts of s3://{bucket.loc.bucket}/{key} failed: {detail}")
    return dict(scanner.rows)


def _restored_counts(expected: dict[str, int]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    with pg.connect(DRILL_DATABASE) as conn:
        present = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p')"
            ).fetchall()
        }
        for name in expected:
            schema, table = split_name(name)
            if (schema, table) not in present:
                out[name] = None
                continue
            q = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            row = conn.execute(q).fetchone()
            out[name] = int(row[0]) if row else None
    return out


def run_drill(
    bucket: Bucket,
    prefix: str,
    database: str,
    obj: str,
    pushgateway: str | None,
    identities: Sequence[Any] = (),
) -> dict[str, Any]:
    started, t0 = utcnow(), time.monotonic()
    result: dict[str, Any] = {"outcome": "failure", "started_at": started.isoformat()}
    try:
        if obj == "latest":
            entry = catalog.latest_complete(bucket, prefix, database)
            key, manifest = entry.name.key, entry.manifest
        else:
            key = naming.resolve_object(obj, prefix)
            manifest = catalog.load_manifest(bucket, key)
        if manifest is None or not manifest.complete:
            raise WorkerError(f"drill: s3://{bucket.loc.bucket}/{key} has no complete manifest", hint="choose another")
        result["key"] = key
        _drill(bucket, prefix, database, key, manifest, result, identities)
        result["outcome"] = "success"
        return result
    except BaseException as exc:
        result["error"] = log.redact(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")[:500]
        raise
    finally:
        result["finished_at"] = utcnow().isoformat()
        result["duration_s"] = round(time.monotonic() - t0, 1)
        metrics.record_drill(bucket, prefix, database, result, pushgateway)
        _record_in_manifest(bucket, result)
        notify.after_drill(database, result)


def _record_in_manifest(bucket: Bucket, result: dict[str, Any]) -> None:
    """The drilled backup's manifest keeps its last drills, so `list --json` and anyone reading the
    bucket see which backups were proven restorable. Best effort: the status object has it too."""
    key = result.get("key")
    if not key:
        return
    try:
        manifest = catalog.load_manifest(bucket, key)
        if manifest is None:
            return
        drills = [d for d in manifest.extra.get("drills", []) if isinstance(d, dict)][-9:]
        drills.append({k: result.get(k) for k in ("outcome", "finished_at", "tables", "rows", "mismatches", "error")})
        manifest.extra["drills"] = drills
        bucket.put_bytes(key + naming.MANIFEST_SUFFIX, manifest.to_json())
    except Exception as exc:  # noqa: BLE001
        log.warning("could not record the drill in the backup's manifest", key=key, error=log.redact(str(exc)))


def _all_parts_counts(bucket: Bucket, key: str, m: Manifest, identities: Sequence[Any]) -> dict[str, int]:
    """A parallel backup's rows are spread over its parts (worker/parallel.py): each table's data is
    in exactly one, so the counts add up."""
    counts: dict[str, int] = {}
    for part_key, pm in parts.part_manifests(key, m):
        for table, n in _archive_counts(bucket, part_key, pm, identities).items():
            counts[table] = counts.get(table, 0) + n
    return counts


def _drill(
    bucket: Bucket,
    prefix: str,
    database: str,
    key: str,
    m: Manifest,
    result: dict[str, Any],
    identities: Sequence[Any],
) -> None:
    source_major = int(m.server_version.split(".")[0])
    binaries = choose_server(max(source_major, m.pg_dump_major if m.format == "custom" else source_major))
    log.info("drill starting", key=key, scratch_server=binaries.major, format=m.format)
    expected: dict[str, int] | None = m.extra.get("row_counts") if m.format == "plain" else None
    if expected is None:  # a custom archive, or a plain backup made before counts were recorded
        expected = (
            _all_parts_counts(bucket, key, m, identities)
            if m.format == "custom"
            else _plain_counts(bucket, key, m, identities)
        )
    with ScratchServer(binaries, os.environ.get("TMPDIR")) as server, _libpq_env(server.env):
        with pg.connect("postgres") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DRILL_DATABASE)))
        report = run_restore(
            bucket,
            RestoreOptions(
                prefix=prefix,
                database=database,
                object=key,
                target_database=DRILL_DATABASE,
                create_roles=True,
                maintenance_db="postgres",
                identities=list(identities),
            ),
        )
        got = _restored_counts(expected)
    if not expected and report.get("tables"):
        # Never "passed" on nothing compared: the backup's counts must cover what was restored.
        raise WorkerError(
            f"drill of {key} failed: the restore created {report['tables']} tables but no row counts were "
            "found in the backup to compare them with",
            hint="report it: the worker could not read this dump's data sections",
        )
    bad = [(name, n, got[name]) for name, n in sorted(expected.items()) if got.get(name) != n]
    result.update(tables=len(expected), rows=sum(expected.values()), mismatches=len(bad))
    if bad:
        name, want, have = bad[0]
        more = f" (and {len(bad) - 1} more tables differ)" if len(bad) > 1 else ""
        found = "is missing" if have is None else f"has {have} rows"
        raise WorkerError(
            f"drill of {key} failed: table {name} {found} after the restore, the backup holds {want} rows{more}",
            hint="do not rely on this backup; check it with `restore --dry-run` and investigate",
        )
    log.info("drill passed", key=key, tables=len(expected), rows=sum(expected.values()))
