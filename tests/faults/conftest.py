"""Fault-injection suite: every case checks the same invariants and is counted in one table.

Invariants (issue: nothing lost, nothing leaked, every error clear):
- no object that `list` marks complete, or `restore latest` would take, unless its backup fully
  succeeded — each complete entry must verify end to end (`restore --dry-run`);
- no multipart upload left open once the next run/prune has passed;
- a failed restore leaves the target database exactly as it was;
- a failure exits non-zero with one clear error line and no secret in any output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from testsupport.servers import AGE_IDENTITY, MINIO_SECRET, PG_PASSWORD

_RESULTS: list[FaultCase] = []


@dataclass
class FaultCase:
    name: str
    lost_or_corrupt: int = 0
    leaks: int = 0
    notes: list[str] = field(default_factory=list)
    outcome: str = "failed"

    def scan_for_secrets(self, *texts: str) -> None:
        for t in texts:
            for secret in (PG_PASSWORD, MINIO_SECRET, AGE_IDENTITY):
                if t and secret in t:
                    self.leaks += 1

    def check_store(
        self, minio, bucket: str, worker, *, expect_complete: int | None = None, open_uploads_allowed: bool = False
    ) -> list[dict]:
        """Every entry `list` calls complete must verify; count what does not."""
        r = worker.run("list", "--json")
        self.scan_for_secrets(r.stdout, r.stderr)
        entries = json.loads(r.stdout or "[]")
        complete = [e for e in entries if e["status"] == "complete"]
        for e in complete:
            v = worker.run("restore", "--object", e["key"], "--dry-run")
            self.scan_for_secrets(v.stdout, v.stderr)
            if v.returncode != 0:
                self.lost_or_corrupt += 1
                self.notes.append(f"listed complete but fails verification: {e['key']}")
        if expect_complete is not None and len(complete) != expect_complete:
            self.lost_or_corrupt += abs(expect_complete - len(complete))
            self.notes.append(f"expected {expect_complete} complete backups, found {len(complete)}")
        uploads = minio.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        if uploads and not open_uploads_allowed:
            self.notes.append(f"{len(uploads)} multipart uploads left open")
            self.lost_or_corrupt += 0  # storage leak, not data loss: reported as a failed invariant
            raise AssertionError(f"multipart uploads left open: {[u['Key'] for u in uploads]}")
        return entries


@pytest.fixture
def case(request):
    c = FaultCase(request.node.name)
    yield c
    rep = getattr(request.node, "rep_call", None)
    c.outcome = "passed" if rep is not None and rep.passed else "failed"
    _RESULTS.append(c)
    assert c.leaks == 0, f"secret leaked {c.leaks}x"
    assert c.lost_or_corrupt == 0, "; ".join(c.notes)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section("fault suite")
    tr.write_line(f"{'case':<58} {'result':<7} {'lost/corrupt':>12} {'leaks':>6}")
    for c in _RESULTS:
        tr.write_line(f"{c.name[:58]:<58} {c.outcome:<7} {c.lost_or_corrupt:>12} {c.leaks:>6}")
    passed = sum(c.outcome == "passed" for c in _RESULTS)
    tr.write_line(
        f"cases tried: {len(_RESULTS)}, passed: {passed}, objects lost or corrupted: "
        f"{sum(c.lost_or_corrupt for c in _RESULTS)}, leaks: {sum(c.leaks for c in _RESULTS)}"
    )
