"""`python -m bench`: backup and restore speed and memory of the worker against the Helm chart's pipeline.

See bench/README.md. Nothing here asserts a timing: the output is a table to read and a JSON file to
compare over time. A run fails only when something is broken (a command exits non-zero, a restore
does not bring every row back), so CI running `--quick` catches a rotten benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from testsupport.servers import AGE_IDENTITY, AGE_RECIPIENT  # a test key pair: the bench data is synthetic

from . import datagen, measure
from .servers import (
    BENCH_CACHE,
    GENERATE_OPTS,
    MEASURE_OPTS,
    ROOT,
    MinioServer,
    PostgresServer,
    SetupError,
    client_bin_dir,
    worker_bin_dirs,
)

MiB = 1024 * 1024
QUICK_SIZE_GB = 0.03
BUCKET = "bench"
RESULTS = Path(__file__).resolve().parent / "results"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The dataset


def size_label(size_gb: float) -> str:
    return f"{size_gb:g}gb"


def ensure_dataset(size_gb: float, regenerate: bool) -> tuple[PostgresServer, dict]:
    """A started server holding the database, generated now or reused from the cache."""
    home = BENCH_CACHE / f"pgdata-{size_label(size_gb)}-{datagen.SCHEMA_VERSION}"
    marker = home / "generated.json"
    if regenerate or not marker.exists():
        if home.exists():
            say(f"removing incomplete or outdated {home}")
            shutil.rmtree(home)
        say(f"generating a {size_gb:g} GB database in {home} (cached for the next run)")
        server = PostgresServer(home)
        server.initdb()
        server.start(GENERATE_OPTS)
        try:
            info = datagen.generate(server, int(size_gb * 1e9), say=say)
        finally:
            server.stop()
        marker.write_text(json.dumps(info, indent=2))
        say(f"generated {info['db_bytes'] / 1e9:.2f} GB in {info['generate_seconds']:.0f}s")
        info["reused"] = False
    else:
        info = json.loads(marker.read_text())
        info["reused"] = True
        say(f"reusing the cached database in {home} ({info['db_bytes'] / 1e9:.2f} GB)")
    server = PostgresServer(home)
    server.start(MEASURE_OPTS)
    return server, info


def warm_page_cache(datadir: Path) -> None:
    """Read every relation file once so the first measured run does not pay for cold disk reads."""
    for path in (datadir / "base").rglob("*"):
        if path.is_file():
            with open(path, "rb", buffering=0) as f:
                while f.read(8 * MiB):
                    pass


# ---------------------------------------------------------------------------------------------
# Environments and commands


class Bench:
    def __init__(self, args, pg: PostgresServer, minio: MinioServer, work: Path) -> None:
        self.args, self.pg, self.minio, self.work = args, pg, minio, work
        self.s3 = minio.client()
        self.bin = client_bin_dir()
        self.aws = str(Path(sys.executable).parent / "aws")
        self.raw_bytes = 0
        self.samples: dict[str, list[dict]] = {}
        self.objects: dict[str, str] = {}  # scenario -> key of its last backup (restore input)
        self.image, self.containers_conf = image_settings(args)

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "CNPG_BACKUP_"))}
        env["HOME"] = env["TMPDIR"] = str(self.work)  # no ~/.aws or ~/.pgpass of this machine
        return env

    def worker_env(self, prefix: str) -> dict[str, str]:
        env = self.base_env()
        env.update(self.pg.env(datagen.DATABASE))
        env.update(self.minio.aws_env())
        env.update(
            {
                "CNPG_BACKUP_PG_BIN_DIRS": os.pathsep.join(worker_bin_dirs()),
                "CNPG_BACKUP_S3_BUCKET": BUCKET,
                "CNPG_BACKUP_S3_PREFIX": prefix,
                "CNPG_BACKUP_S3_ENDPOINT": self.minio.endpoint,
            }
        )
        return env

    def shell_env(self, database: str) -> dict[str, str]:
        env = self.base_env()
        env.update(self.pg.env(database))
        env.update(self.minio.aws_env())
        return env

    def worker_cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "worker", *args]

    def image_cmd(self, env: dict[str, str], *args: str, entrypoint: str | None = None) -> list[str]:
        """`podman run` of the worker image as the pods run it (uid 999, read-only root, /tmp tmpfs),
        on the host network. Settings pass by name (`-e NAME`): no value on podman's argv."""
        assert self.image is not None
        cmd = ["podman", "run", "--rm", "--network", "host", "--user", "999:999", "--read-only"]
        cmd += ["--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=1g,mode=1777"]
        for name in sorted(env):
            if name.startswith(("PG", "AWS_", "CNPG_BACKUP_")) and name != "CNPG_BACKUP_PG_BIN_DIRS":
                cmd += ["-e", name]
        if entrypoint:
            cmd += ["--entrypoint", entrypoint]
        return [*cmd, self.image, *args]

    def image_env(self, prefix: str) -> dict[str, str]:
        env = self.worker_env(prefix)
        env["CONTAINERS_CONF"] = self.containers_conf or ""
        return env

    def aws_s3_cp(self, src: str, dst: str) -> str:
        return f"{shlex.quote(self.aws)} s3 cp {src} {dst} --endpoint-url {self.minio.endpoint} --only-show-errors"

    # -- S3 helpers

    def keys(self, prefix: str) -> list[tuple[str, int]]:
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            out += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
        return out

    def backup_object(self, prefix: str) -> tuple[str, int]:
        found = [
            (k, s)
            for k, s in self.keys(prefix)
            if k.removesuffix(".age").endswith((".sql.gz", ".sql.zst", ".dump")) and "/.cnpg-backup/" not in k
        ]
        if len(found) != 1:
            raise RuntimeError(f"expected one backup object under s3://{BUCKET}/{prefix}, found {found}")
        return found[0]

    def delete_prefix(self, prefix: str) -> None:
        keys = [k for k, _ in self.keys(prefix)]
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})

    # -- PostgreSQL helpers

    def checkpoint(self) -> None:
        with self.pg.connect() as c:
            c.execute("CHECKPOINT")

    def create_db(self, name: str) -> None:
        with self.pg.connect() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')

    def drop_db(self, name: str) -> None:
        with self.pg.connect() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- measuring

    def server_pids(self) -> tuple[int | None, int | None]:
        """The postmaster's and MinIO's PIDs."""
        postmaster = int((self.pg.datadir / "postmaster.pid").read_text().split()[0])
        return postmaster, self.minio.proc.pid if self.minio.proc else None

    def measure(self, scenario: str, cmd: list[str], env: dict[str, str], round_no: int, **extra) -> dict:
        load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        servers = [measure.server_cpu_s(pid) for pid in self.server_pids()]
        s = measure.run(cmd, env, cwd=str(ROOT), disk_dir=str(self.work))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # What the co-located servers spent meanwhile: CPU a cluster's worker pod would not share
        pg_cpu, s3_cpu = (
            round(measure.server_cpu_s(pid) - b, 2) for pid, b in zip(self.server_pids(), servers, strict=True)
        )
        if s.returncode != 0:
            raise RuntimeError(f"{scenario} (round {round_no}) exited {s.returncode}: {s.stderr_tail}")
        sample = asdict(s)
        sample.pop("stderr_tail")
        sample.update(
            round=round_no,
            load1=round(load, 2),
            cpu_s=round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
            pg_server_cpu_s=pg_cpu,
            s3_server_cpu_s=s3_cpu,
            **extra,
        )
        self.samples.setdefault(scenario, []).append(sample)
        say(
            f"  {scenario:<16} round {round_no}: {s.wall_s:7.2f}s  cpu {sample['cpu_s']:6.1f}s  "
            f"PostgreSQL {pg_cpu:5.1f}s  MinIO {s3_cpu:5.1f}s  "
            f"tree {s.rss_tree / MiB:6.1f} MiB  load {load:.1f}"
        )
        return sample


# ---------------------------------------------------------------------------------------------
# Scenarios


def raw_pass(b: Bench, sample_budget: int) -> bytes:
    """One unmeasured plain pg_dump into this process: the raw dump size (the MB/s basis), a warm-up,
    and an evenly spread sample of the dump for the compression comparison."""
    env = b.shell_env(datagen.DATABASE)
    proc = subprocess.Popen(
        [str(b.bin / "pg_dump"), "--no-password", "--format=plain"],
        stdout=subprocess.PIPE,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    block = 4 * MiB
    est_blocks = max(1, int(b.args.db_bytes * 0.8) // block)  # the plain dump is ~0.8x the on-disk size
    stride = max(1, est_blocks * block // max(sample_budget, 1))
    sample, buf, raw, n = [], bytearray(), 0, 0
    while chunk := proc.stdout.read1(MiB):
        raw += len(chunk)
        buf += chunk
        while len(buf) >= block:
            if n % stride == 0 and len(sample) * block < sample_budget:
                sample.append(bytes(buf[:block]))
            del buf[:block]
            n += 1
    if len(sample) * block < sample_budget and buf:
        sample.append(bytes(buf))
    if proc.wait() != 0:
        raise RuntimeError("pg_dump of the benchmark database failed")
    b.raw_bytes = raw
    return b"".join(sample)


def codec_comparison(data: bytes) -> list[dict]:
    """Single-thread speed and ratio of each gzip implementation/level on a sample of the dump."""
    from isal import isal_zlib

    codecs = [("isal", 0), ("isal", 1), ("isal", 2), ("isal", 3), ("zlib", 1), ("zlib", 6)]
    out = []
    for impl, level in codecs:
        mod = isal_zlib if impl == "isal" else zlib
        t0 = time.perf_counter()
        c = mod.compressobj(level, mod.DEFLATED, 31)
        size = 0
        for i in range(0, len(data), MiB):
            size += len(c.compress(data[i : i + MiB]))
        size += len(c.flush())
        el = time.perf_counter() - t0
        row = {
            "impl": impl,
            "level": level,
            "mb_s": round(len(data) / el / 1e6, 1),
            "ratio": round(size / len(data), 4),
            "worker_level": level
            if impl == "isal" and level in (1, 2, 3)
            else (level if impl == "zlib" and level >= 4 else None),
        }
        out.append(row)
        say(f"  {impl} level {level}: {row['mb_s']:7.1f} MB/s  ratio {row['ratio']:.4f}")
    return out


def backup_scenarios(b: Bench) -> list[tuple[str, str]]:
    rows = [
        ("seed", "(1) seed: pg_dump | gzip | aws s3 cp -"),
        ("worker", "(2) worker backup (defaults)"),
        ("worker-fast", f"(3) worker backup {' '.join(FAST_ARGS)} (fastest)"),
        ("pg_dump", "(4) pg_dump > /dev/null (limit)"),
    ]
    rows.append(("worker-zstd", "    worker backup --compression zstd"))
    rows.append(("worker-age", "    worker backup, encrypted (age, defaults otherwise)"))
    covered = {1, int(FAST_ARGS[1])}  # the default level and the fastest already have rows
    for level in [lv for lv in b.args.levels if lv not in covered]:
        rows.append((f"worker-L{level}", f"    worker backup --compression-level {level}"))
    if b.image:
        rows += [(scenario, label) for scenario, (label, _) in IMAGE_ROWS.items()]
    # one database, one pg_dump, against two sharing one snapshot (worker/parallel.py), same rounds
    rows += [(scenario, label) for scenario, (label, _) in PARALLEL_ROWS.items()]
    return rows


PARALLEL_ROWS: dict[str, tuple[str, list[str]]] = {
    "custom-j1": ("    worker backup --format custom --dump-jobs 1", ["--format", "custom", "--dump-jobs", "1"]),
    "custom-j2": ("    worker backup --format custom --dump-jobs 2", ["--format", "custom", "--dump-jobs", "2"]),
}


# The shipped image (its PostgreSQL 18 client has zstd and lz4; this machine's host clients do not):
# each row against (6), the image's bare pg_dump, measured in the same rounds.
IMAGE_ROWS: dict[str, tuple[str, list[str]]] = {
    "img-pg_dump": ("(6) image: pg_dump -f /dev/null (the image's limit)", []),
    "img-plain-gzip": ("    image: worker backup (defaults: plain, gzip 2)", []),
    "img-plain-zstd": ("    image: worker backup --compression zstd", ["--compression", "zstd"]),
    "img-custom-zstd": ("    image: --format custom (default: zstd 2)", ["--format", "custom"]),
    # pg_dump's own single-threaded zlib: the worker adds to it what it adds to (6); (6c) shows the rest
    "img-pg_dump-fc-gzip": ("(6c) image: pg_dump -Fc --compress=2 -f /dev/null", []),
    "img-custom-gzip": (
        "    image: --format custom --compression gzip",
        ["--format", "custom", "--compression", "gzip"],
    ),
    "img-custom-lz4": (
        "    image: --format custom --compression lz4 (default level 1)",
        ["--format", "custom", "--compression", "lz4"],
    ),
    # lz4 1.10's level 2, a middle mode: about twice pg_dump's CPU for a 14% smaller archive
    "img-custom-lz4-2": (
        "    image: --format custom --compression lz4 --compression-level 2",
        ["--format", "custom", "--compression", "lz4", "--compression-level", "2"],
    ),
    "img-plain-gzip-age": ("    image: worker backup, encrypted (age)", ["--age-recipient", AGE_RECIPIENT]),
    "img-custom-zstd-age": (
        "    image: --format custom --compression zstd, encrypted (age)",
        ["--format", "custom", "--compression", "zstd", "--age-recipient", AGE_RECIPIENT],
    ),
}


def image_settings(args) -> tuple[str | None, str | None]:
    """The worker image and podman's containers.conf, as tools/build-image.sh recorded them."""
    if args.no_image:
        return None, None
    from .servers import tools_env

    env = {**tools_env(), **{k: v for k, v in os.environ.items() if k.startswith("CNPG_TEST_")}}
    image, conf = env.get("CNPG_TEST_IMAGE"), env.get("CNPG_TEST_CONTAINERS_CONF")
    if not image or not shutil.which("podman"):
        raise SetupError("no worker image recorded: run tools/build-image.sh (or pass --no-image)")
    return image, conf


# The worker's fastest settings found (README: "Choosing the default level"): ISA-L level 2 compresses
# as fast as level 1 (pg_dump is the bottleneck either way) and 1 % smaller.
FAST_ARGS = ["--compression-level", "2"]


def run_backup(b: Bench, scenario: str, r: int) -> None:
    prefix = f"{scenario}/r{r}"
    if scenario == "seed":
        key = f"{prefix}/{datagen.DATABASE}.sql.gz"
        pipeline = f"set -o pipefail; {shlex.quote(str(b.bin / 'pg_dump'))} --no-password | gzip | " + b.aws_s3_cp(
            "-", f"s3://{BUCKET}/{key}"
        )
        s = b.measure(scenario, ["bash", "-c", pipeline], b.shell_env(datagen.DATABASE), r)
        s["object_bytes"] = b.s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    elif scenario == "pg_dump":
        b.measure(scenario, [str(b.bin / "pg_dump"), "--no-password"], b.shell_env(datagen.DATABASE), r)
        return
    elif scenario in ("img-pg_dump", "img-pg_dump-fc-gzip"):
        env = b.image_env(prefix)
        fc = ["--format=custom", "--compress=2", "--no-sync"] if scenario == "img-pg_dump-fc-gzip" else []
        cmd = b.image_cmd(env, "--no-password", *fc, "-f", "/dev/null", entrypoint="/usr/lib/postgresql/18/bin/pg_dump")
        b.measure(scenario, cmd, env, r)
        return
    elif scenario in IMAGE_ROWS:
        env = b.image_env(prefix)
        s = b.measure(scenario, b.image_cmd(env, "backup", *IMAGE_ROWS[scenario][1]), env, r)
        key, s["object_bytes"] = b.backup_object(prefix)
    else:
        if scenario == "worker":
            extra: list[str] = []
        elif scenario == "worker-fast":
            extra = FAST_ARGS
        elif scenario == "worker-custom":
            extra = ["--format", "custom"]
        elif scenario == "worker-zstd":
            extra = ["--compression", "zstd"]
        elif scenario == "worker-age":
            extra = ["--age-recipient", AGE_RECIPIENT]
        elif scenario in PARALLEL_ROWS:
            extra = PARALLEL_ROWS[scenario][1]
        else:
            extra = ["--compression-level", scenario.removeprefix("worker-L")]
        s = b.measure(scenario, b.worker_cmd("backup", *extra), b.worker_env(prefix), r)
        key, s["object_bytes"] = b.backup_object(prefix)
        s["parts"] = len([k for k, _ in b.keys(prefix) if ".dump.part" in k]) + 1
        s["object_bytes"] += sum(size for k, size in b.keys(prefix) if ".dump.part" in k)  # every part
    previous = b.objects.get(scenario)
    if previous:
        b.delete_prefix(previous[1])
    b.objects[scenario] = (key, prefix)


def restore_scenarios() -> list[tuple[str, str]]:
    return [
        ("seed-restore", "(5) seed: aws s3 cp - | gunzip | psql"),
        ("worker-restore", "(6) worker restore (defaults)"),
        ("custom-restore-j2", "(7) worker restore, custom format, --jobs 2"),
        ("age-restore", "    worker restore of the encrypted backup"),
        ("j1-restore-j2", "    worker restore --jobs 2 of the --dump-jobs 1 backup"),
        ("j2-restore-j2", "    worker restore --jobs 2 of the --dump-jobs 2 backup (2 parts)"),
        ("j2-restore-tx", "    worker restore of the --dump-jobs 2 backup, one transaction"),
    ]


RESTORE_SOURCES = {
    "seed-restore": "seed",
    "worker-restore": "worker",
    "age-restore": "worker-age",
    "j1-restore-j2": "custom-j1",
    "j2-restore-j2": "custom-j2",
    "j2-restore-tx": "custom-j2",
}


def run_restore(b: Bench, scenario: str, r: int, expect: dict, expect_indexes: int) -> None:
    target = f"restore_{scenario.replace('-', '_')}_{r}"
    b.create_db(target)
    b.checkpoint()
    try:
        if scenario == "seed-restore":
            key, _ = b.objects["seed"]
            pipeline = (
                "set -o pipefail; " + b.aws_s3_cp(f"s3://{BUCKET}/{key}", "-") + " | gunzip | "
                f"{shlex.quote(str(b.bin / 'psql'))} -X -q --no-password -v ON_ERROR_STOP=1 -o /dev/null"
            )
            s = b.measure(scenario, ["bash", "-c", pipeline], b.shell_env(target), r)
        else:
            source = RESTORE_SOURCES.get(scenario, "worker-custom")
            key, prefix = b.objects[source]
            extra = ["--jobs", "2"] if scenario.endswith("-j2") else []
            env = b.worker_env(prefix)
            if scenario == "age-restore":
                env["CNPG_BACKUP_AGE_IDENTITY"] = AGE_IDENTITY
            s = b.measure(
                scenario, b.worker_cmd("restore", "--object", key, "--target-database", target, *extra), env, r
            )
        # the object, and a parallel backup's parts next to it
        s["object_bytes"] = sum(size for k, size in b.keys(key) if k == key or k.startswith(key + ".part"))
        with b.pg.connect(target) as c:
            got, idx = datagen.table_rows(c), datagen.index_count(c)
        if got != expect or idx != expect_indexes:
            raise RuntimeError(
                f"{scenario} round {r} restored {got} with {idx} indexes; expected {expect} with {expect_indexes}"
            )
    finally:
        b.drop_db(target)


# ---------------------------------------------------------------------------------------------
# Summary, table, JSON


from .report import environment, render_table, summarize  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--size-gb", type=float, default=2.0, help="on-disk size of the generated database (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per step (default 3)")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SIZE_GB} GB, 1 round: the CI smoke run")
    p.add_argument("--levels", default="", help="extra worker backup rows at these compression levels, e.g. 2,3,6")
    p.add_argument("--no-restore", action="store_true", help="backups only")
    p.add_argument(
        "--s3-nice",
        type=int,
        default=0,
        help="run MinIO at this nice level (1-19): a diagnosis of what the S3 server's share of the "
        "two cores costs each row; the reference runs use 0",
    )
    p.add_argument("--only", default="", help="only these backup rows (comma-separated scenario names)")
    p.add_argument("--no-image", action="store_true", help="skip the rows that run the worker image (podman)")
    p.add_argument("--regenerate", action="store_true", help="rebuild the cached database")
    p.add_argument("--generate-only", action="store_true", help="only make sure the cached database exists")
    p.add_argument("--output", type=Path, help="JSON path (default bench/results/<timestamp>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.size_gb, args.rounds = QUICK_SIZE_GB, 1
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if any(not 1 <= lv <= 9 for lv in args.levels) or args.rounds < 1 or args.size_gb <= 0:
        p.error("levels must be 1-9, rounds >= 1, size > 0")
    return args


def renice(pid: int, nice: int) -> None:
    """Every thread of `pid` (Linux niceness is per thread; threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.setpriority(os.PRIO_PROCESS, int(task.name), nice)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    t_start = time.monotonic()
    load_start = os.getloadavg()
    minio = work = pg = None
    try:
        pg, dataset = ensure_dataset(args.size_gb, args.regenerate)
        if args.generate_only:
            return 0
        args.db_bytes = dataset["db_bytes"]
        warm_page_cache(pg.datadir)
        minio = MinioServer().start()
        if args.s3_nice:
            renice(minio.proc.pid, args.s3_nice)
        minio.client().create_bucket(Bucket=BUCKET)
        work = Path(tempfile.mkdtemp(prefix="cnpg-bench-work-", dir="/tmp"))
        b = Bench(args, pg, minio, work)
        with pg.connect(datagen.DATABASE) as c:
            expect, expect_indexes = datagen.table_rows(c), datagen.index_count(c)

        say("raw dump pass (unmeasured warm-up)")
        sample = raw_pass(b, 192 * MiB)
        say(
            f"  {b.raw_bytes / 1e6:.0f} MB of plain SQL; comparing gzip implementations on {len(sample) / 1e6:.0f} MB of it"
        )
        codecs = codec_comparison(sample)
        del sample

        labels = {}
        backups = backup_scenarios(b)
        if args.only:
            backups = [(s, label) for s, label in backups if s in args.only.split(",")]
        labels.update(backups)
        for r in range(1, args.rounds + 1):
            say(f"backup round {r}/{args.rounds}")
            for scenario, _ in backups:
                b.checkpoint()
                run_backup(b, scenario, r)
        if not args.no_restore:
            say("custom-format backup (once: the input of the parallel restore)")
            labels["worker-custom"] = "    worker backup --format custom (once)"
            b.checkpoint()
            run_backup(b, "worker-custom", 1)
            restores = [
                (s, label) for s, label in restore_scenarios() if RESTORE_SOURCES.get(s, "worker-custom") in b.objects
            ]
            labels.update(restores)
            for r in range(1, args.rounds + 1):
                say(f"restore round {r}/{args.rounds}")
                for scenario, _ in restores:
                    run_restore(b, scenario, r, expect, expect_indexes)

        rows = summarize(b, labels)
        table = render_table(rows, b.raw_bytes)
        load_end = os.getloadavg()
        result = {
            "version": 1,
            "started_at": started.isoformat(),
            "duration_s": round(time.monotonic() - t_start, 1),
            "args": {
                "size_gb": args.size_gb,
                "rounds": args.rounds,
                "quick": args.quick,
                "levels": args.levels,
                "s3_nice": args.s3_nice,
            },
            "load_avg_start": [round(x, 2) for x in load_start],
            "load_avg_end": [round(x, 2) for x in load_end],
            "environment": environment(pg),
            "dataset": dataset,
            "raw_dump_bytes": b.raw_bytes,
            "server_settings": MEASURE_OPTS,
            "fast_args": FAST_ARGS,
            "codecs": codecs,
            "rows": rows,
            "samples": b.samples,
            "table": table,
        }
        out = args.output or RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{size_label(args.size_gb)}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"\ndatabase {dataset['db_bytes'] / 1e9:.2f} GB on disk, {args.rounds} interleaved round(s), "
            f"load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end, {os.cpu_count()} CPUs"
        )
        print(table)
        print("\ncompression alone (one thread, on a sample of the dump):")
        for c in codecs:
            print(f"  {c['impl']:<5} level {c['level']}: {c['mb_s']:7.1f} MB/s  ratio {c['ratio']:.4f}")
        print(f"\nwritten {out} ({time.monotonic() - t_start:.0f}s)")
        return 0
    except SetupError as exc:
        say(f"bench: {exc}")
        return 2
    finally:
        if minio:
            minio.destroy()
        if pg:
            pg.stop()
        if work:
            shutil.rmtree(work, ignore_errors=True)
