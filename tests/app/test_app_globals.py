"""`backup.globals` and `restore.globals` in the manifests: the superuser Secret reaches exactly the
pods that dump or apply roles, only as secretKeyRefs, named by the config or derived from CNPG's naming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import Config
from app.errors import ConfigError
from app.naming import restore_job_name
from app.targets import restore_target
from app.values import config_from_values
from testsupport.app_helpers import TWO_CLUSTERS, pod_specs, render, values
from worker import contract

SUPERUSER_ENV = (contract.SUPERUSER.env, contract.SUPERUSER_PASSWORD.env)
GLOBALS_ENV = (contract.GLOBALS.env, contract.GLOBALS_ROLE_PASSWORDS.env)


def _env_by_pod(out: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Each CronJob's/Job's main container env, by object name (init containers share it)."""
    got = {}
    for doc in out.kind("CronJob") + out.kind("Job"):
        [spec] = pod_specs(doc)
        for c in spec.get("initContainers", []) + spec["containers"]:
            assert c["env"] == spec["containers"][0]["env"]
        got[doc["metadata"]["name"]] = {e["name"]: e for e in spec["containers"][0]["env"]}
    return got


def test_defaults_dump_no_roles_and_carry_no_superuser(tmp_path: Path) -> None:
    cfg = config_from_values(values())
    assert not cfg.backup.globals.enabled and not cfg.backup.globals.include_role_passwords and not cfg.restore.globals
    out = render(values({"restore": {"object": "latest"}, "verify": {"enabled": True}}), tmp_path)
    for name, env in _env_by_pod(out).items():
        assert not set(env) & {*SUPERUSER_ENV, *GLOBALS_ENV}, name


def test_globals_reach_backup_pods_only_and_as_secret_key_refs(tmp_path: Path) -> None:
    out = render(
        values(TWO_CLUSTERS, {"backup": {"globals": {"enabled": True}}, "verify": {"enabled": True}}),
        tmp_path,
    )
    envs = _env_by_pod(out)
    assert len(envs) == 4  # two backup CronJobs, two drills
    for name, env in envs.items():
        if name.endswith("-drill"):  # a drill never connects to the cluster, let alone as superuser
            assert not set(env) & {*SUPERUSER_ENV, *GLOBALS_ENV}, name
            continue
        cluster = "orders" if "orders" in name else "billing"
        assert env[contract.GLOBALS.env] == {"name": contract.GLOBALS.env, "value": "true"}
        assert contract.GLOBALS_ROLE_PASSWORDS.env not in env  # passwords only when asked for
        for var, key in zip(SUPERUSER_ENV, ("username", "password"), strict=True):
            # derived per cluster from CNPG's <cluster>-app: <cluster>-superuser
            assert env[var] == {
                "name": var,
                "valueFrom": {"secretKeyRef": {"name": f"{cluster}-superuser", "key": key}},
            }, name


def test_restore_job_gets_the_superuser_only_with_restore_globals(tmp_path: Path) -> None:
    su = {"name": "root-creds", "usernameKey": "user", "passwordKey": "pw"}
    base = {"backup": {"enabled": False, "globals": {"superuserSecret": su}}, "restore": {"object": "latest"}}
    [plain] = render(values(base), tmp_path / "a").kind("Job")
    [with_globals] = render(values(base, {"restore": {"globals": True}}), tmp_path / "b").kind("Job")
    env = {e["name"]: e for e in with_globals["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[contract.SUPERUSER_PASSWORD.env]["valueFrom"]["secretKeyRef"] == {"name": "root-creds", "key": "pw"}
    assert env[contract.SUPERUSER.env]["valueFrom"]["secretKeyRef"] == {"name": "root-creds", "key": "user"}
    assert contract.GLOBALS.env not in env  # the restore Job dumps nothing
    assert "--globals" in with_globals["spec"]["template"]["spec"]["containers"][0]["args"]
    plain_env = {e["name"] for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (
        not plain_env & set(SUPERUSER_ENV)
        and "--globals" not in plain["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    # a request that also applies roles is another request: another Job (and run id)
    assert plain["metadata"]["name"] != with_globals["metadata"]["name"]


def _job_name(vals: dict[str, Any]) -> str:
    cfg: Config = config_from_values(vals)
    return restore_job_name(cfg, restore_target(cfg))


def test_restore_job_name_is_unchanged_without_globals() -> None:
    # existing restore Jobs keep their names (and run ids) when the field is absent or false
    base = values({"restore": {"object": "latest"}})
    assert _job_name(base) == _job_name(values(base, {"restore": {"globals": False}}))


@pytest.mark.parametrize(
    "override, field",
    [
        (
            {"cnpg": {"secretName": "appdb-credentials"}, "backup": {"globals": {"enabled": True}}},
            "backup.globals.enabled",
        ),
        (
            {
                "cnpg": {"secretName": "creds"},
                "backup": {"enabled": False},
                "restore": {"object": "latest", "globals": True},
            },
            "restore.globals",
        ),
    ],
)
def test_an_underivable_superuser_secret_is_one_clear_error(override: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_values(values(override))
    [line] = [p for p in err.value.problems if "superuserSecret" in p]
    assert line.startswith("backup.globals.superuserSecret.name: required when " + field)
    assert "<cluster>-superuser" in line and "enableSuperuserAccess" in line


def test_superuser_secret_fields_are_validated() -> None:
    with pytest.raises(ConfigError, match="backup.globals.superuserSecret.name"):
        config_from_values(
            values({"backup": {"globals": {"enabled": True, "superuserSecret": {"name": "Not_A_Name"}}}})
        )
    with pytest.raises(ConfigError, match="backup.globals.bogus"):
        config_from_values(values({"backup": {"globals": {"bogus": 1}}}))
