"""Unit tests of the worker's pure logic (no servers)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from isal import isal_zlib

from worker import naming, retention
from worker.catalog import Entry
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
    with pytest.raises(UsageError, match="the manifest of a backup") as exc:
        naming.resolve_object("appdb_2024-01-21_02-00-00.sql.gz.manifest.json", "appdb")
    assert "'appdb_2024-01-21_02-00-00.sql.gz'" in str(exc.value)
    with pytest.raises(UsageError, match="the worker's own records"):
        naming.resolve_object("appdb/.cnpg-backup/status/appdb.json", "appdb")
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


def test_log_values_are_numbers_in_json_and_human_in_text():
    import json as _json

    from worker import log

    fields = {"bytes": log.human_bytes(13_700_000), "took": log.seconds(1.25), "rate": log.rate(10**8, 2)}
    assert _json.loads(_json.dumps(fields)) == {"bytes": 13_700_000, "took": 1.25, "rate": 50.0}
    assert [str(v) for v in fields.values()] == ["13.1MiB", "1.2s", "50.0MB/s"]
    assert f"{fields['bytes']:>10}" == "   13.1MiB"


def test_short_secrets_are_redacted_as_words_only():
    from worker import log

    log.register_secret("test")  # a weak password: redacted where it stands alone...
    log.register_secret("Long-Secret-Value-42")  # ...a long one wherever it appears
    assert log.redact("restore latest: password=test; user test") == "restore latest: password=***; user ***"
    assert log.redact("xLong-Secret-Value-42y") == "x***y"


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


def _keys(decisions, keep=True):
    return [d.entry.name.key for d in decisions if d.keep is keep]


def test_prune_plan_by_age():
    now = datetime(2025, 6, 1, tzinfo=UTC)
    entries = sorted(
        [_entry(d, c, now) for d, c in [(1, True), (8, True), (9, False), (30, True)]],
        key=lambda e: e.name.taken_at,
        reverse=True,
    )
    decisions = retention.plan(entries, retention.Policy(days=7), now)
    assert _keys(decisions) == [entries[0].name.key]
    assert "newest complete backup" in decisions[0].reasons and "within 7 days" in decisions[0].reasons
    assert all(d.reasons == ["no rule keeps it"] for d in decisions[1:])
    # all expired: the newest complete one stays
    old = [_entry(d, True, now) for d in (10, 20)]
    assert _keys(retention.plan(old, retention.Policy(days=7), now), keep=False) == [old[1].name.key]
    # none complete (the chart's backups have no manifests): the newest object still stays
    legacy = [_entry(d, False, now) for d in (10, 20)]
    assert _keys(retention.plan(legacy, retention.Policy(days=7), now), keep=False) == [legacy[1].name.key]


def test_gfs_plan_over_a_synthetic_year():
    """Two backups a day for a year (02:00 and 14:00 UTC); keep 7 daily, 4 weekly, 12 monthly, 2 yearly."""
    now = datetime(2025, 12, 31, 20, 0, tzinfo=UTC)
    entries = []
    for day in range(366):
        for hour in (14, 2):
            entries.append(_entry(0, True, now - timedelta(days=day, hours=20 - hour)))
    entries.sort(key=lambda e: e.name.taken_at, reverse=True)
    policy = retention.Policy(daily=7, weekly=4, monthly=12, yearly=2)
    decisions = retention.plan(entries, policy, now, pending={entries[-1].name.key})
    kept = [d for d in decisions if d.keep]
    taken = [d.entry.name.taken_at for d in kept]
    # daily: the newest backup (14:00) of each of the last 7 days
    daily = [d for d in kept if any(r.startswith("daily ") for r in d.reasons)]
    assert [d.entry.name.taken_at.day for d in daily] == [31, 30, 29, 28, 27, 26, 25]
    assert all(d.entry.name.taken_at.hour == 14 for d in daily)
    # weekly: one per ISO week, the newest in it; monthly: one per month, the newest (the 31st/30th...)
    weekly = [d for d in kept if any(r.startswith("weekly ") for r in d.reasons)]
    assert len(weekly) == 4 and len({d.entry.name.taken_at.isocalendar()[:2] for d in weekly}) == 4
    monthly = [d for d in kept if any(r.startswith("monthly ") for r in d.reasons)]
    assert len(monthly) == 12 and {d.entry.name.taken_at.month for d in monthly} == set(range(1, 13))
    for d in monthly:  # the last backup of its month
        later = [
            t
            for t in taken + [e.name.taken_at for e in entries]
            if t.month == d.entry.name.taken_at.month
            and t.year == d.entry.name.taken_at.year
            and t > d.entry.name.taken_at
        ]
        assert not later
    yearly = [d for d in kept if any(r.startswith("yearly ") for r in d.reasons)]
    assert [d.entry.name.taken_at.year for d in yearly] == [2025, 2024]
    # the backup a pending restore reads is kept whatever the rules say
    assert decisions[-1].keep and decisions[-1].reasons == ["a restore is reading it"]
    # overlaps count once: far fewer than 7 + 4 + 12 + 2 + 1 objects survive a year of 732
    assert len(kept) <= 26 and len(entries) == 732
    assert "7 daily, 4 weekly, 12 monthly, 2 yearly" == policy.describe()


def test_gfs_prefers_an_unflagged_backup_within_a_period():
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    good = _entry(0.4, True, now)  # 02:24
    flagged = _entry(0.1, True, now)  # 09:36, newer but flagged (the database was emptied)
    flagged.manifest.flags = ["no user tables"]
    decisions = retention.plan([flagged, good], retention.Policy(daily=1), now)
    assert [d.keep for d in decisions] == [True, True]  # the flagged one only as the newest complete
    assert decisions[1].reasons == ["newest unflagged complete backup", "daily 2025-06-01"]
    # a month of flagged nightly backups after the database was emptied: the last good one stays
    old_good = _entry(40, True, now)
    empties = [_entry(d, True, now) for d in range(30)]
    for e in empties:
        e.manifest.flags = ["no user tables"]
    decisions = retention.plan([*empties, old_good], retention.Policy(days=7), now)
    assert decisions[-1].keep and decisions[-1].reasons == ["newest unflagged complete backup"]


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
    from worker.s3 import Bucket
    from worker.s3_client import S3Location

    loc = S3Location("b")
    assert load_manifest(Bucket(loc, _FailingClient(_client_error("NoSuchKey"))), "p/db_x.sql.gz") is None
    with pytest.raises(WorkerError, match="SlowDown on s3://b/p/db_x.sql.gz.manifest.json"):
        load_manifest(Bucket(loc, _FailingClient(_client_error("SlowDown"))), "p/db_x.sql.gz")


def test_termination_is_never_turned_into_an_ordinary_failure():
    # SIGTERM's exception raised inside an S3 call or the readiness loop must reach the CLI as itself
    # (exit 143), not be caught by `except Exception`/`except WorkerError` on the way.
    from worker import pg
    from worker.errors import Terminated
    from worker.s3 import Bucket
    from worker.s3_client import S3Location

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


class _Calls:
    """A fake bucket and upload for BackupSession.publish: records the order of what reaches S3."""

    def __init__(self, fail_complete: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_complete = fail_complete
        self.finished = False
        self.loc = type("Loc", (), {"bucket": "b"})()

    def put_bytes(self, key: str, data: bytes, *, if_none_match: bool = False) -> None:
        self.calls.append(f"put {key} if_none_match={if_none_match}")

    def delete(self, keys: list[str]) -> None:
        self.calls.append(f"delete {keys[0]}")

    def complete(self) -> None:
        if self.fail_complete:
            raise WorkerError("S3 InternalError on completing the upload")
        self.calls.append("complete")
        self.finished = True


@pytest.mark.parametrize("fail_complete", [False, True])
def test_publish_writes_the_manifest_before_the_object_appears(fail_complete: bool) -> None:
    # A listing between the two would otherwise see the object without its manifest: "unverified".
    from worker.backup_session import BackupSession

    fake = _Calls(fail_complete)
    session = BackupSession(fake, "p", "db", "plain", datetime(2024, 1, 21, 2, tzinfo=UTC), 8 << 20, 2)  # type: ignore[arg-type]
    session.name = naming.new_backup_key("p", "db", "plain", datetime(2024, 1, 21, 2, tzinfo=UTC), "gzip", False)
    session._upload = fake  # type: ignore[assignment]
    manifest = Manifest("db", session.name.key, "plain", "gzip", "17.1", "18.1", 18, 1, 1, "0" * 64, "t0", "t1")
    mkey = session.name.manifest_key
    if fail_complete:
        with pytest.raises(WorkerError, match="InternalError"):
            session.publish(manifest)
        # the object never appeared, so neither does a manifest naming it
        assert fake.calls == [f"put {mkey} if_none_match=True", f"delete {mkey}"]
    else:
        session.publish(manifest)
        assert fake.calls == [f"put {mkey} if_none_match=True", "complete"]
