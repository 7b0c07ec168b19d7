"""Shared helpers of the generator tests (a plain module: tests/app has no __init__.py, so the
name must not clash with anything under tests/worker)."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from app.chart import synth
from app.config import Config
from app.values import config_from_values, merge_values

REPO = Path(__file__).resolve().parents[1]
# The Prometheus Operator's CRD the generated PrometheusRule must satisfy (vendored, see its header).
PROMETHEUS_RULE_CRD = REPO / "testsupport/crds/monitoring.coreos.com_prometheusrules.yaml"
K8S_VERSION = "1.33.0"
CDK8S_INSTALL_HINT = "install it with `bash tools/install-servers.sh cdk8s`"


def cdk8s_cli() -> Path | None:
    """cdk8s-cli: $CNPG_CDK8S_CLI, else what tools/install-servers.sh recorded."""
    candidates = [os.environ.get("CNPG_CDK8S_CLI", "")]
    recorded = Path(os.environ.get("CNPG_TOOLS_CACHE", "/var/cache/cnpg-pgdump-backup")) / "env.d" / "cdk8s.env"
    if recorded.is_file():
        for line in recorded.read_text().splitlines():
            if line.startswith("export CNPG_CDK8S_CLI="):
                candidates.append(line.split("=", 1)[1].strip())
    return next((Path(c) for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)


JSII_ENV = {
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "CDK8S_CHECK_UPGRADE": "false",
}

# The smallest values a chart user must give (the chart's `required` ones).
BASE_VALUES: dict[str, Any] = {
    "cnpg": {"secretName": "appdb-app", "database": "appdb"},
    "s3": {"bucket": "my-backups-bucket", "prefix": "appdb", "secretName": "s3-backup-creds"},
}


def values(*overrides: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(BASE_VALUES)
    for override in overrides:
        result = merge_values(result, override)
    return result


# The configuration variants the snapshot tests render (tests/app) and the API-server tests apply
# (tests/kube).
TWO_CLUSTERS = {
    "cnpg": {"secretName": "", "database": ""},
    "databases": [
        {"name": "orders", "database": "orders", "secretName": "orders-app", "serviceName": "orders-rw"},
        {"name": "billing", "database": "billing", "secretName": "billing-app", "schedule": "30 3 * * 1-5"},
    ],
}

# A small fleet: two clusters, the backups spread over a window, the drills by H (app/spread.py).
FLEET = {
    "cnpg": {"secretName": "", "database": ""},
    "databases": [
        {"name": "orders", "database": "orders", "secretName": "shop-app", "serviceName": "shop-rw"},
        {"name": "carts", "database": "carts", "secretName": "shop-app", "serviceName": "shop-rw"},
        {"name": "invoices", "database": "invoices", "secretName": "shop-app", "serviceName": "shop-rw"},
        {"name": "ledger", "database": "ledger", "secretName": "finance-app"},
        {"name": "audit", "database": "audit", "secretName": "finance-app", "schedule": "H/15 * * * *"},
    ],
    "backup": {"window": "2h"},
    "verify": {"enabled": True, "schedule": "H H(4-6) * * 0"},
    "monitoring": {
        "pushgateway": {"url": "http://prometheus-pushgateway.monitoring.svc:9091"},
        "prometheusRule": {"enabled": True},
    },
}

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": values(),
    "minio_endpoint": values(
        {
            "s3": {
                "bucket": "my-backups",
                "endpoint": "http://minio.minio.svc.cluster.local:9000",
                "region": "us-east-1",
                "storageClass": "STANDARD",
                "sse": "aws:kms",
                "kmsKeyId": "minio-backup-key",
            }
        }
    ),
    "existing_s3_secret": values({"s3": {"useExistingSecret": True}}),
    "managed_s3_secret": values(
        {
            "s3": {
                "secretName": "",
                "accessKeyId": "AKIAEXAMPLEKEY123",
                "secretAccessKey": "very-secret-value-42",
            }
        }
    ),
    "irsa_no_secret": values(
        {
            "s3": {"secretName": ""},
            "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/backup"}},
        }
    ),
    "restore_force_backup_first": values(
        {
            "restore": {
                "object": "appdb_2024-01-21_02-00-00.sql.gz",
                "force": True,
                "backupBeforeRestore": True,
                "targetDatabase": "appdb_restored",
            }
        }
    ),
    "backup_disabled": values({"backup": {"enabled": False}}),
    "name_override": values({"global": {"nameOverride": "pgbackup", "releaseName": "prod"}}),
    "fullname_override": values({"global": {"fullnameOverride": "appdb-backup"}}),
    "pg_dump_extra_args": values({"backup": {"extraArgs": ["--no-owner", "--exclude-table=audit_log"]}}),
    "long_names_truncated": values(
        {
            "global": {"releaseName": "a-very-long-release-name-for-the-production-cluster-x"},
            "databases": [{"name": "orders-and-invoices-history", "database": "orders"}],
            "cnpg": {"database": ""},
            "restore": {"object": "latest"},
        }
    ),
    "scheduling_and_resources": values(
        {
            "backup": {
                "nodeSelector": {"kubernetes.io/os": "linux", "node-role.example.com/backup": "true"},
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "backup", "effect": "NoSchedule"},
                    {
                        "key": "node.kubernetes.io/not-ready",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    },
                ],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "topology.kubernetes.io/zone",
                                            "operator": "In",
                                            "values": ["eu-central-1a"],
                                        }
                                    ]
                                }
                            ]
                        }
                    },
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 50,
                                "podAffinityTerm": {
                                    "topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {"matchLabels": {"cnpg.io/cluster": "appdb"}},
                                },
                            }
                        ]
                    },
                },
                "resources": {
                    "requests": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1Gi"},
                    "limits": {"cpu": "2000m", "memory": "4Gi"},
                },
                "timeZone": "Europe/Berlin",
                "activeDeadlineSeconds": 7200,
                "concurrencyPolicy": "Replace",
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 5,
                "format": "custom",
                "jobs": 2,
                "compressionLevel": 6,
                "logFormat": "text",
                "retentionDays": 14,
            },
            "monitoring": {"annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}},
            "restore": {"resources": {"limits": {"memory": "2Gi"}}},
        }
    ),
    "two_clusters": values(
        TWO_CLUSTERS, {"restore": {"object": "orders_2024-01-21_02-00-00.sql.gz", "database": "orders"}}
    ),
    "fleet": values(FLEET),
    "tls_ca_secret": values(
        {
            "cnpg": {
                "sslMode": "verify-full",
                "sslRootCertSecret": {"name": "appdb-ca", "key": "ca.crt"},
                "serviceName": "appdb-rw.db.svc",
            },
            # an in-cluster MinIO whose certificate a private CA signed
            "s3": {"endpoint": "https://minio.minio.svc:9000", "caSecret": {"name": "minio-ca", "key": "ca.crt"}},
        }
    ),
    "prometheus_rule": values(
        {
            "monitoring": {
                "pushgateway": {"url": "http://prometheus-pushgateway.monitoring.svc:9091"},
                "prometheusRule": {
                    "enabled": True,
                    "labels": {"release": "kube-prometheus-stack"},
                    "namespace": "databases",
                },
            }
        }
    ),
}


class Rendered:
    def __init__(self, cfg: Config, outdir: Path):
        self.warnings: list[str] = []
        self.files = synth(cfg, outdir, warn=self.warnings.append)
        self.text = "".join(p.read_text() for p in self.files)
        self.docs = [d for p in self.files for d in yaml.safe_load_all(p.read_text()) if d]

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.kind(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]


def render(vals: dict[str, Any], outdir: Path) -> Rendered:
    return Rendered(config_from_values(vals), outdir)


# Custom resources kubernetes_validate has no schema for. Only this kind, by kind: its content is
# checked by promtool (tests/app/test_alert_rules.py) and its shape against the Prometheus Operator's
# CRD (tests/app/test_alerts.py, tests/kube with the CRD installed).
NOT_IN_K8S_SCHEMA = {("monitoring.coreos.com/v1", "PrometheusRule")}


def validate_strict(doc: dict[str, Any]) -> None:
    """Schema-validate one manifest against Kubernetes 1.33 in strict mode (unknown fields fail)."""
    if (doc.get("apiVersion"), doc.get("kind")) in NOT_IN_K8S_SCHEMA:
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    if doc["kind"] in ("Job", "Deployment", "StatefulSet", "DaemonSet"):
        return [doc["spec"]["template"]["spec"]]
    if doc["kind"] == "Pod":
        return [doc["spec"]]
    return []


def pod_templates(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]]
    if doc["kind"] == "Job":
        return [doc["spec"]["template"]]
    return []


# --- PodSecurity "restricted" (https://kubernetes.io/docs/concepts/security/pod-security-standards/)

_RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_BASELINE_CAPABILITIES = {"NET_BIND_SERVICE"}


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """The rules of the PodSecurity `restricted` profile (baseline included) for one pod spec."""
    problems: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{flag} must not be true")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser must not be 0")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in ("RuntimeDefault", "Localhost"):
        problems.append(f"pod seccompProfile {pod_seccomp} not allowed")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            problems.append(f"volume {volume['name']}: hostPath is not allowed")
        elif not kinds <= _RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: type {sorted(kinds)} not allowed")
    containers = (
        (spec.get("initContainers") or []) + (spec.get("containers") or []) + (spec.get("ephemeralContainers") or [])
    )
    for c in containers:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            problems.append(f"{name}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser must not be 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities must drop ALL")
        extra = set(caps.get("add") or []) - _BASELINE_CAPABILITIES
        if extra:
            problems.append(f"{name}: capabilities add {sorted(extra)} not allowed")
        if c.get("ports") and any(p.get("hostPort") for p in c["ports"]):
            problems.append(f"{name}: hostPort not allowed")
    return problems


def contract_env_names() -> list[str]:
    """Env var names of the table in docs/worker-contract.md."""
    text = (REPO / "docs/worker-contract.md").read_text()
    section = text.split("## Environment", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names += re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell)
    return names


HEARTBEAT = {"name": "backup-alerts", "key": "heartbeat-url"}
WEBHOOK = {"name": "backup-alerts", "key": "slack-webhook"}
# Variants of #14, kept apart from VARIANTS (which other suites iterate): tests/app renders both,
# tests/kube applies restore_drills.
DRILL_VARIANTS: dict[str, dict[str, Any]] = {
    # Heartbeat and webhook on the backup pods; the restore Job (restore.object) gets neither.
    "notifications": values(
        {
            "monitoring": {
                "heartbeat": {"urlSecret": HEARTBEAT},
                "webhook": {"urlSecret": WEBHOOK, "notifySuccess": True},
            },
            "restore": {"object": "latest"},
        }
    ),
    # Two clusters, TLS with a CA, alerts and notifications: the drill pods carry none of the
    # PostgreSQL settings the backup pods have, and the alerts get a drill group per database.
    "restore_drills": values(
        TWO_CLUSTERS,
        {
            "cnpg": {"sslMode": "verify-full", "sslRootCertSecret": {"name": "appdb-ca", "key": "ca.crt"}},
            "verify": {"enabled": True, "tmpSizeLimit": "50Gi", "resources": {"limits": {"memory": "4Gi"}}},
            "monitoring": {
                "pushgateway": {"url": "http://prometheus-pushgateway.monitoring.svc:9091"},
                "prometheusRule": {"enabled": True, "namespace": "databases"},
                "heartbeat": {"urlSecret": HEARTBEAT},
                "webhook": {"urlSecret": WEBHOOK},
            },
        },
    ),
}


# Roles and globals (issue #16): the backup pods dump them as CNPG's <cluster>-superuser (derived
# from cnpg.secretName appdb-app), and the restore Job applies them first (restore.globals).
GLOBALS_VARIANTS: dict[str, dict[str, Any]] = {
    "globals": values(
        {
            "backup": {"globals": {"enabled": True, "includeRolePasswords": True}},
            "restore": {"object": "latest", "globals": True},
        }
    ),
}
