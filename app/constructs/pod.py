"""The pod every worker run uses (backup CronJob, restore Job, one-off restore, restore drill):
containers, environment per docs/worker-contract.md, security contexts and volumes, in one place so
they stay identical. A pod reaches PostgreSQL only through its `PostgresAccess`: the drill pod has
none, so it gets no connection settings, no CA and no init container waiting for the database.

Built as plain JSON (app/k8s_json.py, same constructors as `imports.k8s`) rather than jsii structs:
the one-off Jobs of `python -m app job` render this very pod without Node.js (app/jobs.py), and the
constructs embed it (app/constructs/embed.py), so the two cannot differ."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from worker import contract

from .. import k8s_json as k8s
from .. import scheduling
from ..config import S3, Backup, Cnpg, Resources, SecretKeySelector, SecurityContext
from ..identity import DEFAULT_TMP_SIZE_LIMIT
from ..k8s_json import Json
from ..targets import BackupTarget
from ..validation import canonical_quantity

WORKER_COMMAND = contract.COMMAND
TMP_DIR = contract.TMP_DIR
CA_DIR = "/etc/cnpg-backup/ca"
# The worker aborts an in-flight multipart upload on SIGTERM (no orphaned parts billed); this
# gives it time to do so before the kubelet sends SIGKILL.
TERMINATION_GRACE_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class S3Credentials:
    """Where AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY come from; secret_name None means none
    are injected (IRSA / web identity via the ServiceAccount, or instance credentials)."""

    secret_name: str | None
    managed: bool


@dataclasses.dataclass(frozen=True)
class PostgresAccess:
    """How a pod reaches the database it backs up or restores into: libpq settings from the CNPG
    Secret (or the service name), TLS and its CA, and the init container waiting for the server."""

    secret_name: str  # the CNPG Secret: host, port, username, password
    service_name: str  # the host, literally, instead of the Secret's `host`; "": the Secret's
    cnpg: Cnpg  # TLS mode and CA
    wait_timeout_seconds: int  # the wait-for-postgres init container's --timeout


@dataclasses.dataclass(frozen=True)
class Notifications:
    """Where the worker reports a run besides the metrics. The URLs carry secrets, so the pod gets
    them only as secretKeyRefs."""

    heartbeat_url: SecretKeySelector | None = None  # monitoring.heartbeat.urlSecret
    webhook_url: SecretKeySelector | None = None  # monitoring.webhook.urlSecret
    notify_success: bool = False  # monitoring.webhook.notifySuccess


@dataclasses.dataclass(frozen=True)
class SuperuserAccess:
    """The superuser roles are dumped and restored with (backup.globals.superuserSecret): given to the
    pod only as secretKeyRefs, and only to the pods that use it (worker/globals.py)."""

    secret_name: str
    username_key: str
    password_key: str


@dataclasses.dataclass(frozen=True)
class WorkerPodProps:
    """What a worker pod is made of, and nothing more: the config sections it reads, typed."""

    target: BackupTarget  # which database (PGDATABASE: the one to back up, restore into, or drill) and prefix
    postgres: PostgresAccess | None  # None: the pod never connects to the cluster (restore drills)
    container_name: str
    args: list[str]  # the worker command line (worker/contract.py)
    resources: Resources
    credentials: S3Credentials
    service_account_name: str
    backup: Backup  # image, pull policy, scheduling, format/level/retention/log format
    s3: S3  # bucket, region, endpoint, storage class
    security_context: SecurityContext
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)  # pod annotations (monitoring)
    tmp_size_limit: str = DEFAULT_TMP_SIZE_LIMIT  # the /tmp emptyDir (a custom-format restore stages its archive there)
    pushgateway_url: str = ""  # monitoring.pushgateway.url: where the worker pushes its metrics; "": no push
    notifications: Notifications = Notifications()  # heartbeat and webhook; none by default
    record_row_counts: bool = False  # verify.enabled: plain backups record row counts for the drills
    # encryption.recipients: the pods that write backups encrypt them (public keys only)
    age_recipients: tuple[str, ...] = ()
    # encryption.identitySecret: only the pods that read backups (restore, drill) get the private key
    age_identity: SecretKeySelector | None = None
    pg_dump_extra_args: tuple[str, ...] = ()  # backup.extraArgs: the backup pods only (not a restore's safety backup)
    superuser: SuperuserAccess | None = None  # backup with globals, restore with restore.globals
    globals_backup: bool = False  # backup.globals.enabled: the backup also dumps roles (CNPG_BACKUP_GLOBALS)
    globals_role_passwords: bool = False  # backup.globals.includeRolePasswords


def _secret_env(name: str, secret: str, key: str) -> Json:
    return k8s.EnvVar(
        name=name, value_from=k8s.EnvVarSource(secret_key_ref=k8s.SecretKeySelector(name=secret, key=key))
    )


def postgres_env(pg: PostgresAccess, database: str) -> list[Json]:
    """libpq's settings for the database the pod backs up or restores into."""
    env = [
        k8s.EnvVar(name="PGHOST", value=pg.service_name)
        if pg.service_name
        else _secret_env("PGHOST", pg.secret_name, "host"),
        _secret_env("PGPORT", pg.secret_name, "port"),
        _secret_env("PGUSER", pg.secret_name, "username"),
        _secret_env("PGPASSWORD", pg.secret_name, "password"),
        k8s.EnvVar(name="PGDATABASE", value=database),
        k8s.EnvVar(name="PGSSLMODE", value=pg.cnpg.ssl_mode),
    ]
    if pg.cnpg.ssl_root_cert_secret is not None:
        env.append(k8s.EnvVar(name="PGSSLROOTCERT", value=f"{CA_DIR}/{pg.cnpg.ssl_root_cert_secret.key}"))
    return env


def notification_env(notifications: Notifications) -> list[Json]:
    env: list[Json] = []
    if notifications.heartbeat_url is not None:
        ref = notifications.heartbeat_url
        env.append(_secret_env(contract.HEARTBEAT_URL.env, ref.name, ref.key))
    if notifications.webhook_url is not None:
        ref = notifications.webhook_url
        env.append(_secret_env(contract.WEBHOOK_URL.env, ref.name, ref.key))
    if notifications.notify_success:
        env.append(k8s.EnvVar(name=contract.NOTIFY_SUCCESS.env, value="true"))
    return env


def globals_env(props: WorkerPodProps) -> list[Json]:
    env: list[Json] = []
    if props.globals_backup:
        env.append(k8s.EnvVar(name=contract.GLOBALS.env, value="true"))
        if props.globals_role_passwords:
            env.append(k8s.EnvVar(name=contract.GLOBALS_ROLE_PASSWORDS.env, value="true"))
    su = props.superuser
    if su is not None:
        env += [
            _secret_env(contract.SUPERUSER.env, su.secret_name, su.username_key),
            _secret_env(contract.SUPERUSER_PASSWORD.env, su.secret_name, su.password_key),
        ]
    return env


def worker_env(props: WorkerPodProps) -> list[Json]:
    """The environment of docs/worker-contract.md. Passwords and URLs holding secrets only ever as
    secretKeyRef."""
    target, credentials, pg = props.target, props.credentials, props.postgres
    if pg is not None:
        env = postgres_env(pg, target.database)
    else:
        # No connection at all: the worker takes PGDATABASE as whose backups (the drill's own server
        # is reached through a socket in its sandbox, worker/scratch_pg.py).
        env = [k8s.EnvVar(name="PGDATABASE", value=target.database)]
    if credentials.secret_name:
        env += [
            _secret_env("AWS_ACCESS_KEY_ID", credentials.secret_name, "AWS_ACCESS_KEY_ID"),
            _secret_env("AWS_SECRET_ACCESS_KEY", credentials.secret_name, "AWS_SECRET_ACCESS_KEY"),
        ]
    s3 = props.s3
    env += [
        k8s.EnvVar(name="AWS_REGION", value=s3.region),
        k8s.EnvVar(name=contract.S3_BUCKET.env, value=s3.bucket),
        k8s.EnvVar(name=contract.S3_PREFIX.env, value=target.prefix),
    ]
    if s3.endpoint:
        env.append(k8s.EnvVar(name=contract.S3_ENDPOINT.env, value=s3.endpoint))
    if s3.ca_secret is not None:
        env.append(k8s.EnvVar(name="AWS_CA_BUNDLE", value=f"{contract.S3_CA_DIR}/{s3.ca_secret.key}"))
    if s3.storage_class:
        env.append(k8s.EnvVar(name=contract.S3_STORAGE_CLASS.env, value=s3.storage_class))
    if s3.sse:
        env.append(k8s.EnvVar(name=contract.S3_SSE.env, value=s3.sse))
    if s3.kms_key_id:
        env.append(k8s.EnvVar(name=contract.S3_KMS_KEY_ID.env, value=s3.kms_key_id))
    backup = props.backup
    env += [
        k8s.EnvVar(name=contract.RETENTION_DAYS.env, value=str(backup.retention_days)),
        *(
            k8s.EnvVar(name=setting.env, value=str(getattr(backup.retention, period)))
            for period, setting in contract.RETENTION_GFS.items()
        ),
        k8s.EnvVar(name=contract.FORMAT.env, value=backup.format),
        k8s.EnvVar(name=contract.COMPRESSION.env, value=backup.codec),
        k8s.EnvVar(name=contract.COMPRESSION_LEVEL.env, value=str(backup.level)),
        k8s.EnvVar(name=contract.DUMP_LOCK_WAIT.env, value=str(backup.lock_wait_timeout_seconds)),
        k8s.EnvVar(name=contract.FLAG_SHRINK.env, value=str(backup.flag_shrink_percent)),
        *([k8s.EnvVar(name=contract.DUMP_JOBS.env, value=str(backup.jobs))] if backup.jobs > 1 else []),
        *([k8s.EnvVar(name=contract.RECORD_ROW_COUNTS.env, value="true")] if props.record_row_counts else []),
    ]
    if props.age_recipients:
        env.append(k8s.EnvVar(name=contract.AGE_RECIPIENTS.env, value=",".join(props.age_recipients)))
    if props.age_identity is not None:
        env.append(_secret_env(contract.AGE_IDENTITY.env, props.age_identity.name, props.age_identity.key))
    if props.pg_dump_extra_args:
        env.append(k8s.EnvVar(name=contract.DUMP_EXTRA_ARGS.env, value=json.dumps(list(props.pg_dump_extra_args))))
    if props.pushgateway_url:
        env.append(k8s.EnvVar(name=contract.PUSHGATEWAY.env, value=props.pushgateway_url))
    env += notification_env(props.notifications)
    env += globals_env(props)
    env += [
        k8s.EnvVar(name=contract.LOG_FORMAT.env, value=backup.log_format),
        k8s.EnvVar(name="HOME", value=TMP_DIR),
        k8s.EnvVar(name="TMPDIR", value=TMP_DIR),
    ]
    return env


def quantity(value: str) -> k8s.Quantity:
    """In the server's own spelling, so a second `kubectl apply` finds nothing to change."""
    return k8s.Quantity.from_string(canonical_quantity(value))


def _quantities(values: dict[str, str]) -> dict[str, k8s.Quantity] | None:
    return {k: quantity(v) for k, v in values.items()} or None


def resource_requirements(resources: Resources) -> Json:
    return k8s.ResourceRequirements(requests=_quantities(resources.requests), limits=_quantities(resources.limits))


def container_security_context(sc: SecurityContext) -> Json:
    return k8s.SecurityContext(
        run_as_non_root=sc.run_as_non_root,
        run_as_user=sc.run_as_user,
        run_as_group=sc.run_as_group,
        read_only_root_filesystem=sc.read_only_root_filesystem,
        allow_privilege_escalation=sc.allow_privilege_escalation,
        privileged=False,
        capabilities=k8s.Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
    )


def pod_security_context(sc: SecurityContext) -> Json:
    return k8s.PodSecurityContext(
        run_as_non_root=sc.run_as_non_root,
        run_as_user=sc.run_as_user,
        run_as_group=sc.run_as_group,
        fs_group=sc.fs_group,
        seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
    )


def _ca_volume(name: str, ca: SecretKeySelector) -> Json:
    # Only the CA key is projected; 0444 because a CA certificate is public and the worker's uid may
    # differ from the fsGroup owner.
    return k8s.Volume(
        name=name,
        secret=k8s.SecretVolumeSource(
            secret_name=ca.name, items=[k8s.KeyToPath(key=ca.key, path=ca.key)], default_mode=0o444
        ),
    )


def _volumes(
    ca: SecretKeySelector | None, tmp_size: str, s3_ca: SecretKeySelector | None = None
) -> tuple[list[Json], list[Json]]:
    volumes = [
        k8s.Volume(
            name="tmp",
            empty_dir=k8s.EmptyDirVolumeSource(size_limit=quantity(tmp_size)),
        )
    ]
    mounts = [k8s.VolumeMount(name="tmp", mount_path=TMP_DIR)]
    if ca is not None:
        volumes.append(_ca_volume("cnpg-ca", ca))
        mounts.append(k8s.VolumeMount(name="cnpg-ca", mount_path=CA_DIR, read_only=True))
    if s3_ca is not None:
        volumes.append(_ca_volume("s3-ca", s3_ca))
        mounts.append(k8s.VolumeMount(name="s3-ca", mount_path=contract.S3_CA_DIR, read_only=True))
    return volumes, mounts


# Our typed scheduling models -> the generated k8s structs of the same shape and field names.
_K8S_STRUCTS: dict[type[BaseModel], Callable[..., Json]] = {
    scheduling.Toleration: k8s.Toleration,
    scheduling.NodeSelectorRequirement: k8s.NodeSelectorRequirement,
    scheduling.NodeSelectorTerm: k8s.NodeSelectorTerm,
    scheduling.NodeSelector: k8s.NodeSelector,
    scheduling.PreferredSchedulingTerm: k8s.PreferredSchedulingTerm,
    scheduling.NodeAffinity: k8s.NodeAffinity,
    scheduling.LabelSelectorRequirement: k8s.LabelSelectorRequirement,
    scheduling.LabelSelector: k8s.LabelSelector,
    scheduling.PodAffinityTerm: k8s.PodAffinityTerm,
    scheduling.WeightedPodAffinityTerm: k8s.WeightedPodAffinityTerm,
    scheduling.PodAffinity: k8s.PodAffinity,
    scheduling.PodAntiAffinity: k8s.PodAntiAffinity,
    scheduling.Affinity: k8s.Affinity,
}


def to_k8s(value: Any) -> Any:
    """Convert a scheduling model (recursively) into its k8s struct, leaving out unset fields
    and empty lists (the API server drops them too; they only add noise to dist/ diffs)."""
    if isinstance(value, BaseModel):
        fields = {name: to_k8s(getattr(value, name)) for name in type(value).model_fields}
        return _K8S_STRUCTS[type(value)](**{k: v for k, v in fields.items() if v not in (None, [], {})})
    if isinstance(value, list):
        return [to_k8s(v) for v in value]
    if isinstance(value, dict):
        return {k: to_k8s(v) for k, v in value.items()}
    return value


def affinity(value: scheduling.Affinity) -> Json | None:
    return None if value.is_empty else to_k8s(value)


def tolerations(backup: Backup) -> list[Json] | None:
    return [to_k8s(t) for t in backup.tolerations] or None


def worker_pod_spec(props: WorkerPodProps) -> Json:
    backup, pg = props.backup, props.postgres
    volumes, mounts = _volumes(
        pg.cnpg.ssl_root_cert_secret if pg is not None else None, props.tmp_size_limit, props.s3.ca_secret
    )
    env = worker_env(props)

    def container(name: str, args: list[str]) -> Json:
        return k8s.Container(
            name=name,
            image=backup.image,
            image_pull_policy=backup.image_pull_policy,
            command=[WORKER_COMMAND],
            args=args,
            env=env,
            resources=resource_requirements(props.resources),
            security_context=container_security_context(props.security_context),
            volume_mounts=mounts,
        )

    return k8s.PodSpec(
        restart_policy="Never",
        service_account_name=props.service_account_name,
        # No Kubernetes API access is needed; IRSA / Pod Identity inject their own token volume.
        automount_service_account_token=False,
        enable_service_links=False,
        termination_grace_period_seconds=TERMINATION_GRACE_SECONDS,
        security_context=pod_security_context(props.security_context),
        init_containers=[container("wait-for-postgres", contract.wait_args(pg.wait_timeout_seconds))]
        if pg is not None
        else None,
        containers=[container(props.container_name, props.args)],
        volumes=volumes,
        image_pull_secrets=[k8s.LocalObjectReference(name=n) for n in backup.image_pull_secrets] or None,
        node_selector=dict(backup.node_selector) or None,
        tolerations=tolerations(backup),
        affinity=affinity(backup.affinity),
    )


def pod_template(props: WorkerPodProps, labels: dict[str, str]) -> Json:
    return k8s.PodTemplateSpec(
        metadata=k8s.ObjectMeta(labels=labels, annotations=dict(props.annotations) or None),
        spec=worker_pod_spec(props),
    )
