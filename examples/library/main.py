"""A user's own cdk8s app that adds pg_dump backups of its database next to its own resources.

This directory stands for the user's project: cdk8s's layout, with the `imports/` package that
`cdk8s import k8s` writes (not committed here), and this library installed from its wheel::

    pip install 'cnpg-pgdump-backup[synth]'       # ships cnpg_pgdump_backup (and the worker)
    cdk8s import k8s && cdk8s synth                # or: python main.py

The backups' ServiceAccount and CronJob land in the chart's namespace with the app's own objects.
tests/app/test_library.py runs this file against the installed wheel.
"""

from __future__ import annotations

from cdk8s import App, Chart
from cnpg_pgdump_backup import CnpgPgdumpBackup, CnpgPgdumpBackupProps, Config
from cnpg_pgdump_backup.config import S3, Backup, Cnpg

from imports import k8s  # the project's own bindings

NAMESPACE = "shop"

app = App()
shop = Chart(app, "shop", namespace=NAMESPACE)
k8s.KubeConfigMap(shop, "settings", data={"greeting": "hello"})
backup = CnpgPgdumpBackup(
    shop,
    "backup",
    props=CnpgPgdumpBackupProps(
        config=Config(
            backup=Backup(schedule="30 1 * * *", retention_days=14),
            cnpg=Cnpg(secret_name="shop-db-app", database="shop"),
            s3=S3(bucket="shop-backups", prefix="shop", secret_name="s3-backup-creds", use_existing_secret=True),
        )
    ),
)
for warning in backup.warnings:
    print(f"warning: {warning}")
# Another chart of the app, without a namespace.
k8s.KubeConfigMap(Chart(app, "cluster"), "flags", metadata={"name": "flags"}, data={"beta": "false"})
app.synth()
