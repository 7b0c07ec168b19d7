"""Restoring a parallel backup (worker/parallel.py): every part proven intact before the target is
touched, then restored with the same promise as a single archive (worker/restore.py's docstring).

- Verification: the staging disk must hold every part (refused up front otherwise); each part is
  read end to end, decrypted when encrypted, checked against the manifest's size and SHA-256 and for
  the archive magic, and staged. A missing or corrupt part refuses the restore before it starts.
- `transaction` / `autocommit` paths: `pg_restore -f -` SQL in dependency order, part 0's pre-data,
  part 0's data, every other part's data, part 0's post-data (indexes, constraints, foreign keys,
  triggers), as one stream into ONE psql session: in a transaction, a failure rolls back everything.
- `pg_restore` path (empty target, `--jobs`): part 0's pre-data, then the parts' data
  (`pg_restore --section=data`, N sessions in all), then post-data with `--jobs N`. On
  failure or SIGTERM every pg_restore is killed and the caller empties the database again.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

from . import apply, log, naming, pg
from .errors import WorkerError
from .manifest import Manifest
from .procs import StderrTail, child_options, kill
from .s3 import Bucket
from .verify import Verified, verify


def part_manifests(key: str, m: Manifest) -> list[tuple[str, Manifest]]:
    """(key, manifest of that object alone) for part 0 and each other part, in order; refuses a
    manifest whose parts are not this backup's own `<key>.part<i>`, 1..N-1."""
    out = [(key, dataclasses.replace(m, parts=[], status="complete"))]
    for n, p in enumerate(m.parts, start=1):
        if p.get("key") != naming.part_key(key, n) or p.get("index") != n:
            raise WorkerError(
                f"manifest of {key} lists part {n} as {p.get('key')!r}, not {naming.part_key(key, n)!r}",
                hint="the manifest was edited or belongs to another backup; choose another backup",
            )
        out.append(
            (
                p["key"],
                dataclasses.replace(
                    m,
                    key=p["key"],
                    object_bytes=int(p["object_bytes"]),
                    sha256=str(p["sha256"]),
                    parts=[],
                    status="complete",
                ),
            )
        )
    return out


def check_space(m: Manifest, stage_dir: str | None) -> None:
    """Refuse up front when the staging disk cannot hold every part (a custom archive is staged)."""
    need = m.object_bytes + sum(int(p.get("object_bytes", 0)) for p in m.parts)
    directory = stage_dir or tempfile.gettempdir()
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # cannot tell: staging itself reports a full disk
    if free < need:
        raise WorkerError(
            f"cannot stage the {len(m.parts) + 1} parts of {m.key} ({log.human_bytes(need)}) in {directory}: "
            f"only {log.human_bytes(free)} free",
            hint="nothing was touched; raise restore.tmpSizeLimit (the pod's /tmp) or free the space",
        )


def refuse_headless(bucket: Bucket, key: str) -> None:
    """An object without manifest that has parts next to it is part 0 of an unfinished parallel
    backup: restored alone it would lack the other parts' tables, so --allow-unverified never takes it."""
    if bucket.head(naming.part_key(key, 1)) is not None:
        raise WorkerError(
            f"s3://{bucket.loc.bucket}/{key} is part 0 of a parallel backup that never finished (no manifest, "
            "other parts next to it): restoring it alone would miss their tables",
            hint="choose another backup; prune removes these orphans after a day",
        )


def verify_parts(
    bucket: Bucket, key: str, m: Manifest, compression: str, stage_dir: str | None, identities: Sequence[Any]
) -> list[Verified]:
    """Parts 1..N-1 verified and staged (part 0 is verify()'s own); on failure nothing stays staged."""
    staged: list[Verified] = []
    try:
        for part_key, pm in part_manifests(key, m)[1:]:
            if bucket.head(part_key) is None:
                raise WorkerError(
                    f"part {len(staged) + 1} of {key} (s3://{bucket.loc.bucket}/{part_key}) is missing",
                    hint="the backup is incomplete; choose another backup",
                )
            staged.append(verify(bucket, part_key, pm, "custom", compression, stage_dir, identities))
    except BaseException:
        discard(staged)
        raise
    return staged


def discard(parts: Sequence[Verified]) -> None:
    for v in parts:
        if v.staged and os.path.exists(v.staged):
            os.unlink(v.staged)


def sql_of(client: pg.Client, v: Verified) -> Iterator[bytes]:
    """The whole backup as one SQL stream, in dependency order, for the psql paths."""
    archives = [v.staged] + [p.staged for p in v.parts]
    assert all(archives)  # verify() staged every archive
    head, rest = str(archives[0]), [str(a) for a in archives[1:]]
    steps = [(head, "pre-data"), (head, "data")] + [(a, "data") for a in rest] + [(head, "post-data")]
    return itertools.chain.from_iterable(
        apply.pg_restore_sql(client, archive, v.key, [f"--section={section}"]) for archive, section in steps
    )


def _pg_restore_cmd(client: pg.Client, dbname: str, archive: str, section: str, jobs: int) -> list[str]:
    return [
        client.tool("pg_restore"),
        "--no-password",
        "--exit-on-error",
        f"--section={section}",
        f"--jobs={jobs}",
        "-d",
        dbname,
        archive,
    ]


def run_together(cmds: list[list[str]], dbname: str, what: list[str], at_once: int = 1) -> None:
    """Run the pg_restores, `at_once` at a time; the first to fail (or a signal) kills the others."""
    procs: list[tuple[subprocess.Popen[bytes], StderrTail, str]] = []
    waiting = list(zip(cmds, what, strict=True))
    try:
        while True:
            running = 0
            for proc, tail, name in procs:
                rc = proc.poll()
                if rc is None:
                    running += 1
                elif rc != 0:
                    tail.join(timeout=10)
                    raise WorkerError(f"{name}: {tail.summary()}")
            while waiting and running < max(1, at_once):
                cmd, name = waiting.pop(0)
                proc = subprocess.Popen(
                    cmd,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    env=apply.restore_env(dbname),
                    **child_options(),
                )
                assert proc.stderr is not None  # a PIPE
                tail = StderrTail(proc.stderr)
                tail.start()
                procs.append((proc, tail, name))
                running += 1
            if not running:
                return
            time.sleep(0.1)
    finally:
        for proc, tail, _ in procs:
            kill(proc)
            tail.join(timeout=10)


def restore_parallel(client: pg.Client, dbname: str, v: Verified, jobs: int) -> None:
    head = str(v.staged)
    archives = [head] + [str(p.staged) for p in v.parts]
    # `jobs` sessions in all: each part's data by its own pg_restore, as many at once as jobs allow,
    # the jobs left over shared among them (pg_restore --jobs loads several tables of one part)
    share = max(1, jobs // len(archives))
    run_together([_pg_restore_cmd(client, dbname, head, "pre-data", 1)], dbname, ["part 0 pre-data"])
    run_together(
        [_pg_restore_cmd(client, dbname, a, "data", share) for a in archives],
        dbname,
        [f"part {i} data" for i in range(len(archives))],
        at_once=jobs,
    )
    run_together([_pg_restore_cmd(client, dbname, head, "post-data", max(1, jobs))], dbname, ["part 0 post-data"])
