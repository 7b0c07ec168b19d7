"""Synthesized manifests: snapshots of every configuration variant, each one validated strictly
against the Kubernetes 1.33 schema and the PodSecurity `restricted` profile."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from app.identity import APP_VERSION
from testsupport.app_helpers import (
    DRILL_VARIANTS,
    GLOBALS_VARIANTS,
    HEARTBEAT,
    REPO,
    VARIANTS,
    WEBHOOK,
    contract_env_names,
    pod_specs,
    pod_templates,
    render,
    restricted_violations,
    validate_strict,
    values,
)
from worker import contract

ALL_VARIANTS = {**VARIANTS, **DRILL_VARIANTS, **GLOBALS_VARIANTS}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {name: render(vals, tmp_path_factory.mktemp(name)) for name, vals in ALL_VARIANTS.items()}


@pytest.mark.parametrize("variant", sorted(ALL_VARIANTS))
def test_snapshot(variant: str, rendered: dict[str, Any], snapshot: Any) -> None:
    assert rendered[variant].text == snapshot


@pytest.mark.parametrize("variant", sorted(ALL_VARIANTS))
def test_every_manifest_is_schema_valid_strictly(variant: str, rendered: dict[str, Any]) -> None:
    for doc in rendered[variant].docs:
        validate_strict(doc)


def test_committed_dist_is_schema_valid_and_restricted() -> None:
    import yaml

    docs = [d for p in sorted((REPO / "dist").glob("*.k8s.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    assert docs, "dist/ is empty"
    for doc in docs:
        validate_strict(doc)
        for spec in pod_specs(doc):
            assert restricted_violations(spec) == []


def test_strict_validation_catches_a_misspelt_field(rendered: dict[str, Any]) -> None:
    import copy

    doc = copy.deepcopy(rendered["defaults"].one("CronJob"))
    doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_strict(doc)


@pytest.mark.parametrize("variant", sorted(ALL_VARIANTS))
def test_every_pod_meets_podsecurity_restricted(variant: str, rendered: dict[str, Any]) -> None:
    specs = [s for d in rendered[variant].docs for s in pod_specs(d)]
    if variant != "backup_disabled":
        assert specs
    for spec in specs:
        assert restricted_violations(spec) == []


def test_restricted_checker_flags_a_bad_pod() -> None:
    bad = {
        "hostNetwork": True,
        "securityContext": {"runAsUser": 0},
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [
            {
                "name": "c",
                "securityContext": {
                    "privileged": True,
                    "allowPrivilegeEscalation": True,
                    "capabilities": {"add": ["SYS_ADMIN"]},
                },
            }
        ],
    }
    problems = " | ".join(restricted_violations(bad))
    for expected in (
        "hostNetwork",
        "runAsUser",
        "hostPath",
        "privileged",
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "seccompProfile",
        "drop ALL",
        "SYS_ADMIN",
    ):
        assert expected in problems


def test_weakened_security_context_warns_and_fails_restricted(tmp_path: Path) -> None:
    out = render(values({"securityContext": {"runAsNonRoot": False, "allowPrivilegeEscalation": True}}), tmp_path)
    assert any("restricted" in w for w in out.warnings)
    spec = pod_specs(out.one("CronJob"))[0]
    assert restricted_violations(spec)


@pytest.mark.parametrize("variant", sorted(ALL_VARIANTS))
def test_labels_on_every_object_and_pod_template(variant: str, rendered: dict[str, Any]) -> None:
    keys = {"name", "instance", "version", "component", "part-of", "managed-by"}
    for doc in rendered[variant].docs:
        for meta in [doc["metadata"]] + [t["metadata"] for t in pod_templates(doc)]:
            labels = meta["labels"]
            assert {k.removeprefix("app.kubernetes.io/") for k in labels if k.startswith("app.kubernetes.io/")} == keys
            assert labels["app.kubernetes.io/version"] == APP_VERSION
            assert labels["app.kubernetes.io/managed-by"] == "cdk8s"


@pytest.mark.parametrize("variant", sorted(ALL_VARIANTS))
def test_names_fit_kubernetes_limits(variant: str, rendered: dict[str, Any]) -> None:
    for doc in rendered[variant].docs:
        limit = 52 if doc["kind"] == "CronJob" else 63
        assert len(doc["metadata"]["name"]) <= limit, doc["metadata"]["name"]
        assert not doc["metadata"]["name"].endswith("-")


# --- the env contract (docs/worker-contract.md) -----------------------------------------------


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for s in pod_specs(doc) for c in s.get("initContainers", []) + s["containers"]]


def test_contract_table_is_parsed() -> None:
    names = contract_env_names()
    assert len(names) >= 18 and "PGPASSWORD" in names and "CNPG_BACKUP_S3_PREFIX" in names


def test_every_contract_env_var_is_set_where_it_should_be(rendered: dict[str, Any]) -> None:
    conditional = {
        "PGSSLROOTCERT": "tls_ca_secret",
        "AWS_CA_BUNDLE": "tls_ca_secret",
        "AWS_ACCESS_KEY_ID": "defaults",
        "AWS_SECRET_ACCESS_KEY": "defaults",
        "CNPG_BACKUP_S3_ENDPOINT": "minio_endpoint",
        "CNPG_BACKUP_S3_STORAGE_CLASS": "minio_endpoint",
        contract.S3_SSE.env: "minio_endpoint",
        contract.S3_KMS_KEY_ID.env: "minio_endpoint",
        "CNPG_BACKUP_PUSHGATEWAY_URL": "prometheus_rule",
        contract.HEARTBEAT_URL.env: "notifications",
        contract.WEBHOOK_URL.env: "notifications",
        contract.NOTIFY_SUCCESS.env: "notifications",
        contract.DUMP_EXTRA_ARGS.env: "pg_dump_extra_args",
        contract.GLOBALS.env: "globals",
        contract.GLOBALS_ROLE_PASSWORDS.env: "globals",
        contract.SUPERUSER.env: "globals",
        contract.SUPERUSER_PASSWORD.env: "globals",
        contract.DUMP_JOBS.env: "scheduling_and_resources",  # only when backup.jobs > 1
    }
    # verify.enabled: every backup and drill container records row counts (the variant has several CronJobs)
    for doc in rendered["restore_drills"].kind("CronJob"):
        for container in _containers(doc):
            assert _env(container)[contract.RECORD_ROW_COUNTS.env]["value"] == "true", doc["metadata"]["name"]
    for name in contract_env_names():
        # per pod kind, tested on their own: row counts above, age keys in tests/app/test_encryption_config.py
        if name in (contract.RECORD_ROW_COUNTS.env, contract.AGE_RECIPIENTS.env, contract.AGE_IDENTITY.env):
            continue
        variant = conditional.get(name, "defaults")
        for container in _containers(rendered[variant].one("CronJob")):
            assert name in _env(container), f"{name} missing from {container['name']} ({variant})"
    # Conditional ones are absent when their setting is.
    default_env = _env(_containers(rendered["defaults"].one("CronJob"))[0])
    for name in (
        "PGSSLROOTCERT",
        "AWS_CA_BUNDLE",
        "CNPG_BACKUP_S3_ENDPOINT",
        "CNPG_BACKUP_S3_STORAGE_CLASS",
        contract.S3_SSE.env,
        contract.S3_KMS_KEY_ID.env,
        "CNPG_BACKUP_PUSHGATEWAY_URL",
        contract.HEARTBEAT_URL.env,
        contract.WEBHOOK_URL.env,
        contract.NOTIFY_SUCCESS.env,
        contract.RECORD_ROW_COUNTS.env,
        contract.DUMP_EXTRA_ARGS.env,
        contract.GLOBALS.env,
        contract.GLOBALS_ROLE_PASSWORDS.env,
        contract.SUPERUSER.env,
        contract.SUPERUSER_PASSWORD.env,
    ):
        assert name not in default_env
    irsa_env = _env(_containers(rendered["irsa_no_secret"].one("CronJob"))[0])
    assert "AWS_ACCESS_KEY_ID" not in irsa_env and "AWS_SECRET_ACCESS_KEY" not in irsa_env
    # Nothing outside the contract sneaks in.
    for variant, out in rendered.items():
        for doc in out.docs:
            for container in _containers(doc):
                assert set(_env(container)) <= set(contract_env_names()), variant
                # a name given twice: kubectl keeps one and warns, server-side apply may drop it
                names = [e["name"] for e in container.get("env", [])]
                assert len(names) == len(set(names)), (variant, container["name"], names)


@pytest.mark.parametrize("variant", sorted(ALL_VARIANTS))
def test_credentials_only_via_secret_key_ref(variant: str, rendered: dict[str, Any]) -> None:
    for doc in rendered[variant].docs:
        for container in _containers(doc):
            env = _env(container)
            for name in (
                "PGPASSWORD",
                "PGUSER",
                "PGPORT",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                contract.HEARTBEAT_URL.env,  # the URLs carry secrets (a check id, a webhook token)
                contract.WEBHOOK_URL.env,
                contract.SUPERUSER.env,  # the superuser roles are dumped and restored with
                contract.SUPERUSER_PASSWORD.env,
            ):
                if name in env:
                    assert "value" not in env[name]
                    assert env[name]["valueFrom"]["secretKeyRef"]["key"]


def test_env_values_follow_the_config(rendered: dict[str, Any]) -> None:
    env = _env(_containers(rendered["scheduling_and_resources"].one("CronJob"))[1])
    assert env["CNPG_BACKUP_FORMAT"]["value"] == "custom"
    assert env["CNPG_BACKUP_COMPRESSION_LEVEL"]["value"] == "6"
    assert env[contract.DUMP_JOBS.env]["value"] == "2"
    assert env["CNPG_BACKUP_LOG_FORMAT"]["value"] == "text"
    assert env["CNPG_BACKUP_RETENTION_DAYS"]["value"] == "14"
    assert env["HOME"]["value"] == env["TMPDIR"]["value"] == "/tmp"
    tls = _env(_containers(rendered["tls_ca_secret"].one("CronJob"))[0])
    assert tls["PGHOST"] == {"name": "PGHOST", "value": "appdb-rw.db.svc"}
    assert tls["PGSSLMODE"]["value"] == "verify-full"
    assert tls["PGSSLROOTCERT"]["value"] == "/etc/cnpg-backup/ca/ca.crt"


@pytest.mark.parametrize(
    ("volume", "secret", "path", "env"),
    [
        ("cnpg-ca", "appdb-ca", "/etc/cnpg-backup/ca", "PGSSLROOTCERT"),
        ("s3-ca", "minio-ca", contract.S3_CA_DIR, "AWS_CA_BUNDLE"),
    ],
)
def test_tls_ca_volumes_are_read_only_secrets_where_their_variable_points(
    rendered: dict[str, Any], volume: str, secret: str, path: str, env: str
) -> None:
    for spec in pod_specs(rendered["tls_ca_secret"].one("CronJob")):
        [vol] = [v for v in spec["volumes"] if v["name"] == volume]
        assert vol["secret"] == {
            "secretName": secret,
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
            "defaultMode": 0o444,
        }
        for container in spec["initContainers"] + spec["containers"]:
            mount = next(m for m in container["volumeMounts"] if m["name"] == volume)
            assert mount == {"name": volume, "mountPath": path, "readOnly": True}
            assert _env(container)[env]["value"] == f"{path}/ca.crt"


def test_the_s3_ca_reaches_the_restore_job_too(tmp_path: Path) -> None:
    vals = values(
        VARIANTS["tls_ca_secret"],
        {"restore": {"object": "latest", "targetDatabase": "appdb_copy"}},
    )
    [job] = [d for d in render(vals, tmp_path).kind("Job")]
    [spec] = pod_specs(job)
    assert any(v["name"] == "s3-ca" for v in spec["volumes"])
    for container in spec["initContainers"] + spec["containers"]:
        assert _env(container)["AWS_CA_BUNDLE"]["value"] == f"{contract.S3_CA_DIR}/ca.crt"


def test_every_container_has_worker_command_and_tmp(rendered: dict[str, Any]) -> None:
    for out in rendered.values():
        for doc in out.docs:
            for container in _containers(doc):
                assert container["command"] == ["cnpg-backup-worker"]
                assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
                assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_init_container_waits_with_configured_timeout(tmp_path: Path) -> None:
    out = render(values({"backup": {"waitTimeoutSeconds": 300}}), tmp_path)
    init = pod_specs(out.one("CronJob"))[0]["initContainers"][0]
    assert init["name"] == "wait-for-postgres"
    assert init["args"] == ["wait", "--timeout", "300"]


# --- objects per variant ----------------------------------------------------------------------


def test_managed_secret_and_warning(rendered: dict[str, Any]) -> None:
    out = rendered["managed_s3_secret"]
    secret = out.one("Secret")
    assert secret["metadata"]["name"] == "cnpg-backup-cnpg-pgdump-backup-s3"
    assert secret["type"] == "Opaque"
    # `data`, not `stringData`: the server stores only `data`, so `stringData` would make every
    # `kubectl apply` report `configured` (tests/kube proves it against a real API server).
    assert "stringData" not in secret
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY123",
        "AWS_SECRET_ACCESS_KEY": "very-secret-value-42",
    }
    assert any("literal credentials" in w and "useExistingSecret" in w for w in out.warnings)
    assert not any("very-secret-value-42" in w or "AKIAEXAMPLEKEY123" in w for w in out.warnings)
    # The secret value appears exactly once in dist/: inside the Secret (base64, not encrypted).
    assert "very-secret-value-42" not in out.text
    assert out.text.count(base64.b64encode(b"very-secret-value-42").decode()) == 1
    for container in _containers(out.one("CronJob")):
        assert (
            _env(container)["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
        )


def test_existing_secret_is_referenced_not_created(rendered: dict[str, Any]) -> None:
    out = rendered["existing_s3_secret"]
    assert out.kind("Secret") == []
    assert out.warnings == []
    env = _env(_containers(out.one("CronJob"))[0])
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "s3-backup-creds"


def test_backup_disabled_has_no_cronjob(rendered: dict[str, Any]) -> None:
    assert rendered["backup_disabled"].kind("CronJob") == []
    assert [d["kind"] for d in rendered["backup_disabled"].docs] == ["ServiceAccount"]


def test_service_account_annotations_and_reference(rendered: dict[str, Any]) -> None:
    out = rendered["irsa_no_secret"]
    sa = out.one("ServiceAccount")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/backup"}
    assert pod_specs(out.one("CronJob"))[0]["serviceAccountName"] == sa["metadata"]["name"]


def test_existing_service_account(tmp_path: Path) -> None:
    out = render(values({"serviceAccount": {"create": False, "name": "backup-sa"}}), tmp_path)
    assert out.kind("ServiceAccount") == []
    assert pod_specs(out.one("CronJob"))[0]["serviceAccountName"] == "backup-sa"
    out = render(values({"serviceAccount": {"create": False}}), tmp_path)
    assert pod_specs(out.one("CronJob"))[0]["serviceAccountName"] == "default"


def test_names_follow_helm_fullname(rendered: dict[str, Any]) -> None:
    assert rendered["defaults"].one("CronJob")["metadata"]["name"] == "cnpg-backup-cnpg-pgdump-backup"
    assert rendered["name_override"].one("CronJob")["metadata"]["name"] == "prod-pgbackup"
    assert rendered["name_override"].one("CronJob")["metadata"]["labels"]["app.kubernetes.io/name"] == "pgbackup"
    assert rendered["fullname_override"].one("CronJob")["metadata"]["name"] == "appdb-backup"
    long = rendered["long_names_truncated"].one("CronJob")["metadata"]["name"]
    assert long.endswith("-orders-and-invoices-history") and len(long) <= 52
    restore = rendered["long_names_truncated"].one("Job")["metadata"]["name"]
    assert len(restore) <= 63 and "-restore-" in restore


def test_release_name_containing_chart_name_is_used_alone(tmp_path: Path) -> None:
    out = render(values({"global": {"releaseName": "my-cnpg-pgdump-backup"}}), tmp_path)
    assert out.one("CronJob")["metadata"]["name"] == "my-cnpg-pgdump-backup"


def test_two_clusters(rendered: dict[str, Any]) -> None:
    out = rendered["two_clusters"]
    cronjobs = {c["metadata"]["name"]: c for c in out.kind("CronJob")}
    assert set(cronjobs) == {
        "cnpg-backup-cnpg-pgdump-backup-orders",
        "cnpg-backup-cnpg-pgdump-backup-billing",
    }
    orders = _env(_containers(cronjobs["cnpg-backup-cnpg-pgdump-backup-orders"])[0])
    billing = _env(_containers(cronjobs["cnpg-backup-cnpg-pgdump-backup-billing"])[0])
    assert orders["PGHOST"]["value"] == "orders-rw"
    assert billing["PGHOST"]["valueFrom"]["secretKeyRef"] == {"name": "billing-app", "key": "host"}
    assert orders["CNPG_BACKUP_S3_PREFIX"]["value"] == "appdb/orders"
    assert billing["PGDATABASE"]["value"] == "billing"
    assert cronjobs["cnpg-backup-cnpg-pgdump-backup-billing"]["spec"]["schedule"] == "30 3 * * 1-5"
    assert cronjobs["cnpg-backup-cnpg-pgdump-backup-orders"]["spec"]["schedule"] == "0 2 * * *"
    job = out.one("Job")
    assert (
        job["metadata"]["annotations"]["cnpg-pgdump-backup/restore-object"]
        == "appdb/orders/orders_2024-01-21_02-00-00.sql.gz"
    )
    assert _env(_containers(job)[0])["PGDATABASE"]["value"] == "orders"


def test_scheduling_is_typed_through(rendered: dict[str, Any]) -> None:
    spec = pod_specs(rendered["scheduling_and_resources"].one("CronJob"))[0]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "node-role.example.com/backup": "true"}
    assert spec["tolerations"][1] == {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    }
    assert spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 50
    restore_resources = render(
        values(VARIANTS["scheduling_and_resources"], {"restore": {"object": "latest"}}),
        Path(pytest.importorskip("tempfile").mkdtemp()),
    ).one("Job")["spec"]["template"]["spec"]["containers"][0]["resources"]
    # Partial resources merge into the defaults key by key, like Helm values do.
    assert restore_resources == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }


# --- notifications (monitoring.heartbeat, monitoring.webhook) ----------------------------------


def _secret_ref(env: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    assert set(env[name]) == {"name", "valueFrom"}, env[name]
    ref: dict[str, Any] = env[name]["valueFrom"]["secretKeyRef"]
    return ref


def test_notification_urls_reach_the_backup_pod_only_as_secret_key_refs(rendered: dict[str, Any]) -> None:
    out = rendered["notifications"]
    for container in _containers(out.one("CronJob")):
        env = _env(container)
        assert _secret_ref(env, contract.HEARTBEAT_URL.env) == HEARTBEAT
        assert _secret_ref(env, contract.WEBHOOK_URL.env) == WEBHOOK
        assert env[contract.NOTIFY_SUCCESS.env] == {"name": contract.NOTIFY_SUCCESS.env, "value": "true"}
    # The worker notifies after backups and drills only: the restore Job carries no reference that
    # could keep it from starting (a missing or misnamed Secret) at the worst moment.
    for container in _containers(out.one("Job")):
        assert not {contract.HEARTBEAT_URL.env, contract.WEBHOOK_URL.env, contract.NOTIFY_SUCCESS.env} & set(
            _env(container)
        )


def test_notify_success_is_absent_unless_set(rendered: dict[str, Any]) -> None:
    for doc in rendered["restore_drills"].kind("CronJob"):
        env = _env(_containers(doc)[-1])
        assert contract.WEBHOOK_URL.env in env and contract.NOTIFY_SUCCESS.env not in env


# --- restore drills (verify) -------------------------------------------------------------------

# libpq's connection settings: a backup pod has them, a drill pod must not (PGDATABASE it keeps: whose
# backups to drill).
PG_CONNECTION = {"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGSSLMODE", "PGSSLROOTCERT"}


def _cronjobs(out: Any) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in out.kind("CronJob")}


def _secret_names(doc: dict[str, Any]) -> set[str]:
    names = {e["valueFrom"]["secretKeyRef"]["name"] for c in _containers(doc) for e in c["env"] if "valueFrom" in e}
    names |= {v["secret"]["secretName"] for s in pod_specs(doc) for v in s["volumes"] if "secret" in v}
    return names


def test_no_drill_cronjob_unless_verify_is_enabled(rendered: dict[str, Any]) -> None:
    for variant, out in rendered.items():
        if not ALL_VARIANTS[variant].get("verify", {}).get("enabled"):
            assert not [n for n in _cronjobs(out) if n.endswith("-drill")], variant
            assert "component: drill" not in out.text


def test_one_drill_cronjob_per_database(rendered: dict[str, Any]) -> None:
    cronjobs = _cronjobs(rendered["restore_drills"])
    prefix = "cnpg-backup-cnpg-pgdump-backup"
    assert set(cronjobs) == {
        f"{prefix}-orders",
        f"{prefix}-billing",
        f"{prefix}-orders-drill",
        f"{prefix}-billing-drill",
    }
    for name, database in (("orders", "orders"), ("billing", "billing")):
        drill = cronjobs[f"{prefix}-{name}-drill"]
        spec = drill["spec"]
        assert spec["schedule"] == "0 5 * * 0"  # verify.schedule, not the database's backup schedule
        assert (spec["concurrencyPolicy"], spec["jobTemplate"]["spec"]["backoffLimit"]) == ("Forbid", 0)
        assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 21600
        assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 3)
        assert "suspend" not in spec
        labels = drill["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "drill"
        assert labels["cnpg-pgdump-backup/database"] == name
        [container] = _containers(drill)
        assert (container["name"], container["command"], container["args"]) == (
            "drill",
            ["cnpg-backup-worker"],
            ["drill"],
        )
        env = _env(container)
        assert env["PGDATABASE"]["value"] == database
        assert env["CNPG_BACKUP_S3_PREFIX"]["value"] == f"appdb/{name}"
        assert env[contract.PUSHGATEWAY.env]["value"] == "http://prometheus-pushgateway.monitoring.svc:9091"
        assert container["resources"] == {
            "requests": {"cpu": "100m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "4Gi"},  # a partial verify.resources merges into its own defaults
        }


def test_the_drill_pod_never_connects_to_the_production_cluster(rendered: dict[str, Any]) -> None:
    cronjobs = _cronjobs(rendered["restore_drills"])
    for name in ("orders", "billing"):
        backup = cronjobs[f"cnpg-backup-cnpg-pgdump-backup-{name}"]
        drill = cronjobs[f"cnpg-backup-cnpg-pgdump-backup-{name}-drill"]
        [spec] = pod_specs(drill)
        [container] = spec["containers"]
        # no init container waiting for PostgreSQL, no CA, no libpq connection settings
        assert "initContainers" not in spec
        assert [v["name"] for v in spec["volumes"]] == ["tmp"]
        assert spec["volumes"][0]["emptyDir"] == {"sizeLimit": "50Gi"}
        assert not PG_CONNECTION & set(_env(container))
        assert [n for n in _env(container) if n.startswith("PG")] == ["PGDATABASE"]
        # no reference to the CNPG Secret at all: only the S3 credentials and the notification URLs
        assert f"{name}-app" in _secret_names(backup)
        assert _secret_names(drill) == {"s3-backup-creds", "backup-alerts"}
        # everything else is exactly what the backup container gets: S3 (credentials included),
        # Pushgateway, notifications, worker settings, HOME/TMPDIR
        backup_env = [e for e in _containers(backup)[-1]["env"] if e["name"] not in PG_CONNECTION]
        assert container["env"] == backup_env


def test_the_drill_pod_is_placed_and_secured_like_the_backup_pod(tmp_path: Path) -> None:
    vals = values(
        VARIANTS["scheduling_and_resources"],
        {"backup": {"imagePullSecrets": ["regcred"], "suspend": True}, "verify": {"enabled": True}},
    )
    cronjobs = _cronjobs(render(vals, tmp_path))
    backup, drill = cronjobs["cnpg-backup-cnpg-pgdump-backup"], cronjobs["cnpg-backup-cnpg-pgdump-backup-drill"]
    [backup_pod], [drill_pod] = pod_specs(backup), pod_specs(drill)
    for key in (
        "securityContext",
        "serviceAccountName",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "restartPolicy",
        "terminationGracePeriodSeconds",
        "imagePullSecrets",
        "nodeSelector",
        "tolerations",
        "affinity",
    ):
        assert key in drill_pod and drill_pod[key] == backup_pod[key], key
    assert drill_pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert drill_pod["containers"][0]["securityContext"] == backup_pod["containers"][0]["securityContext"]
    assert drill_pod["containers"][0]["image"] == backup_pod["containers"][0]["image"]
    assert drill["spec"]["suspend"] is True  # suspended with the backups
    assert drill["spec"]["timeZone"] == backup["spec"]["timeZone"] == "Europe/Berlin"
    # its own history limits? no: the backups' (1 and 5 here), and Forbid whatever backup.concurrencyPolicy says
    assert (drill["spec"]["successfulJobsHistoryLimit"], drill["spec"]["failedJobsHistoryLimit"]) == (1, 5)
    assert (backup["spec"]["concurrencyPolicy"], drill["spec"]["concurrencyPolicy"]) == ("Replace", "Forbid")
    # its own resources and deadline, not the backup's
    assert drill["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 21600
    assert drill_pod["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}


def test_verify_without_backups_warns_and_generates_no_drill(tmp_path: Path) -> None:
    out = render(values({"backup": {"enabled": False}, "verify": {"enabled": True}}), tmp_path)
    assert out.kind("CronJob") == []
    assert any("verify.enabled is true but backup.enabled is false" in w for w in out.warnings)


def test_drill_without_deadline(tmp_path: Path) -> None:
    out = render(values({"verify": {"enabled": True, "activeDeadlineSeconds": 0}}), tmp_path)
    drill = _cronjobs(out)["cnpg-backup-cnpg-pgdump-backup-drill"]
    assert "activeDeadlineSeconds" not in drill["spec"]["jobTemplate"]["spec"]
