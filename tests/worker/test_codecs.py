"""Compression codecs on real servers: plain `.sql.zst` round trips (and is verified like gzip),
and a custom archive asked for zstd/lz4 falls back to gzip, out loud, where no client can write
them (this machine's clients: the embedded 18 build and Debian's 15 lack zstd/lz4 archives; the
image's full PostgreSQL 18 client writes them: tests/e2e/test_e2e_tls.py)."""

from __future__ import annotations

import json

import pytest
import zstandard

from testsupport.dataset import fingerprint, load

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("major", [13, 18])
def test_plain_zstd_round_trip(pg_pool, minio, bucket, make_worker, major):
    pg = pg_pool.get(major)
    load(pg, "shopz")
    w = make_worker(pg, minio, bucket, "shopz", CNPG_BACKUP_COMPRESSION="zstd", CNPG_BACKUP_COMPRESSION_LEVEL="5")
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(w.run("list", "--json").stdout)
    assert entry["key"].endswith(".sql.zst") and entry["status"] == "complete"
    assert (entry["format"], entry["compression"]) == ("plain", "zstd")
    body = minio.client().get_object(Bucket=bucket, Key=entry["key"])["Body"].read()
    manifest = json.loads(minio.client().get_object(Bucket=bucket, Key=entry["key"] + ".manifest.json")["Body"].read())
    assert manifest["compression"] == "zstd" and manifest["extra"]["compression_level"] == 5
    # a standard zstd stream any tool can read, ending with pg_dump's trailer
    sql = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    assert b"-- PostgreSQL database dump complete" in sql[-2048:]
    assert len(sql) == manifest["raw_bytes"]

    pg.create_database("shopz_copy")
    r = w.run("restore", "--object", "latest", "--target-database", "shopz_copy")
    assert r.returncode == 0, r.stderr
    assert "zstd" in r.stderr  # the verification says what it checked
    with pg.connect("shopz") as a, pg.connect("shopz_copy") as b:
        assert fingerprint(a) == fingerprint(b)


def test_truncated_zstd_object_is_refused_before_the_database_is_touched(pg, minio, bucket, make_worker):
    load(pg, "shopt")
    w = make_worker(pg, minio, bucket, "shopt", CNPG_BACKUP_COMPRESSION="zstd")
    assert w.run("backup").returncode == 0
    [entry] = json.loads(w.run("list", "--json").stdout)
    s3 = minio.client()
    body = s3.get_object(Bucket=bucket, Key=entry["key"])["Body"].read()
    # the chart's habit: an object without a manifest, here cut short by 100 bytes
    key = entry["key"]
    s3.delete_object(Bucket=bucket, Key=key + ".manifest.json")
    s3.put_object(Bucket=bucket, Key=key, Body=body[:-100])
    pg.create_database("shopt_copy")
    r = w.run("restore", "--object", key.split("/", 1)[1], "--target-database", "shopt_copy", "--allow-unverified")
    assert r.returncode != 0
    assert len(r.error_lines) == 1 and "zstd stream is truncated" in r.stderr, r.stderr
    with pg.connect("shopt_copy") as c:
        assert c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_custom_archive_codec_falls_back_to_gzip_out_loud(pg, minio, bucket, make_worker, codec):
    load(pg, "shopf")
    w = make_worker(
        pg,
        minio,
        bucket,
        "shopf",
        CNPG_BACKUP_FORMAT="custom",
        CNPG_BACKUP_COMPRESSION=codec,
        CNPG_BACKUP_COMPRESSION_LEVEL="12",
    )
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    assert f"no pg_dump here writes {codec} archives" in r.stderr and "compressed with gzip instead" in r.stderr
    [entry] = json.loads(w.run("list", "--json").stdout)
    assert (entry["format"], entry["compression"]) == ("custom", "gzip")  # what was written, not what was asked
    manifest = json.loads(minio.client().get_object(Bucket=bucket, Key=entry["key"] + ".manifest.json")["Body"].read())
    assert manifest["compression"] == "gzip" and manifest["extra"]["compression_level"] == 9  # clamped to gzip's
    pg.create_database(f"shopf_{codec}")
    r = w.run("restore", "--object", "latest", "--target-database", f"shopf_{codec}")
    assert r.returncode == 0, r.stderr
    with pg.connect("shopf") as a, pg.connect(f"shopf_{codec}") as b:
        assert fingerprint(a) == fingerprint(b)


def test_custom_default_codec_is_zstd_and_its_fallback_is_news_not_a_warning(pg, minio, bucket, make_worker):
    # No codec chosen: a custom archive asks for zstd; this machine's clients cannot write it, so
    # the archive is gzip, said once at INFO (a warning on every run of a default config is noise).
    load(pg, "shopd")
    w = make_worker(pg, minio, bucket, "shopd", CNPG_BACKUP_FORMAT="custom")
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    [line] = [ln for ln in r.stderr.splitlines() if "no pg_dump here writes zstd archives" in ln]
    assert " INFO " in line and "WARNING" not in r.stderr, r.stderr
    [entry] = json.loads(w.run("list", "--json").stdout)
    assert (entry["format"], entry["compression"]) == ("custom", "gzip")
    # the same codec chosen by name is a choice the backup could not honour: a warning
    r = w.run("backup", "--compression", "zstd")
    assert r.returncode == 0, r.stderr
    [line] = [ln for ln in r.stderr.splitlines() if "no pg_dump here writes zstd archives" in ln]
    assert "WARNING" in line, r.stderr


@pytest.mark.parametrize(("level", "stored"), [(None, 2), ("1", 1)], ids=["level-unset", "level-chosen"])
def test_an_lz4_fallback_takes_gzip_s_own_level_unless_one_was_chosen(pg, minio, bucket, make_worker, level, stored):
    # lz4's default level is 1; gzip's is 2: an unset level follows the codec actually written
    load(pg, "shopl")
    env = {"CNPG_BACKUP_COMPRESSION_LEVEL": level} if level else {}
    w = make_worker(pg, minio, bucket, "shopl", CNPG_BACKUP_FORMAT="custom", CNPG_BACKUP_COMPRESSION="lz4", **env)
    r = w.run("backup")
    assert r.returncode == 0, r.stderr
    assert "no pg_dump here writes lz4 archives" in r.stderr
    [entry] = json.loads(w.run("list", "--json").stdout)
    manifest = json.loads(minio.client().get_object(Bucket=bucket, Key=entry["key"] + ".manifest.json")["Body"].read())
    assert (manifest["compression"], manifest["extra"]["compression_level"]) == ("gzip", stored)


def test_lz4_plain_is_refused_with_one_line(pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "postgres", CNPG_BACKUP_COMPRESSION="lz4")
    r = w.run("backup")
    assert r.returncode == 2 and len(r.error_lines) == 1, r.stderr
    assert "lz4 is written by pg_dump inside custom archives only" in r.stderr
    assert "CNPG_BACKUP_COMPRESSION" in r.stderr and "Traceback" not in r.stderr
