"""Bad input never ends in a traceback: property-based fuzz of the config model and `--set`,
odd S3 keys for the worker. Restore objects that are not gzip, empty, truncated, with a wrong
SHA-256 or of another database are covered in tests/worker/test_restore_safety.py."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import ConfigError
from app.values import apply_set, config_from_values

BASE = {
    "cnpg": {"secretName": "appdb-app", "database": "appdb"},
    "s3": {"bucket": "my-backups-bucket", "prefix": "appdb", "secretName": "s3-backup-creds"},
}

SECTIONS = {
    "global": ["fullnameOverride", "nameOverride", "releaseName"],
    "backup": [
        "enabled",
        "schedule",
        "image",
        "imagePullPolicy",
        "retentionDays",
        "resources",
        "nodeSelector",
        "tolerations",
        "affinity",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
        "concurrencyPolicy",
        "format",
        "compressionLevel",
        "timeZone",
    ],
    "cnpg": ["secretName", "database", "serviceName", "sslMode"],
    "s3": [
        "bucket",
        "prefix",
        "region",
        "endpoint",
        "secretName",
        "useExistingSecret",
        "storageClass",
        "accessKeyId",
        "secretAccessKey",
    ],
    "restore": ["enabled", "object", "force", "backupBeforeRestore", "resources", "targetDatabase"],
    "securityContext": [
        "runAsNonRoot",
        "runAsUser",
        "runAsGroup",
        "readOnlyRootFilesystem",
        "allowPrivilegeEscalation",
    ],
    "monitoring": ["annotations"],
    "databases": [],
    "bogusSection": [],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(["", "0 2 * * *", "* * *", "1Gi", "-1", "Always", "http://", "s3://x", "a..b", "UPPER", "@daily"]),
)
values_tree = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)),
    max_leaves=8,
)


@st.composite
def configs(draw):
    v = {k: dict(val) for k, val in BASE.items()}
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(sorted(SECTIONS)))
        keys = SECTIONS[section]
        if not keys:
            v[section] = draw(values_tree)
            continue
        key = draw(st.one_of(st.sampled_from(keys), st.text(max_size=12)))
        target = v.setdefault(section, {})
        if isinstance(target, dict):
            target[key] = draw(values_tree)
    return v


DOTTED = re.compile(r"config error: [A-Za-z_][\w.\[\]-]*")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_any_config_is_valid_or_one_clear_error_per_problem(values):
    try:
        config_from_values(values)
    except ConfigError as err:
        lines = str(err).splitlines()
        assert lines and all(DOTTED.match(line) for line in lines), str(err)
        assert "Traceback" not in str(err)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_any_set_string_is_applied_or_refused_clearly(expr):
    try:
        apply_set({}, expr)
    except ConfigError as err:
        assert str(err).strip() and "\n" not in str(err).strip()


@pytest.mark.parametrize("expr", ["foo", "=x", "a..b=1", "a[=1", "a[x]=1", "a.b[99999999999]=1", "[0]=1", ".a=1"])
def test_malformed_set(expr):
    with pytest.raises(ConfigError):
        apply_set({}, expr)


@pytest.mark.integration
@pytest.mark.parametrize(
    "obj",
    [
        "backups/ä ö ü_2024-01-01_00-00-00.sql.gz",
        "backups/x?y#z.sql.gz",
        "../../etc/passwd",
        "backups/" + "a" * 1100,
        "backups/nul\x01char.sql.gz",
        "  ",
        "latest/",
    ],
)
def test_odd_restore_keys_give_one_clear_line(obj, pg, minio, bucket, make_worker):
    w = make_worker(pg, minio, bucket, "postgres")
    r = w.run("restore", "--object", obj)
    assert r.returncode in (1, 2), r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.error_lines) == 1, r.stderr
