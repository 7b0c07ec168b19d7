"""Synth speed for fleets: seconds to synthesize N databases (10 per cluster), per step.

    .venv/bin/python -m bench.synth                       # 100, 200 and 1000 databases
    .venv/bin/python -m bench.synth --databases 1000 --rounds 3 --verify --alerts

Prints one row per N (median over the rounds, and the min-max): in this process, loading the config
(pydantic validation and the cross-field rules), then writing dist/ (app/chart.write: the constructs,
cdk8s, the CronJobs' YAML), and the total; the CPU seconds of this process and of the jsii kernel
(the node process cdk8s runs in), which unlike wall time do not grow when other work shares the
machine; and `end-to-end s`: the wall time of `python -m app synth -f values.yaml` in a new process,
what a user waits for (interpreter and Node.js start, imports, the summary it prints). Nothing
asserts a timing (bench/README.md).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

# sets the jsii environment before cdk8s is imported
from app.chart import write
from app.config import Config


def fleet_values(databases: int, *, verify: bool, alerts: bool, spread: bool = True) -> dict[str, Any]:
    values: dict[str, Any] = {
        "cnpg": {"secretName": "", "database": ""},
        "s3": {"bucket": "fleet-backups", "secretName": "s3-creds"},
        **({"backup": {"window": "2h"}} if spread else {}),
        "databases": [
            {"name": f"c{i // 10:03d}-db{i % 10}", "database": f"db{i % 10}", "secretName": f"cluster{i // 10:03d}-app"}
            for i in range(databases)
        ],
    }
    if verify:
        values["verify"] = {"enabled": True, "schedule": "H H(4-6) * * 0" if spread else "0 5 * * 0"}
    if alerts:
        values["monitoring"] = {
            "pushgateway": {"url": "http://pushgateway.monitoring.svc:9091"},
            "prometheusRule": {"enabled": True},
        }
    return values


def _kernel_cpu() -> float:
    """CPU seconds of this process's children so far: the jsii kernel (node)."""
    import psutil

    return sum(sum(c.cpu_times()[:2]) for c in psutil.Process().children(recursive=True))


def measure(values: dict[str, Any], outdir: Path) -> dict[str, float]:
    cpu0, kernel0 = time.process_time(), _kernel_cpu()
    t0 = time.perf_counter()
    cfg = Config.model_validate(values)
    t1 = time.perf_counter()
    write(cfg, outdir / "dist", warn=lambda _: None)
    t2 = time.perf_counter()
    cpu = {"python cpu": time.process_time() - cpu0, "node cpu": _kernel_cpu() - kernel0}
    (outdir / "values.yaml").write_text(yaml.safe_dump(values))
    t3 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "app", "synth", "-f", str(outdir / "values.yaml"), "-o", str(outdir / "cli")],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    end_to_end = time.perf_counter() - t3
    return {"config": t1 - t0, "synth": t2 - t1, "total": t2 - t0, **cpu, "end-to-end": end_to_end}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.synth", description=__doc__.split("\n")[0])
    p.add_argument("--databases", default="100,200,1000", help="comma-separated N (default 100,200,1000)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--verify", action="store_true", help="also a restore drill CronJob per database")
    p.add_argument("--alerts", action="store_true", help="also the PrometheusRule (a group per database)")
    p.add_argument("--no-spread", action="store_true", help="every database on `0 2 * * *` (no backup.window, no H)")
    args = p.parse_args(argv)
    measure(fleet_values(2, verify=False, alerts=False), Path(tempfile.mkdtemp()))  # warm up jsii
    print(
        f"{'databases':>9}  {'config s':>8}  {'synth s':>8}  {'total s':>16}  {'ms/db':>6}  "
        f"{'python cpu s':>12}  {'node cpu s':>10}  {'end-to-end s':>16}"
    )
    for n in (int(x) for x in args.databases.split(",")):
        runs = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(
                    measure(
                        fleet_values(n, verify=args.verify, alerts=args.alerts, spread=not args.no_spread), Path(tmp)
                    )
                )
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        lo, hi = min(r["total"] for r in runs), max(r["total"] for r in runs)
        elo, ehi = min(r["end-to-end"] for r in runs), max(r["end-to-end"] for r in runs)
        print(
            f"{n:>9}  {med['config']:>8.2f}  {med['synth']:>8.2f}  "
            f"{med['total']:>6.2f} ({lo:.2f}-{hi:.2f})  {1000 * med['total'] / n:>6.1f}  "
            f"{med['python cpu']:>12.2f}  {med['node cpu']:>10.2f}  "
            f"{med['end-to-end']:>6.2f} ({elo:.2f}-{ehi:.2f})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
