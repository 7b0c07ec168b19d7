"""Peak memory of a process tree, and what its children ran: one sampler for the tests and bench/.

The root process's peak is exact (its kernel high-water mark, VmHWM); the children's and the whole
tree's are the largest sums seen in one sample.
"""

from __future__ import annotations

import threading
from collections import defaultdict

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
        self.cmdlines: set[str] = set()  # every child's argv, NUL-joined (secret scans)
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
                    self.cmdlines.add("\0".join(k.cmdline()))
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
