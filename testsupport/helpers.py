"""Helpers shared by the worker's integration tests."""

from __future__ import annotations

import time

import psutil


def open_uploads(minio, bucket: str) -> list[str]:
    return [u["Key"] for u in minio.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def keys(minio, bucket: str, prefix: str = "") -> list[str]:
    out = []
    for page in minio.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


def wait_for(pred, timeout: float = 60, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def load_bulk(server, database: str, megabytes: int) -> None:
    """A table of roughly `megabytes` of dump text, mixed compressible and incompressible."""
    server.create_database(database)
    rows = megabytes * 1024 * 1024 // 200
    with server.connect(database) as c:
        c.execute("CREATE TABLE bulk (id bigint PRIMARY KEY, label text, blob text)")
        step = 200_000
        for lo in range(0, rows, step):
            c.execute(
                "INSERT INTO bulk SELECT g, 'row ' || g || ' of the bulk table', md5(g::text) || md5((g+1)::text)"
                " || repeat('x', 80) FROM generate_series(%s, %s) g",
                (lo, min(rows, lo + step) - 1),
            )


def proc_cmdlines_of(pid: int) -> list[str]:
    out = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                out.append(f.read().decode(errors="replace"))
        except OSError:
            pass
    return out


__all__ = ["open_uploads", "keys", "wait_for", "load_bulk", "proc_cmdlines_of"]
