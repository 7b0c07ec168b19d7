"""Run one command and measure it: wall time and peak RSS of its whole process tree.

The tree is sampled every 20 ms with psutil (like tests/worker/helpers.py's TreeSampler). The root
process's peak is exact (its kernel high-water mark, VmHWM); the children's and the whole tree's
are the largest sums seen in one sample, so concurrent processes are counted together and
short-lived ones (`pg_dump --version` probes) do not inflate the figure.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import psutil


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.pid, self.interval = pid, interval
        self.peak_root = 0
        self.peak_children = 0
        self.peak_tree = 0
        self.peak_by_name: dict[str, int] = defaultdict(int)
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._halt.is_set():
            try:
                root_rss = root.memory_info().rss
                self.peak_root = max(self.peak_root, root_rss, _hwm(self.pid))
                kids = root.children(recursive=True)
            except psutil.Error:
                return
            total = 0
            by_name: dict[str, int] = defaultdict(int)
            by_name[_name(root)] += root_rss
            for k in kids:
                try:
                    rss = k.memory_info().rss
                    by_name[_name(k)] += rss
                    total += rss
                except psutil.Error:
                    pass
            self.peak_children = max(self.peak_children, total)
            self.peak_tree = max(self.peak_tree, total + root_rss)
            for n, v in by_name.items():
                self.peak_by_name[n] = max(self.peak_by_name[n], v)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def _name(p: psutil.Process) -> str:
    try:
        cmd = p.cmdline()
    except psutil.Error:
        return "?"
    if not cmd:
        return p.name()
    exe = cmd[0].rsplit("/", 1)[-1]
    if exe.startswith("python") and len(cmd) > 2 and cmd[1] == "-m":
        return cmd[2]  # python -m worker
    if exe.startswith("python") and len(cmd) > 1:
        return cmd[1].rsplit("/", 1)[-1]  # python .venv/bin/aws
    return exe


@dataclass
class Sample:
    wall_s: float
    returncode: int
    rss_root: int
    rss_children: int
    rss_tree: int
    rss_by_name: dict[str, int] = field(default_factory=dict)
    stderr_tail: str = ""


def run(
    cmd: list[str], env: dict[str, str], *, cwd: str | None = None, stdout=subprocess.DEVNULL, timeout: float = 6 * 3600
) -> Sample:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    err_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        wall = time.perf_counter() - t0
        sampler.stop()
        reader.join(timeout=10)
    err = b"".join(err_chunks).decode("utf-8", "replace").strip().splitlines()
    return Sample(
        round(wall, 3),
        rc,
        sampler.peak_root,
        sampler.peak_children,
        sampler.peak_tree,
        dict(sampler.peak_by_name),
        "\n".join(err[-5:]),
    )
