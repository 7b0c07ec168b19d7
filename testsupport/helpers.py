"""Helpers shared by the worker's integration tests."""

from __future__ import annotations

import os
import threading
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


class TreeSampler(threading.Thread):
    """Samples a process tree: peak RSS of the root and of its children, and every child's argv."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_root = 0
        self.peak_children = 0
        self.cmdlines: set[str] = set()
        self.environ_leaks: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._halt.is_set():
            try:
                self.peak_root = max(self.peak_root, root.memory_info().rss)
                kids = root.children(recursive=True)
                total = 0
                for k in kids:
                    try:
                        total += k.memory_info().rss
                        self.cmdlines.add("\0".join(k.cmdline()))
                    except psutil.Error:
                        pass
                self.peak_children = max(self.peak_children, total)
            except psutil.Error:
                return
            time.sleep(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def proc_cmdlines_of(pid: int) -> list[str]:
    out = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                out.append(f.read().decode(errors="replace"))
        except OSError:
            pass
    return out


__all__ = ["open_uploads", "keys", "wait_for", "load_bulk", "TreeSampler", "proc_cmdlines_of", "os"]
