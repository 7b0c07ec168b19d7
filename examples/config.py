"""examples/values.yaml written as a reviewed Python module, with editor completion and type
checking instead of YAML. Synthesize it with:

    .venv/bin/python examples/config.py [OUTDIR]      # default dist/, same files as the YAML

The attribute names are the snake_case forms of the values.yaml keys (docs/configuration.md).
"""

from __future__ import annotations

import sys

from app.config import S3, Backup, Cnpg, Config, Resources, Restore

config = Config(
    backup=Backup(
        enabled=True,
        schedule="0 2 * * *",
        retention_days=30,
        resources=Resources(
            requests={"cpu": "250m", "memory": "256Mi"},
            limits={"cpu": "1", "memory": "1Gi"},
        ),
    ),
    # The Secret CloudNativePG creates for the application user of cluster "appdb".
    cnpg=Cnpg(secret_name="appdb-app", database="appdb"),
    s3=S3(
        bucket="my-backups-bucket",
        prefix="appdb",
        region="eu-central-1",
        secret_name="s3-backup-creds",
        use_existing_secret=True,
    ),
    restore=Restore(object=""),
)


if __name__ == "__main__":
    from app.chart import synth

    for path in synth(config, sys.argv[1] if len(sys.argv) > 1 else "dist"):
        print(path)
