"""`backup.globals`: roles, memberships and tablespaces dumped with `pg_dumpall --globals-only` next to
the database backups (worker/globals.py), through a superuser whose credentials come from their own
Secret. Kept out of app/config.py only for size; the model there holds it as `Backup.globals`."""

from __future__ import annotations

from pydantic import Field

from app.validation import ObjectName, SecretKey, StrictModel

# CNPG names its Secrets after the cluster: `<cluster>-app` for the application user (cnpg.secretName)
# and, with `enableSuperuserAccess: true`, `<cluster>-superuser` (keys `username`, `password`).
CNPG_APP_SUFFIX = "-app"
CNPG_SUPERUSER_SUFFIX = "-superuser"


class SuperuserSecret(StrictModel):
    _config_path = "backup.globals.superuserSecret"
    # "": `<cluster>-superuser`, derived from each database's CNPG Secret `<cluster>-app`.
    name: ObjectName = ""
    username_key: SecretKey = "username"
    password_key: SecretKey = "password"

    def name_for(self, app_secret: str) -> str:
        """The Secret for the cluster whose application Secret is `app_secret`; "" when it cannot be derived."""
        if self.name:
            return self.name
        if app_secret.endswith(CNPG_APP_SUFFIX) and len(app_secret) > len(CNPG_APP_SUFFIX):
            return app_secret.removesuffix(CNPG_APP_SUFFIX) + CNPG_SUPERUSER_SUFFIX
        return ""


class Globals(StrictModel):
    _config_path = "backup.globals"
    enabled: bool = False
    # Off: `--no-role-passwords`, the backup holds no password hashes and restored roles get none.
    include_role_passwords: bool = False
    superuser_secret: SuperuserSecret = Field(default_factory=SuperuserSecret)
