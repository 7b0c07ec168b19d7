"""The chart: CnpgPgdumpBackup (app/construct.py) in a chart of its own, and the two ways to render it (a dist/
directory for the declarative workflow, a single one-off restore Job for the imperative one)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cdk8s import App, Chart
from constructs import Construct

from . import naming, props
from .config import Config
from .construct import CnpgPgdumpBackup, CnpgPgdumpBackupProps
from .constructs.plain import without_runtime_type_checks
from .constructs.restore import RestoreJob
from .constructs.secrets import s3_credentials
from .identity import CHART_NAME
from .rules import config_warnings
from .targets import restore_target

OUTPUT_SUFFIX = ".k8s.yaml"
Warn = Callable[[str], None]


def warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class BackupChart(Chart):
    """The chart `synth` writes: CnpgPgdumpBackup (app/construct.py) alone, in global.namespace (none
    when empty)."""

    def __init__(self, scope: Construct, id: str, *, cfg: Config) -> None:
        super().__init__(scope, id, disable_resource_name_hashes=True, namespace=cfg.global_.namespace or None)
        CnpgPgdumpBackup(self, "backup", props=CnpgPgdumpBackupProps(config=cfg))


def synth(cfg: Config, outdir: str | Path = "dist", warn: Warn = warn_stderr) -> list[Path]:
    """Write the manifests for `cfg` to `outdir` and return the files written.

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
        BackupChart(application, CHART_NAME, cfg=cfg)
    application.synth()
    return sorted(outdir.glob(f"*{OUTPUT_SUFFIX}"))


def oneoff_restore_yaml(cfg: Config, now: datetime | None = None, warn: Warn = warn_stderr) -> str:
    """One restore Job (YAML) for `cfg.restore`, named after the current UTC time so every
    invocation is a new run. It reuses the ServiceAccount and Secrets from the applied dist/."""
    for message in config_warnings(cfg):
        if "literal credentials" not in message:  # the Secret itself is not part of this output
            warn(message)
    now = now or datetime.now(UTC)
    target = restore_target(cfg)
    application = App()
    chart = Chart(
        application, "oneoff-restore", disable_resource_name_hashes=True, namespace=cfg.global_.namespace or None
    )
    name = naming.oneoff_restore_job_name(cfg, now.astimezone(UTC))
    RestoreJob(chart, "restore", props=props.restore_job(cfg, target, name, s3_credentials(cfg)))
    return application.synth_yaml()
