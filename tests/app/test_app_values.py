"""Helm-compatible values loading: files, merging, --set / --set-string / --set-json / --set-file."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import ConfigError
from app.values import apply_set, apply_set_file, apply_set_json, load_values, merge_all, read_values_file
from testsupport.app_helpers import values


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_set_types_values_like_helm() -> None:
    result = apply_set({}, "a.b=true,a.c=FALSE,a.d=42,a.e=007,a.f=1.5,a.g=null,a.h=,a.i=0")
    assert result == {"a": {"b": True, "c": False, "d": 42, "e": "007", "f": "1.5", "g": None, "h": "", "i": 0}}


def test_set_string_keeps_strings() -> None:
    assert apply_set({}, "a=true,b=42", as_string=True) == {"a": "true", "b": "42"}


def test_set_lists_indexes_and_escapes() -> None:
    result = apply_set({}, r"l={a,b,3},x[1].name=n,monitoring.annotations.prometheus\.io/scrape=true")
    assert result == {
        "l": ["a", "b", 3],
        "x": [None, {"name": "n"}],
        "monitoring": {"annotations": {"prometheus.io/scrape": True}},
    }


def test_set_writes_into_list_items_from_files(tmp_path: Path) -> None:
    f = _write(tmp_path, "v.yaml", "databases:\n  - name: a\n    database: a\n")
    assert merge_all([f], ["databases[0].schedule=@hourly"]) == {
        "databases": [{"name": "a", "database": "a", "schedule": "@hourly"}]
    }


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("foo", "config error: --set: the argument has no '=' (expected KEY=VALUE"),
        # the text without '=' is the tail of a value holding a comma: never echoed
        ("s3.accessKeyId=AKIA,s3.secretAccessKey=abc,SUPERSECRET", "config error: --set: pair 3 of 3 has no '='"),
        ("=x", "config error: --set '=...': missing key before '='"),
        ("a..b=1", "config error: --set 'a..b': malformed key"),
        (".a=1", "config error: --set '.a': malformed key"),
        ("a.=1", "config error: --set 'a.': malformed key"),
        ("a[x]=1", "config error: --set 'a[x]': malformed key"),
        ("a[100000]=1", "config error: --set 'a[100000]': list index 100000 is too large"),
    ],
)
def test_malformed_set_is_one_clear_line(expression: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_set({}, expression)
    assert str(info.value).startswith(expected)
    assert len(str(info.value).splitlines()) == 1


def test_malformed_set_never_echoes_the_value() -> None:
    with pytest.raises(ConfigError) as info:
        apply_set({}, "s3..secretAccessKey=TopSecretValue")
    assert "TopSecretValue" not in str(info.value)


def test_files_merge_left_to_right_like_helm(tmp_path: Path) -> None:
    a = _write(
        tmp_path,
        "a.yaml",
        "backup:\n  schedule: '0 1 * * *'\n  tolerations: [{key: a}]\ncnpg:\n  database: one\n",
    )
    b = _write(tmp_path, "b.yaml", "backup:\n  tolerations: [{key: b}]\ncnpg:\n  secretName: x\n")
    merged = merge_all([a, b])
    assert merged == {
        "backup": {"schedule": "0 1 * * *", "tolerations": [{"key": "b"}]},
        "cnpg": {"database": "one", "secretName": "x"},
    }


def test_null_resets_to_default_and_removes_resources(tmp_path: Path) -> None:
    base = _write(
        tmp_path,
        "base.yaml",
        "backup:\n  schedule: '0 5 * * *'\ncnpg: {secretName: appdb-app, database: appdb}\ns3: {bucket: my-backups-bucket}\n",
    )
    cfg = load_values([base], ["backup.schedule=null", "backup.resources.limits.cpu=null"])
    assert cfg.backup.schedule == "0 2 * * *"
    assert cfg.backup.resources.limits == {"memory": "1Gi"}


def test_set_string_beats_set(tmp_path: Path) -> None:
    cfg = load_values(
        None,
        ["cnpg.secretName=appdb-app,cnpg.database=1,s3.bucket=my-backups-bucket"],
        ["cnpg.database=0012"],
    )
    assert cfg.cnpg.database == "0012"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("backup:\n  schedule: [\n", ":3:1: invalid YAML"),
        ("backup:\n\tschedule: x\n", ":2:1: invalid YAML"),
        ("backup:\n  schedule: a\n  schedule: b\n", ":3:3: invalid YAML: duplicate key 'schedule'"),
        ("- a\n- b\n", ": the top level must be a mapping"),
        ("~: x\n", ":1:1: invalid YAML: keys must be strings"),
        ("backup:\n  ~: 1\n", ":2:3: invalid YAML: keys must be strings"),
        ("? [a]\n: 1\n", ":1:3: invalid YAML: keys must be strings"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", ": invalid YAML: nested too deeply"),
    ],
)
def test_bad_yaml_names_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, "values.yaml", text)
    with pytest.raises(ConfigError) as info:
        read_values_file(path)
    message = str(info.value)
    assert message.startswith(f"config error: {path}")
    assert expected in message
    assert len(message.splitlines()) == 1


def test_yaml_merge_keys_work_as_in_helm(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "values.yaml",
        (
            "backup:\n  resources: &res\n    requests: {cpu: 200m}\n"
            "restore:\n  resources:\n    <<: *res\n    limits: {cpu: '1'}\n"
        ),
    )
    assert read_values_file(path)["restore"]["resources"] == {"requests": {"cpu": "200m"}, "limits": {"cpu": "1"}}
    # a key of the mapping itself overrides the merged one (not a duplicate)
    path = _write(tmp_path, "override.yaml", "base: &b {cpu: 1, memory: 2Gi}\nrequests:\n  <<: *b\n  cpu: 3\n")
    assert read_values_file(path)["requests"] == {"cpu": 3, "memory": "2Gi"}


def test_scalar_keys_become_strings_as_in_helm(tmp_path: Path) -> None:
    path = _write(tmp_path, "values.yaml", "monitoring:\n  annotations:\n    1: x\n    on: y\n")
    assert read_values_file(path)["monitoring"]["annotations"] == {"1": "x", "true": "y"}


def test_yaml_error_does_not_quote_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "values.yaml", "s3:\n  secretAccessKey: 'TopSecret\n  bucket: x\n")
    with pytest.raises(ConfigError) as info:
        read_values_file(path)
    assert "TopSecret" not in str(info.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="values file not found"):
        read_values_file(tmp_path / "nope.yaml")
    assert read_values_file(_write(tmp_path, "empty.yaml", "")) == {}


def test_load_values_accepts_a_chart_values_file(tmp_path: Path) -> None:
    chart_values = _write(
        tmp_path,
        "values.yaml",
        """
global: {fullnameOverride: "", nameOverride: ""}
backup:
  enabled: true
  schedule: "0 2 * * *"
  image: "postgres:16"
  imagePullPolicy: IfNotPresent
  retentionDays: 0
  resources:
    requests: {cpu: 100m, memory: 256Mi}
    limits: {cpu: 1000m, memory: 1Gi}
  nodeSelector: {}
  tolerations: []
  affinity: {}
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  concurrencyPolicy: Forbid
cnpg: {secretName: appdb-app, database: appdb, serviceName: ""}
s3: {bucket: my-backups-bucket, prefix: appdb, region: us-east-1, endpoint: "", secretName: s3-backup-creds, useExistingSecret: false, storageClass: ""}
restore: {enabled: true, object: "", force: false, backupBeforeRestore: false, resources: {}}
securityContext: {runAsNonRoot: true, runAsUser: 999, runAsGroup: 999, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
monitoring: {annotations: {}}
""",
    )
    cfg = load_values(chart_values)
    assert cfg.backup.image == "postgres:16"  # kept as given; docs explain why to change it
    assert cfg.s3.secret_name == "s3-backup-creds"
    assert values()  # helper sanity


def test_set_json_pairs_escapes_and_indexes() -> None:
    got = apply_set_json({"e": ["keep"]}, 'a\\.b.c={"x":[1,2],"y":"p,q"},d=null,e[1]=true,f="0012",g=1.5,h={"x":{}}')
    assert got == {
        "a.b": {"c": {"x": [1, 2], "y": "p,q"}},  # a comma inside JSON does not end the pair
        "d": None,  # null resets to the default, as with --set (merge_all drops it)
        "e": ["keep", True],
        "f": "0012",  # JSON strings stay strings
        "g": 1.5,
        "h": {"x": {}},
    }


def test_set_json_replaces_a_map_where_set_merges_into_it() -> None:
    base = {"backup": {"nodeSelector": {"a": "1"}}}
    assert apply_set_json(base, 'backup.nodeSelector={"b":"2"}') == {"backup": {"nodeSelector": {"b": "2"}}}
    assert apply_set(base, "backup.nodeSelector.b=x") == {"backup": {"nodeSelector": {"a": "1", "b": "x"}}}


def test_set_file_is_verbatim_and_never_typed(tmp_path: Path) -> None:
    number = _write(tmp_path, "n", "0012")
    pem = _write(tmp_path, "pem", "-----BEGIN X-----\nabc\n-----END X-----\n")
    got = apply_set_file({}, f"a={number},b.c={pem}")
    assert got == {"a": "0012", "b": {"c": "-----BEGIN X-----\nabc\n-----END X-----\n"}}


def test_helm_order_files_json_set_string_file(tmp_path: Path) -> None:
    """Helm applies -f, then --set-json, --set, --set-string, --set-file: the later kind wins."""
    file = _write(tmp_path, "v.yaml", "k: {a: file, b: file, c: file, d: file, e: file}\n")
    content = _write(tmp_path, "content", "from-file")
    got = merge_all(
        [file],
        sets=["k.b=set,k.c=set,k.d=set"],
        set_strings=["k.c=string,k.d=string"],
        set_jsons=['k.a="json",k.b="json",k.c="json",k.d="json"'],
        set_files=[f"k.d={content}"],
    )
    assert got == {"k": {"a": "json", "b": "set", "c": "string", "d": "from-file", "e": "file"}}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('a={"x":1', "--set-json 'a': invalid JSON at character"),
        ("a=1 2", "--set-json 'a': unexpected text after the JSON value"),
        ("a=1,b", "--set-json: pair 2 has no '='"),
        ("a[9999]=1", "--set-json 'a[9999]': list index 9999 is too large"),
    ],
)
def test_malformed_set_json_is_one_clear_line(expression: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_set_json({}, expression)
    assert len(str(info.value).splitlines()) == 1 and expected in str(info.value)
