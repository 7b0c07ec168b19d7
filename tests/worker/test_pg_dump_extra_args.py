"""backup.extraArgs reach pg_dump, against a real PostgreSQL and MinIO: an excluded table is absent
from the restored copy, the manifest records the options, and a refused option fails the backup with
one line before anything is dumped."""

from __future__ import annotations

import json

import pytest

from worker import pg_dump_options

pytestmark = pytest.mark.integration

TABLES_SQL = """
CREATE TABLE orders AS SELECT g AS id, 'order ' || g AS note FROM generate_series(1, 500) g;
CREATE TABLE audit_log AS SELECT g AS id, 'event ' || g AS what FROM generate_series(1, 300) g;
CREATE TABLE sessions AS SELECT g AS id FROM generate_series(1, 50) g;
"""


def _tables(pg, database: str) -> dict[str, int]:
    with pg.connect(database) as c:
        names = [r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        return {n: c.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in sorted(names)}


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_excluded_table_is_absent_from_the_restored_copy(pg, minio, bucket, make_worker, fmt: str) -> None:
    db = f"extra_{fmt}"
    pg.create_database(db)
    with pg.connect(db) as c:
        c.execute(TABLES_SQL)
    extra = ["--exclude-table=audit_log", "--exclude-table-data=sessions", "--no-owner"]
    w = make_worker(pg, minio, bucket, db, CNPG_BACKUP_FORMAT=fmt, CNPG_BACKUP_DUMP_EXTRA_ARGS=json.dumps(extra))
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(w.run("list", "--json").stdout)
    manifest = json.loads(minio.client().get_object(Bucket=bucket, Key=entry["key"] + ".manifest.json")["Body"].read())
    assert manifest["extra"]["pg_dump_extra_args"] == extra

    pg.create_database(f"{db}_copy")
    r = w.run("restore", "--object", "latest", "--target-database", f"{db}_copy")
    assert r.returncode == 0, r.stderr
    # audit_log left out entirely, sessions' schema without its rows, orders whole
    assert _tables(pg, f"{db}_copy") == {"orders": 500, "sessions": 0}
    assert _tables(pg, db) == {"audit_log": 300, "orders": 500, "sessions": 50}


def test_flags_override_the_environment(pg, minio, bucket, make_worker) -> None:
    pg.create_database("extra_flags")
    with pg.connect("extra_flags") as c:
        c.execute(TABLES_SQL)
    w = make_worker(pg, minio, bucket, "extra_flags", CNPG_BACKUP_DUMP_EXTRA_ARGS='["--format=custom"]')
    r = w.run("backup", "--pg-dump-arg=--exclude-table=orders", "--pg-dump-arg=--exclude-table=sessions")
    assert r.returncode == 0, r.stderr
    pg.create_database("extra_flags_copy")
    assert w.run("restore", "--object", "latest", "--target-database", "extra_flags_copy").returncode == 0
    assert _tables(pg, "extra_flags_copy") == {"audit_log": 300}


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        (
            '["--no-owner", "-F", "c"]',
            [],
            "CNPG_BACKUP_DUMP_EXTRA_ARGS[1]: -F (--format): refused: set by the worker (backup.format)",
        ),
        ("[]", ["--pg-dump-arg=--file=/tmp/x"], "--pg-dump-arg[0]: --file: refused: set by the worker"),
        ('["--dbname=postgres://u:secret@h/db"]', [], "CNPG_BACKUP_DUMP_EXTRA_ARGS[0]: --dbname: refused"),
        ('["--password=secret"]', [], "CNPG_BACKUP_DUMP_EXTRA_ARGS[0]: --password: refused"),
        ('"--no-owner"', [], "CNPG_BACKUP_DUMP_EXTRA_ARGS: not a JSON list of strings"),
        ('["postgres://u:secret@h/db"]', [], "[0]: not an option: pg_dump would take it as the database name"),
    ],
)
def test_refused_options_fail_with_one_line_before_dumping(
    pg, minio, bucket, make_worker, env: str, flags: list[str], expected: str
) -> None:
    pg.create_database("extra_refused")
    w = make_worker(pg, minio, bucket, "extra_refused", CNPG_BACKUP_DUMP_EXTRA_ARGS=env)
    r = w.run("backup", *flags)
    assert r.returncode == 2, r.stderr
    assert len(r.error_lines) == 1 and expected in r.error_lines[0], r.stderr
    assert "Traceback" not in r.stderr and "secret" not in r.stderr
    assert not any(True for _ in minio.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def test_every_short_alias_names_a_known_option() -> None:
    for short, long in pg_dump_options.SHORT.items():
        assert long in pg_dump_options.ALLOWED or long in pg_dump_options.REFUSED, short
    assert not set(pg_dump_options.ALLOWED) & set(pg_dump_options.REFUSED)
