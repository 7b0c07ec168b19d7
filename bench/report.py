"""Turning the measured rounds into the printed table and the JSON record."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .servers import ROOT, client_bin_dir

if TYPE_CHECKING:
    from .run import Bench
    from .servers import PostgresServer

MiB = 1024 * 1024


def _stats(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def summarize(b: Bench, labels: dict[str, str]) -> list[dict]:
    rows = []
    for scenario, samples in b.samples.items():
        walls = [s["wall_s"] for s in samples]
        by_name: dict[str, int] = {}
        for s in samples:
            for n, v in s["rss_by_name"].items():
                by_name[n] = max(by_name.get(n, 0), v)
        tool = max(by_name.get("worker", 0), by_name.get("aws", 0))
        pgc = max(sum(s["rss_by_name"].get(n, 0) for n in ("pg_dump", "psql", "pg_restore")) for s in samples)
        sizes = [s["object_bytes"] for s in samples if s.get("object_bytes")]
        rows.append(
            {
                "scenario": scenario,
                "label": labels.get(scenario, scenario),
                "kind": "restore" if "restore" in scenario else "backup",
                "rounds": len(samples),
                "wall_s": _stats(walls),
                "cpu_s": _stats([s["cpu_s"] for s in samples]),
                # the co-located PostgreSQL server and MinIO, meanwhile (older runs did not record them)
                "pg_server_cpu_s": _stats([s.get("pg_server_cpu_s", 0) for s in samples]),
                "s3_server_cpu_s": _stats([s.get("s3_server_cpu_s", 0) for s in samples]),
                "mb_s": round(b.raw_bytes / statistics.median(walls) / 1e6, 1),
                "object_bytes": int(statistics.median(sizes)) if sizes else None,
                "rss_python_peak": tool or None,
                "rss_pg_client_peak": pgc or None,
                "rss_tree_peak": max(s["rss_tree"] for s in samples),
                "rss_by_name_peak": by_name,
                "disk_peak": max(s.get("disk_peak", 0) for s in samples),
                "parts": max(s.get("parts", 1) for s in samples),
            }
        )
    med = {r["scenario"]: r["wall_s"]["median"] for r in rows}
    size = {r["scenario"]: r["object_bytes"] for r in rows}
    for r in rows:
        t = r["wall_s"]["median"]
        if r["kind"] == "backup":
            r["speedup_vs_1"] = round(med["seed"] / t, 2) if "seed" in med else None
            r["time_vs_4"] = round(t / med["pg_dump"], 2) if "pg_dump" in med else None
            # the image's rows against the image's own bare pg_dump (same client, same container)
            r["time_vs_6"] = (
                round(t / med["img-pg_dump"], 2) if r["scenario"].startswith("img-") and "img-pg_dump" in med else None
            )
            r["size_vs_1"] = (
                round(r["object_bytes"] / size["seed"], 3) if r["object_bytes"] and size.get("seed") else None
            )
        else:
            r["speedup_vs_5"] = round(med["seed-restore"] / t, 2) if "seed-restore" in med else None
    return rows


def _mib(v) -> str:
    return f"{v / MiB:.0f}" if v else "-"


def render_table(rows: list[dict], raw_bytes: int) -> str:
    head = (
        f"{'step':<50} {'wall s median (min-max)':>24} {'MB/s':>6} {'object MB':>9} {'size/(1)':>8} "
        f"{'RSS py':>6} {'RSS pg':>6} {'RSS tree':>8} {'(1)/x':>6} {'x/(4)':>6} {'x/(6)':>6} {'(5)/x':>6} "
        f"{'disk MiB':>8} {'PG cpu':>6} {'S3 cpu':>6}"
    )
    lines = [
        f"raw plain dump: {raw_bytes / 1e6:.0f} MB (MB/s = raw dump MB / wall s for every row; RSS in MiB, peak over rounds; "
        "PG cpu, S3 cpu: CPU seconds of the PostgreSQL server and MinIO during the step, median)",
        head,
        "-" * len(head),
    ]
    for kind in ("backup", "restore"):
        for r in [r for r in rows if r["kind"] == kind]:
            w = r["wall_s"]
            spread = (
                f"{w['median']:.2f} ({w['min']:.2f}-{w['max']:.2f})"
                if r["rounds"] > 1
                else f"{w['median']:.2f} (1 run)"
            )

            def f(key, fmt="{:.2f}", r=r):
                v = r.get(key)
                return fmt.format(v) if v is not None else "-"

            lines.append(
                f"{r['label'][:50]:<50} {spread:>24} {r['mb_s']:>6.1f} "
                f"{(r['object_bytes'] or 0) / 1e6:>9.1f} {f('size_vs_1', '{:.3f}'):>8} {_mib(r['rss_python_peak']):>6} "
                f"{_mib(r['rss_pg_client_peak']):>6} {_mib(r['rss_tree_peak']):>8} {f('speedup_vs_1'):>6} "
                f"{f('time_vs_4'):>6} {f('time_vs_6'):>6} {f('speedup_vs_5'):>6} {_mib(r.get('disk_peak')) or '0':>8} "
                f"{r['pg_server_cpu_s']['median']:>6.1f} {r['s3_server_cpu_s']['median']:>6.1f}"
            )
        if kind == "backup":
            lines.append("")
    return "\n".join(lines)


def environment(pg: PostgresServer) -> dict:
    def version(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None

    import isal

    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = None
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), None)
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "python": platform.python_version(),
        "isal": isal.__version__,
        "git_commit": commit,
        "pg_server": version([str(pg.bindir / "postgres"), "--version"]),
        "pg_dump": version([str(client_bin_dir() / "pg_dump"), "--version"]),
        "awscli": version([str(Path(sys.executable).parent / "aws"), "--version"]),
        "gzip": version(["gzip", "--version"]),
    }


# ---------------------------------------------------------------------------------------------
