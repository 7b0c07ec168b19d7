"""`backup.globals`: roles, memberships and tablespaces dumped with `pg_dumpall --globals-only` next to
the database backups (worker/globals.py), through a superuser whose credentials come from their own
Secret. Kept out of app/config.py only for size; the model there holds it as `Backup.globals`."""

from __future__ import annotations

from pydantic import Field

from .validation import ObjectName, SecretKey, StrictModel

# CNPG names its Secrets after the cluster: `<cluster>-app` for the application user (cnpg.secretName)
# and, with `enableSuperuserAccess: true`, `<cluster>-superuser` (keys `username`, `password`).
CNPG_APP_SUFFIX = "-app"
CNPG_SUPERUSER_SUFFIX = "-superuser"


class SuperuserSecret(StrictModel):
    _config_path = "backup.globals.superuserSecret"
    # "": `<cluster>-superuser`, derived from each database's CNPG Secret `<cluster>-app`.
    name: ObjectName = Field(
        default="",
        description=(
            "The Secret, e.g. CNPG's `<cluster>-superuser` (the Cluster needs `enableSuperuserAccess: "
            "true`). Empty: derived per database from its CNPG Secret `<cluster>-app` → "
            "`<cluster>-superuser`; a config whose Secret is not so named must set it (one error naming "
            "this field)"
        ),
    )
    username_key: SecretKey = Field(default="username", description="Key of the user name in that Secret")
    password_key: SecretKey = Field(default="password", description="Key of the password in that Secret")

    def name_for(self, app_secret: str) -> str:
        """The Secret for the cluster whose application Secret is `app_secret`; "" when it cannot be derived."""
        if self.name:
            return self.name
        if app_secret.endswith(CNPG_APP_SUFFIX) and len(app_secret) > len(CNPG_APP_SUFFIX):
            return app_secret.removesuffix(CNPG_APP_SUFFIX) + CNPG_SUPERUSER_SUFFIX
        return ""


class Globals(StrictModel):
    _config_path = "backup.globals"
    enabled: bool = Field(
        default=False,
        description=(
            "After each database backup, dump the cluster's globals (plain SQL, compressed with "
            "`backup.compression`; `lz4`: zstd) to `<prefix>/.globals/globals_<timestamp>.sql.gz` "
            "(`.sql.zst`) (kept apart from the database's backups: `list --globals` shows them, retention "
            "prunes them with the same rules). A failure fails the run (the database backup stays "
            "stored). With several `databases` on one cluster each keeps its own copy"
        ),
    )
    # Off: `--no-role-passwords`, the backup holds no password hashes and restored roles get none.
    include_role_passwords: bool = Field(
        default=False,
        description=(
            "Keep role passwords (their SCRAM/MD5 hashes) in the globals backup. Off: "
            "`--no-role-passwords`, the backup holds no password hash and roles it creates on restore "
            "have none"
        ),
    )
    superuser_secret: SuperuserSecret = Field(
        default_factory=SuperuserSecret,
        description=(
            "The superuser pg_dumpall runs as (it reads `pg_authid`); given to the backup pods (and the "
            "restore Job with `restore.globals`) only as secretKeyRefs "
            "`CNPG_BACKUP_SUPERUSER`/`CNPG_BACKUP_SUPERUSER_PASSWORD`"
        ),
    )
