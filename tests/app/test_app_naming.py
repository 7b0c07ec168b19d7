"""Object names within Kubernetes' limits: the backup and restore drill CronJobs of every database stay
distinct and at most 52 characters, however long the release and database names are."""

from __future__ import annotations

from typing import Any

import pytest

from app import naming
from app.targets import backup_targets
from app.values import config_from_values
from testsupport.app_helpers import values

LONG_RELEASE = "a-very-long-release-name-for-the-production-cluster-x"  # 53: the longest allowed
NAMES = ["orders", "orders-and-invoices-history", "d" * 40, "orders-and-invoices-history-2023-arch-01"]


def _cfg(global_: dict[str, Any], names: list[str]) -> Any:
    databases = [{"name": n, "database": f"db{i}", "prefix": f"p{i}"} for i, n in enumerate(names)]
    return config_from_values(
        values({"global": global_, "cnpg": {"database": ""}, "databases": databases, "verify": {"enabled": True}})
    )


@pytest.mark.parametrize(
    "global_",
    [{}, {"releaseName": LONG_RELEASE}, {"fullnameOverride": "x" * 63}, {"nameOverride": "n" * 63}],
    ids=["default", "long-release", "long-fullname-override", "long-name-override"],
)
def test_drill_cronjob_names_fit_keep_the_database_and_stay_unique(global_: dict[str, Any]) -> None:
    cfg = _cfg(global_, NAMES)
    backups = [naming.cronjob_name(cfg, t) for t in backup_targets(cfg)]
    drills = [naming.drill_cronjob_name(cfg, t) for t in backup_targets(cfg)]
    for target, backup, drill in zip(backup_targets(cfg), backups, drills, strict=True):
        assert len(drill) <= naming.MAX_CRONJOB_NAME and len(backup) <= naming.MAX_CRONJOB_NAME
        # derived like the backup's: the fullname is shortened, the database's name kept whole
        assert drill.endswith(f"-{target.name}-drill") and backup.endswith(f"-{target.name}")
        assert not drill.startswith("-") and "--" not in drill
        assert drill.removesuffix(f"-{target.name}-drill") == naming.fullname(cfg)[: len(drill) - len(target.name) - 7]
    assert len(set(backups + drills)) == 2 * len(NAMES)


def test_single_database_drill_name() -> None:
    cfg = config_from_values(values({"verify": {"enabled": True}}))
    [target] = backup_targets(cfg)
    assert naming.drill_cronjob_name(cfg, target) == "cnpg-backup-cnpg-pgdump-backup-drill"
    long = config_from_values(values({"global": {"fullnameOverride": "f" * 63}, "verify": {"enabled": True}}))
    [target] = backup_targets(long)
    assert naming.drill_cronjob_name(long, target) == "f" * 46 + "-drill"
    assert naming.cronjob_name(long, target) == "f" * 52


def test_shortening_the_backup_name_instead_would_collide() -> None:
    """Why the suffix is `<name>-drill` on the fullname and not `-drill` on the backup CronJob's name:
    two 40-character database names differing at the end would lose that end."""
    names = ["orders-and-invoices-history-2023-arch-01", "orders-and-invoices-history-2023-arch-02"]  # 40 each
    cfg = _cfg({"releaseName": LONG_RELEASE}, names)
    targets = backup_targets(cfg)
    naive = {naming.with_suffix(naming.cronjob_name(cfg, t), "drill", naming.MAX_CRONJOB_NAME) for t in targets}
    assert len(naive) == 1
    assert len({naming.drill_cronjob_name(cfg, t) for t in targets}) == 2
