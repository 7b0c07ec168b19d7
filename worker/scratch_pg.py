"""A throw-away PostgreSQL server inside the worker's own sandbox, for restore drills.

It lives in a directory under TMPDIR (the pod's emptyDir), listens on a Unix socket in that
directory only (no TCP port: nothing else in the pod or the cluster can reach it), trusts its one
local user, and is stopped and deleted whatever happens — so a drill needs no database in the
cluster and no privilege the backup pod does not already have.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import WorkerError

SERVER_DIRS_ENV = "CNPG_BACKUP_PG_SERVER_DIRS"
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


@dataclass(frozen=True)
class ServerBinaries:
    major: int
    bindir: Path


def installed_servers() -> list[ServerBinaries]:
    dirs = [d for d in os.environ.get(SERVER_DIRS_ENV, "").split(os.pathsep) if d]
    dirs += sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    found: dict[int, ServerBinaries] = {}
    for d in dirs:
        p = Path(d)
        if not all((p / t).exists() for t in ("postgres", "initdb", "pg_ctl")):
            continue
        try:
            out = subprocess.run([str(p / "postgres"), "--version"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        m = _VERSION.search(out)
        if m:
            found.setdefault(int(m.group(1)), ServerBinaries(int(m.group(1)), p))
    return sorted(found.values(), key=lambda s: s.major)


def choose_server(at_least: int) -> ServerBinaries:
    servers = installed_servers()
    fit = [s for s in servers if s.major >= at_least]
    if not fit:
        have = ", ".join(str(s.major) for s in servers) or "none"
        raise WorkerError(
            f"no PostgreSQL server >= {at_least} here to restore the drill into (installed: {have})",
            hint=f"use the worker image (it carries PostgreSQL 18), or list server bin directories in {SERVER_DIRS_ENV}",
        )
    return fit[0]


class ScratchServer:
    """`with ScratchServer(binaries) as s: s.env` — libpq settings for the scratch server."""

    USER = "drill"

    def __init__(self, binaries: ServerBinaries, parent: str | None = None) -> None:
        self.binaries = binaries
        # PostgreSQL refuses to run as root: a root shell (not a pod: those run as uid 999) runs the
        # scratch server as the `postgres` system user, as packaged servers do.
        self._ids: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise WorkerError(
                    "a restore drill cannot start PostgreSQL as root, and there is no `postgres` user to run it as",
                    hint="run the worker as an unprivileged user (the pods run as uid 999)",
                ) from None
            self._ids = (pw.pw_uid, pw.pw_gid)
        self.base = Path(tempfile.mkdtemp(prefix="cnpg-drill-", dir=parent))
        if self._ids:
            os.chown(self.base, *self._ids)
        self.data = self.base / "data"
        self.socket_dir = self.base
        self.port = 5432  # the socket file's name only: there is no TCP listener

    def _run(self, *cmd: str, what: str) -> None:
        p = subprocess.run(
            cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, preexec_fn=self._demote
        )
        if p.returncode != 0:
            tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
            raise WorkerError(f"drill server: {what} failed: {tail[0]}", hint=f"scratch directory {self.base}")

    def _demote(self) -> None:
        if self._ids:
            os.setgroups([])
            os.setgid(self._ids[1])
            os.setuid(self._ids[0])

    def __enter__(self) -> ScratchServer:
        b = self.binaries.bindir
        try:
            self._run(
                str(b / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                what="initdb",
            )
            opts = (
                f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' -p {self.port} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_wal_senders=0 "
                "-c wal_level=minimal -c max_locks_per_transaction=1024 -c shared_buffers=64MB "
                # pods get 64 MB of /dev/shm: parallel query's shared memory goes to files instead
                "-c dynamic_shared_memory_type=mmap"
            )
            self._run(
                str(b / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.base / "server.log"),
                "-o",
                opts,
                "-w",
                "-t",
                "120",
                "start",
                what="start",
            )
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    @property
    def env(self) -> dict[str, str]:
        return {
            "PGHOST": str(self.socket_dir),
            "PGPORT": str(self.port),
            "PGUSER": self.USER,
            "PGDATABASE": "postgres",
            "PGSSLMODE": "disable",
        }

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [str(self.binaries.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=120,
                preexec_fn=self._demote,
            )
        shutil.rmtree(self.base, ignore_errors=True)
