"""Entry point for `cdk8s synth` (see cdk8s.yaml); `python -m app synth` writes the same files.

Values come from CNPG_BACKUP_VALUES: one file, or several separated by ':' (merged left to
right like repeated -f); default examples/values.yaml. The output directory is the one cdk8s-cli
passes in CDK8S_OUTDIR (default dist).
"""

from __future__ import annotations

import os
import sys

import app  # noqa: F401 - silences the jsii Node banner before cdk8s is imported
from app.errors import ConfigError
from app.values import load_values


def main() -> int:
    files = [f for f in os.environ.get("CNPG_BACKUP_VALUES", "examples/values.yaml").split(os.pathsep) if f]
    try:
        cfg = load_values(files)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 2
    from app.chart import synth

    synth(cfg, os.environ.get("CDK8S_OUTDIR", "dist"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
