"""The chart: CnpgPgdumpBackup (app/construct.py) in a chart of its own, written to a dist/ directory
(the declarative workflow; the one-off Jobs of the imperative one: app/oneoff.py, without cdk8s)."""

from __future__ import annotations

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
