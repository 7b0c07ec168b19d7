"""Unit tests of the worker's pure logic (no servers)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from isal import isal_zlib

from worker import naming
from worker.catalog import Entry, plan_prune
from worker.compress import Decompressor, compressor
from worker.errors import UsageError, WorkerError
from worker.log import redact, register_secret
from worker.manifest import Manifest
from worker.pg import Client, choose_client
from worker.sql import compat_prelude


def test_key_format_matches_the_chart():
    when = datetime(2024, 1, 21, 2, 0, 0, 123, tzinfo=UTC)
    assert naming.new_backup_key("appdb", "appdb", "plain", when).key == "appdb/appdb_2024-01-21_02-00-00.sql.gz"
    assert naming.new_backup_key("", "appdb", "custom", when).key == "appdb_2024-01-21_02-00-00.dump"
    assert naming.new_backup_key("/a/b/", "x", "plain", when).key == "a/b/x_2024-01-21_02-00-00.sql.gz"


@pytest.mark.parametrize(
    "key,db,ok",
    [
        ("p/app_2024-01-21_02-00-00.sql.gz", "app", True),
        ("p/app_v2_2024-01-21_02-00-00.sql.gz", "app", False),  # another database sharing the prefix
        ("p/app_2024-01-21_02-00-00.sql.gz.manifest.json", "app", False),
        ("p/sub/app_2024-01-21_02-00-00.sql.gz", "app", False),  # not directly under the prefix
        ("q/app_2024-01-21_02-00-00.sql.gz", "app", False),
        ("p/app_2024-01-21_02-00-00.dump", "app", True),
        ("p/app_2024-01-21_02-00-00.sql.zst", "app", True),
        ("p/app_2024-01-21_02-00-00.sql.zst.manifest.json", "app", False),
        ("p/app_2024-01-21_02-00-00.sql.lz4", "app", False),  # no such kind: never listed as a backup
        ("p/a.b_2024-01-21_02-00-00.sql.gz", "a.b", True),
        ("p/axb_2024-01-21_02-00-00.sql.gz", "a.b", False),  # dots are literal
    ],
)
def test_pattern_is_exactly_one_databases(key, db, ok):
    assert (naming.parse(key, "p", db) is not None) is ok


def test_resolve_object():
    assert (
        naming.resolve_object("appdb_2024-01-21_02-00-00.sql.gz", "appdb") == "appdb/appdb_2024-01-21_02-00-00.sql.gz"
    )
    assert (
        naming.resolve_object("appdb/appdb_2024-01-21_02-00-00.sql.gz", "appdb")
        == "appdb/appdb_2024-01-21_02-00-00.sql.gz"
    )
    for bad in ("s3://b/k", "/abs", "", "dir/"):
        with pytest.raises(UsageError):
            naming.resolve_object(bad, "p")
    assert naming.database_of("x/y/my_db_2024-01-21_02-00-00.sql.gz") == "my_db"


@pytest.mark.parametrize("level", [1, 2, 3, 6, 9])
def test_compressor_writes_standard_gzip(level):
    data = b"INSERT INTO t VALUES (1, 'abc');\n" * 5000 + bytes(range(256)) * 100
    c = compressor(level)
    assert gzip.decompress(c.compress(data) + c.flush()) == data


def test_gunzip_detects_truncation_and_corruption():
    blob = gzip.compress(b"a" * 100_000) + gzip.compress(b"b" * 10)
    g = Decompressor("gzip")
    assert g.feed(blob) == b"a" * 100_000 + b"b" * 10
    g.finish()
    assert g.members == 2
    g = Decompressor("gzip")
    g.feed(blob[:-4])
    with pytest.raises(ValueError):
        g.finish()
    bad = bytearray(gzip.compress(bytes(range(256)) * 400))
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(isal_zlib.error):  # a CRC or stream error, whichever the damage hits first
        g = Decompressor("gzip")
        g.feed(bytes(bad))
        g.finish()
    with pytest.raises(ValueError):
        Decompressor("gzip").finish()  # nothing at all is not a backup


def test_zstd_key_and_kind():
    when = datetime(2024, 1, 21, 2, 0, 0, tzinfo=UTC)
    name = naming.new_backup_key("p", "db", "plain", when, "zstd")
    assert (name.key, name.compression) == ("p/db_2024-01-21_02-00-00.sql.zst", "zstd")
    # the codec inside a custom archive is not in the name: the manifest records it
    assert naming.new_backup_key("p", "db", "custom", when, "lz4").key == "p/db_2024-01-21_02-00-00.dump"
    parsed = naming.parse(name.key, "p", "db")
    assert parsed is not None and (parsed.format, parsed.compression) == ("plain", "zstd")
    assert naming.kind_of("x/db_2024-01-21_02-00-00.sql.zst") == ("plain", "zstd")
    assert naming.kind_of("x/db_2024-01-21_02-00-00.dump") == ("custom", "archive")
    assert naming.database_of("x/my_db_2024-01-21_02-00-00.sql.zst") == "my_db"
    with pytest.raises(UsageError):
        naming.new_backup_key("p", "db", "plain", when, "lz4")


def test_zstd_stream_round_trip_and_integrity():
    data = b"INSERT INTO t VALUES (1, 'abc');\n" * 50_000
    c = compressor(3, "zstd")
    blob = c.compress(data) + c.flush()
    assert len(blob) < len(data) // 20
    d = Decompressor("zstd")
    assert d.feed(blob[:1000]) + d.feed(blob[1000:]) == data
    d.finish()
    # two frames (say, a stream someone concatenated) read as one dump, like gzip members
    d = Decompressor("zstd")
    assert d.feed(blob + blob) == data + data
    d.finish()
    assert d.members == 2
    # cut anywhere before the frame's checksum: truncated, never "complete"
    for cut in (len(blob) - 1, len(blob) - 4, len(blob) // 2):
        d = Decompressor("zstd")
        d.feed(blob[:cut])
        with pytest.raises(ValueError, match="truncated"):
            d.finish()
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(Exception, match="(?i)corrupt|error"):
        Decompressor("zstd").feed(bytes(bad))


@pytest.mark.parametrize(
    ("fmt", "codec", "level", "problem"),
    [
        ("plain", "gzip", 9, None),
        ("plain", "gzip", 10, "gzip compression level must be 1-9"),
        ("plain", "zstd", 19, None),
        ("custom", "zstd", 20, "zstd compression level must be 1-19"),
        ("custom", "lz4", 12, None),
        ("plain", "lz4", 1, "lz4 is written by pg_dump inside custom archives only"),
        ("plain", "bzip2", 1, "is not one of gzip, zstd, lz4"),
    ],
)
def test_compression_rules(fmt, codec, level, problem):
    from worker.contract import compression_problem

    got = compression_problem(fmt, codec, level)
    assert (got is None) if problem is None else (got is not None and problem in got)
    if fmt == "plain" and codec in ("gzip", "zstd"):
        if problem:
            with pytest.raises(ValueError, match=problem):
                compressor(level, codec)
        else:
            compressor(level, codec)


def test_dump_command_carries_the_archive_codec():
    from worker.dumpstream import dump_command

    client = Client(18, "18.6", Path("/x"))
    assert "--compress=zstd:3" in dump_command(client, "custom", 0, "zstd", 3)
    assert "--compress=lz4:1" in dump_command(client, "custom", 0, "lz4", 1)
    assert "--compress=2" in dump_command(client, "custom", 0, "gzip", 2)
    plain = dump_command(client, "plain", 0, "zstd", 3)
    assert not any(a.startswith("--compress") for a in plain)  # the worker compresses plain dumps


def test_old_custom_manifests_read_as_gzip():
    m = Manifest("db", "k", "custom", "pg_dump", "17", "17", 17, 1, 5, "0" * 64, "", "")
    assert m.codec == "gzip"
    assert Manifest("db", "k", "custom", "zstd", "17", "18", 18, 1, 5, "0" * 64, "", "").codec == "zstd"


def _entry(days_ago: float, complete: bool, now: datetime) -> Entry:
    when = now - timedelta(days=days_ago)
    name = naming.new_backup_key("p", "db", "plain", when)
    m = Manifest("db", name.key, "plain", "gzip", "17", "18", 18, 1, 5, "0" * 64, "", "") if complete else None
    return Entry(name, 5, complete, m)


def test_prune_plan():
    now = datetime(2025, 6, 1, tzinfo=UTC)
    entries = sorted(
        [_entry(d, c, now) for d, c in [(1, True), (8, True), (9, False), (30, True)]],
        key=lambda e: e.name.taken_at,
        reverse=True,
    )
    plan = plan_prune(entries, 7, now)
    assert plan.kept_newest == entries[0].name.key
    assert set(plan.delete) == {
        entries[1].name.key,
        entries[1].name.manifest_key,
        entries[2].name.key,
        entries[3].name.key,
        entries[3].name.manifest_key,
    }
    # all expired: the newest complete one stays
    old = [_entry(d, True, now) for d in (10, 20)]
    assert plan_prune(old, 7, now).delete == [old[1].name.key, old[1].name.manifest_key]
    # none complete (the chart's backups have no manifests): the newest object still stays
    legacy = [_entry(d, False, now) for d in (10, 20)]
    assert plan_prune(legacy, 7, now).delete == [legacy[1].name.key]


def test_client_choice():
    cs = [Client(m, f"{m}.1", Path(f"/c/{m}")) for m in (13, 15, 18)]
    assert choose_client(15, "x", cs).major == 15
    assert choose_client(14, "x", cs).major == 15
    assert choose_client(16, "x", cs).major == 18
    with pytest.raises(WorkerError, match="installed majors: 13, 15, 18"):
        choose_client(19, "x", cs)
    with pytest.raises(WorkerError, match="no PostgreSQL client"):
        choose_client(15, "x", [])


def test_compat_prelude_only_touches_the_prelude():
    sql = [
        b"SET statement_timeout = 0;\nSET transaction_timeout = 0;\n",
        b"x" * 70_000,
        b"\nSET transaction_timeout = 0;\n",
    ]
    out = b"".join(compat_prelude(iter(sql), 16))
    assert b"\n-- (not supported by this server) SET transaction_timeout" in out
    assert out.endswith(b"\nSET transaction_timeout = 0;\n")  # data past the prelude is untouched
    assert b"".join(compat_prelude(iter(sql), 17)) == b"".join(sql)


def test_redaction():
    register_secret("hunter2-secret")
    assert redact("password=hunter2-secret host=x") == "password=*** host=x"


def test_json_log_redacts_secrets_that_json_escapes(capsys):
    # The JSON formatter escapes `"` and `\`; redacting after encoding would miss such a secret.
    import json

    from worker import log

    secret = 'pa"ss\\word\twith-quote'
    register_secret(secret)
    log.setup("json")
    log.error(f"connection failed: password={secret}", detail=f"dsn password={secret}")
    line = capsys.readouterr().err.strip()
    doc = json.loads(line)
    assert "***" in doc["msg"] and "***" in doc["detail"]
    assert secret not in json.dumps(doc) and secret not in line and json.dumps(secret)[1:-1] not in line


class _FailingClient:
    """Raises `exc` from every S3 call: stands in for a boto3 client (unit level, no server)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __getattr__(self, name):
        def call(*_args, **_kwargs):
            raise self.exc

        return call

    def get_paginator(self, _operation):
        # boto3 raises only once the pages are read, inside the caller's error handling
        return type("Paginator", (), {"paginate": lambda _self, **_kw: self.call_failing()})()

    def call_failing(self):
        raise self.exc


def _client_error(code: str):
    import botocore.exceptions

    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "GetObject")


def test_manifest_read_failure_is_not_missing_manifest():
    # A throttled or failing GET must not make a good backup look untrusted: `restore latest` would
    # then silently pick an older backup, and prune could delete the real newest one.
    from worker.catalog import load_manifest
    from worker.s3 import Bucket, S3Location

    loc = S3Location("b")
    assert load_manifest(Bucket(loc, _FailingClient(_client_error("NoSuchKey"))), "p/db_x.sql.gz") is None
    with pytest.raises(WorkerError, match="SlowDown on s3://b/p/db_x.sql.gz.manifest.json"):
        load_manifest(Bucket(loc, _FailingClient(_client_error("SlowDown"))), "p/db_x.sql.gz")


def test_termination_is_never_turned_into_an_ordinary_failure():
    # SIGTERM's exception raised inside an S3 call or the readiness loop must reach the CLI as itself
    # (exit 143), not be caught by `except Exception`/`except WorkerError` on the way.
    from worker import pg
    from worker.errors import Terminated
    from worker.s3 import Bucket, S3Location

    bucket = Bucket(S3Location("b"), _FailingClient(Terminated("received SIGTERM; stopping")))
    for op in (
        lambda: bucket.get_bytes("k"),
        lambda: bucket.head("k"),
        lambda: bucket.put_bytes("k", b""),
        lambda: list(bucket.list_objects("p/")),
        lambda: bucket.check("p/"),
    ):
        with pytest.raises(Terminated):
            op()

    def connect(*_a, **_k):
        raise Terminated("received SIGTERM; stopping")

    orig = pg.connect
    pg.connect = connect
    try:
        with pytest.raises(Terminated):
            pg.wait_ready(30, "db")
    finally:
        pg.connect = orig
