"""Run one command and measure it: wall time and peak RSS of its whole process tree.

The tree is sampled every 20 ms with psutil (testsupport/sampling.py, shared with the tests). The root
process's peak is exact (its kernel high-water mark, VmHWM); the children's and the whole tree's
are the largest sums seen in one sample, so concurrent processes are counted together and
short-lived ones (`pg_dump --version` probes) do not inflate the figure.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field

from testsupport.sampling import TreeSampler


@dataclass
class Sample:
    wall_s: float
    returncode: int
    rss_root: int
    rss_children: int
    rss_tree: int
    rss_by_name: dict[str, int] = field(default_factory=dict)
    stderr_tail: str = ""
    disk_peak: int = 0  # the largest size of `disk_dir` seen while it ran (a restore's staged archives)


class DiskSampler(threading.Thread):
    """Every 50 ms, the bytes of the files under a directory: peak local disk of a run."""

    def __init__(self, path: str | None) -> None:
        super().__init__(daemon=True, name="disk-sampler")
        self.path, self.peak = path, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while self.path and not self._halt.wait(0.05):
            total = 0
            for root, _dirs, files in os.walk(self.path):
                for name in files:
                    try:
                        total += os.lstat(os.path.join(root, name)).st_blocks * 512
                    except OSError:
                        pass  # removed meanwhile
            self.peak = max(self.peak, total)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5)


def run(
    cmd: list[str],
    env: dict[str, str],
    *,
    cwd: str | None = None,
    stdout=subprocess.DEVNULL,
    timeout: float = 6 * 3600,
    disk_dir: str | None = None,
) -> Sample:
    disk = DiskSampler(disk_dir)
    disk.start()
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
        disk.stop()
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
        disk.peak,
    )


def server_cpu_s(pid: int | None) -> float:
    """CPU seconds a server has used so far: the process, its live children and its reaped ones
    (PostgreSQL's backends, which exit with their connection). 0 without a process."""
    if not pid:
        return 0.0
    import psutil

    try:
        root = psutil.Process(pid)
        t = root.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in root.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.NoSuchProcess:
                pass  # exited meanwhile: counted in the parent's children_* from now on
        return total
    except psutil.NoSuchProcess:
        return 0.0
