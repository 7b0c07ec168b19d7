"""encryption.* in the config and the manifests: public keys to the pods that write backups, the
private key (as a Secret reference) only to the pods that read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import ConfigError
from app.values import config_from_values
from testsupport.app_helpers import pod_specs, render, values
from worker import contract, crypt

IDENTITY, PUBLIC = crypt.generate()
_, PUBLIC2 = crypt.generate()
REF = {"name": "backup-age", "key": "identity"}
BASE = {
    "s3": {"bucket": "backups"},
    "cnpg": {"secretName": "pg-app", "database": "app"},
    "encryption": {"recipients": [PUBLIC, PUBLIC2], "identitySecret": REF},
    "verify": {"enabled": True},
    "restore": {"enabled": True, "object": "latest"},
}


def _env(doc: dict) -> dict[str, dict]:
    [spec] = pod_specs(doc)
    [container] = spec["containers"]
    return {e["name"]: e for e in container["env"]}


def test_each_pod_gets_only_the_keys_it_needs(tmp_path: Path) -> None:
    out = render(values(BASE), tmp_path)
    backup, drill = sorted(out.kind("CronJob"), key=lambda d: d["metadata"]["name"])
    [restore] = out.kind("Job")
    ref = {"valueFrom": {"secretKeyRef": REF}, "name": contract.AGE_IDENTITY.env}
    recipients = {"name": contract.AGE_RECIPIENTS.env, "value": f"{PUBLIC},{PUBLIC2}"}
    assert _env(backup)[contract.AGE_RECIPIENTS.env] == recipients
    assert contract.AGE_IDENTITY.env not in _env(backup)  # the backup CronJob never holds the private key
    assert _env(drill)[contract.AGE_IDENTITY.env] == ref and contract.AGE_RECIPIENTS.env not in _env(drill)
    assert _env(restore)[contract.AGE_IDENTITY.env] == ref
    assert _env(restore)[contract.AGE_RECIPIENTS.env] == recipients  # backupBeforeRestore encrypts too
    assert "AGE-SECRET-KEY" not in out.text


def test_without_encryption_no_pod_gets_an_age_variable(tmp_path: Path) -> None:
    out = render(values({**BASE, "encryption": {}}), tmp_path)
    assert "CNPG_BACKUP_AGE" not in out.text


def _problems(overrides: dict) -> str:
    with pytest.raises(ConfigError) as err:
        config_from_values({**BASE, **overrides})
    return str(err.value)


def test_a_private_key_in_recipients_is_refused_without_echoing_it() -> None:
    msg = _problems({"encryption": {"recipients": [IDENTITY]}})
    assert "encryption.recipients" in msg and "is an age identity (private key)" in msg
    assert IDENTITY not in msg and IDENTITY[20:40] not in msg


@pytest.mark.parametrize(
    ("encryption", "expect"),
    [
        ({"recipients": ["age1short"]}, "is not an age public key"),
        ({"recipients": [PUBLIC, PUBLIC]}, "lists the same public key twice"),
        ({"recipients": [PUBLIC]}, "encryption.identitySecret: required when verify.enabled"),
        ({"recipients": [PUBLIC], "identitySecret": {"name": "s"}}, "encryption.identitySecret.key"),
    ],
)
def test_bad_encryption_config_names_the_field(encryption: dict, expect: str) -> None:
    assert expect in _problems({"encryption": encryption})


def test_restore_of_encrypted_backups_needs_the_identity_secret() -> None:
    msg = _problems({"encryption": {"recipients": [PUBLIC]}, "verify": {"enabled": False}})
    assert "required to restore (restore.object)" in msg
