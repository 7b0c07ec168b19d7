"""From one Config to a worker pod's props (app/constructs/pod.py WorkerPodProps): which database,
Secrets, settings and identity a pod gets. Free of cdk8s, like the pod spec itself, so the one-off
Jobs (app/jobs.py) are built from the same props without Node.js; app/props.py uses it for dist/."""

from __future__ import annotations

from . import naming
from .config import Config, Resources
from .constructs.pod import Notifications, PostgresAccess, S3Credentials, SuperuserAccess, WorkerPodProps
from .identity import DEFAULT_TMP_SIZE_LIMIT
from .targets import BackupTarget


def s3_credentials(cfg: Config) -> S3Credentials:
    """The chart's precedence: an existing Secret, else a managed one from literal keys, else a
    named Secret managed elsewhere (the chart's MinIO example), else none (IRSA)."""
    s3 = cfg.s3
    if s3.use_existing_secret:
        return S3Credentials(secret_name=s3.secret_name, managed=False)
    if s3.has_literal_credentials:
        return S3Credentials(secret_name=naming.managed_s3_secret_name(cfg), managed=True)
    if s3.secret_name:
        return S3Credentials(secret_name=s3.secret_name, managed=False)
    return S3Credentials(secret_name=None, managed=False)


def postgres_access(cfg: Config, target: BackupTarget) -> PostgresAccess:
    return PostgresAccess(
        secret_name=target.secret_name,
        service_name=target.service_name,
        cnpg=cfg.cnpg,
        wait_timeout_seconds=cfg.backup.wait_timeout_seconds,
    )


def notifications(cfg: Config) -> Notifications:
    monitoring = cfg.monitoring
    return Notifications(
        heartbeat_url=monitoring.heartbeat.url_secret,
        webhook_url=monitoring.webhook.url_secret,
        notify_success=monitoring.webhook.notify_success,
    )


def worker_pod(
    cfg: Config,
    target: BackupTarget,
    *,
    postgres: PostgresAccess | None,
    container_name: str,
    args: list[str],
    resources: Resources,
    credentials: S3Credentials,
    tmp_size_limit: str = DEFAULT_TMP_SIZE_LIMIT,
    notify: bool = False,
    dumps: bool = False,  # the pod takes the scheduled backups: backup.extraArgs apply
    encrypts: bool = False,  # the pod writes backups: encryption.recipients (public keys)
    decrypts: bool = False,  # the pod reads backups: encryption.identitySecret (the private key)
    superuser: SuperuserAccess | None = None,  # pg_dumpall / restore-globals (backup.globals)
    globals_backup: bool = False,  # the backup also dumps roles and tablespaces
) -> WorkerPodProps:
    return WorkerPodProps(
        target=target,
        postgres=postgres,
        container_name=container_name,
        args=args,
        resources=resources,
        credentials=credentials,
        service_account_name=naming.service_account_name(cfg),
        backup=cfg.backup,
        s3=cfg.s3,
        security_context=cfg.security_context,
        annotations=dict(cfg.monitoring.annotations),
        tmp_size_limit=tmp_size_limit,
        pushgateway_url=cfg.monitoring.pushgateway.url,
        notifications=notifications(cfg) if notify else Notifications(),
        record_row_counts=cfg.verify.enabled,
        pg_dump_extra_args=tuple(cfg.backup.extra_args) if dumps else (),
        age_recipients=tuple(cfg.encryption.recipients) if encrypts else (),
        age_identity=cfg.encryption.identity_secret if decrypts else None,
        superuser=superuser,
        globals_backup=globals_backup,
        globals_role_passwords=globals_backup and cfg.backup.globals.include_role_passwords,
    )


def superuser_access(cfg: Config, target: BackupTarget) -> SuperuserAccess:
    secret = cfg.backup.globals.superuser_secret
    return SuperuserAccess(
        secret_name=secret.name_for(target.secret_name),  # the config refuses an underivable one
        username_key=secret.username_key,
        password_key=secret.password_key,
    )
