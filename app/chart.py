"""The chart: CnpgPgdumpBackup (app/construct.py) in a chart of its own, written to a dist/ directory
(the declarative workflow; the one-off Jobs of the imperative one: app/oneoff.py, without cdk8s)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from cdk8s import App, Chart
from constructs import Construct

from .config import Config
from .construct import CnpgPgdumpBackup, CnpgPgdumpBackupProps
from .constructs.plain import without_runtime_type_checks
from .identity import CHART_NAME
from .oneoff import Warn, warn_stderr
from .rules import config_warnings

OUTPUT_SUFFIX = ".k8s.yaml"


class BackupChart(Chart):
    """The chart `synth` writes: CnpgPgdumpBackup (app/construct.py) alone, in global.namespace (none
    when empty)."""

    def __init__(self, scope: Construct, id: str, *, cfg: Config, render_cron_jobs: bool = False) -> None:
        super().__init__(scope, id, disable_resource_name_hashes=True, namespace=cfg.global_.namespace or None)
        self.backup = CnpgPgdumpBackup(
            self, "backup", props=CnpgPgdumpBackupProps(config=cfg, render_cron_jobs=render_cron_jobs)
        )


@dataclasses.dataclass(frozen=True)
class Written:
    files: list[Path]
    workloads: list[tuple[str, str]]  # (kind, name) of each CronJob and Job, as CnpgPgdumpBackup.workloads


def synth(cfg: Config, outdir: str | Path = "dist", warn: Warn = warn_stderr) -> list[Path]:
    """Write the manifests for `cfg` to `outdir` and return the files written."""
    return write(cfg, outdir, warn).files


def write(cfg: Config, outdir: str | Path = "dist", warn: Warn = warn_stderr) -> Written:
    """Write the manifests for `cfg` to `outdir`: the files written and the workloads in them.

    Old *.k8s.yaml files are removed first: a resource dropped from the config must not linger in
    dist/ and be re-applied by `kubectl apply -f dist/`. Other files in outdir are left alone.
    """
    for message in config_warnings(cfg):
        warn(message)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob(f"*{OUTPUT_SUFFIX}"):
        stale.unlink()
    application = App(outdir=str(outdir), output_file_extension=OUTPUT_SUFFIX)
    with without_runtime_type_checks():
        chart = BackupChart(application, CHART_NAME, cfg=cfg, render_cron_jobs=True)
    application.synth()
    if chart.backup.rendered:
        _splice(outdir / f"{CHART_NAME}{OUTPUT_SUFFIX}", chart.backup.rendered_after, chart.backup.rendered)
    return Written(sorted(outdir.glob(f"*{OUTPUT_SUFFIX}")), chart.backup.workloads)


def _splice(path: Path, after: int, documents: list[str]) -> None:
    """Put `documents` after the first `after` documents cdk8s wrote to `path`, where cdk8s would
    have written them (it separates documents with a `---` line; no line of a document starts so)."""
    text = path.read_text() if path.exists() else ""  # a chart of CronJobs alone
    written = re.split(r"^---\n", text, flags=re.MULTILINE) if text else []
    written[after:after] = documents
    path.write_text("---\n".join(written))
