"""Rules that span several fields (one message per problem, naming the dotted field), and the
warnings printed at synth time for configurations that are allowed but risky."""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker import contract, pg_dump_options

from .identity import DEFAULT_IMAGE
from .naming import cronjob_name, drill_cronjob_name
from .naming import labels as standard_labels
from .spread import has_hash, window_minutes, window_schedule_problem
from .targets import backup_targets, restore_target

if TYPE_CHECKING:  # the model calls these rules from its own validator: no import back at run time
    from .config import Config, Resources
from .validation import parse_quantity


def cross_field_problems(cfg: Config) -> list[str]:
    """Rules that involve more than one field; one message per problem, naming the dotted field."""
    problems: list[str] = []
    active = cfg.backup.enabled or cfg.restore_requested
    why = "when backup.enabled is true or restore.object is set"

    backup = cfg.backup
    problem = contract.compression_problem(backup.format, backup.codec, backup.level)
    if problem:
        field = "compressionLevel" if "level" in problem else "compression"
        problems.append(f"backup.{field}: {problem}")

    if backup.jobs > 1 and backup.format != "custom":
        problems.append(
            f"backup.jobs: {backup.jobs} parallel dumps need backup.format: custom (plain SQL is one stream); "
            "set the format, or jobs: 1"
        )
    if backup.jobs > 1:
        for i, arg in enumerate(backup.extra_args):
            parallel = pg_dump_options.parallel_problem(arg)
            if parallel:
                problems.append(f"backup.extraArgs[{i}]: {parallel}")

    enc = cfg.encryption
    if enc.recipients and enc.identity_secret is None:
        if cfg.verify.enabled:
            problems.append(
                "encryption.identitySecret: required when verify.enabled and encryption.recipients are set "
                "(the drills decrypt the backups; the backup CronJob never gets it)"
            )
        if cfg.restore_requested:
            problems.append(
                "encryption.identitySecret: required to restore (restore.object) when encryption.recipients "
                "is set (the Secret holding the age private key)"
            )
    if len(set(enc.recipients)) != len(enc.recipients):
        problems.append("encryption.recipients: lists the same public key twice")

    if cfg.s3.kms_key_id and cfg.s3.sse != "aws:kms":
        problems.append("s3.kmsKeyId: only used with s3.sse aws:kms (set it, or remove the key id)")
    if cfg.s3.ca_secret is not None and not cfg.s3.endpoint.startswith("https://"):
        problems.append(
            "s3.caSecret: needs an https:// s3.endpoint (the CA verifies that endpoint's TLS certificate; "
            f"s3.endpoint is {cfg.s3.endpoint or 'unset, i.e. AWS, whose certificates public CAs sign'})"
        )

    if active:
        if not cfg.s3.bucket:
            problems.append(f"s3.bucket: required {why} (the bucket the backups go to)")
        if not cfg.databases:
            if not cfg.cnpg.secret_name:
                problems.append(
                    f"cnpg.secretName: required {why} (the Secret CNPG creates for the "
                    "application user, e.g. <cluster>-app)"
                )
            if not cfg.cnpg.database:
                problems.append(f"cnpg.database: required {why} (the database to back up)")
        else:
            for i, entry in enumerate(cfg.databases):
                if not (entry.secret_name or cfg.cnpg.secret_name):
                    problems.append(
                        f"databases[{i}].secretName: required {why} (or set cnpg.secretName as the "
                        "default for all databases)"
                    )

    if cfg.databases:
        if cfg.cnpg.database:
            problems.append("cnpg.database: not used when `databases` is set; move it into a databases entry")
        problems += _database_list_problems(cfg)

    s3 = cfg.s3
    if s3.use_existing_secret and not s3.secret_name:
        problems.append("s3.useExistingSecret: true requires s3.secretName (the existing Secret to use)")
    if (s3.access_key_id is None) != (s3.secret_access_key is None):
        missing = "s3.secretAccessKey" if s3.secret_access_key is None else "s3.accessKeyId"
        problems.append(f"{missing}: required because the other S3 credential is set (give both or neither)")
    if s3.use_existing_secret and s3.has_literal_credentials:
        problems.append(
            "s3.accessKeyId: literal credentials are ignored with s3.useExistingSecret: true; "
            "remove s3.accessKeyId and s3.secretAccessKey"
        )

    problems += _cronjob_name_problems(cfg)
    problems += _window_problems(cfg)
    problems += _restore_problems(cfg)
    problems += _globals_problems(cfg)
    problems += _monitoring_problems(cfg)
    problems += _resource_problems("backup.resources", cfg.backup.resources)
    problems += _resource_problems("restore.resources", cfg.restore.resources)
    problems += _resource_problems("verify.resources", cfg.verify.resources)
    return problems


def _resource_problems(path: str, resources: Resources) -> list[str]:
    problems = []
    for name, request in resources.requests.items():
        limit = resources.limits.get(name)
        if limit is not None and parse_quantity(request) > parse_quantity(limit):  # type: ignore[operator]
            problems.append(
                f"{path}.requests.{name}: {request} is more than limits.{name} ({limit}); Kubernetes "
                "refuses such a pod - raise the limit or lower the request"
            )
    return problems


def _window_problems(cfg: Config) -> list[str]:
    """A window spreads a schedule with one start minute; each schedule it applies to must fit."""
    schedules: list[tuple[str, str, str]] = []  # (field, schedule, window field)
    if cfg.backup.window:
        overridden = [(f"databases[{i}].schedule", e.schedule) for i, e in enumerate(cfg.databases) if e.schedule]
        if not cfg.databases or len(overridden) < len(cfg.databases):
            schedules.append(("backup.schedule", cfg.backup.schedule, "backup.window"))
        # A database's own schedule with H is spread by its H; the window is for the others.
        schedules += [(field, schedule, "backup.window") for field, schedule in overridden if not has_hash(schedule)]
    if cfg.verify.window:
        schedules.append(("verify.schedule", cfg.verify.schedule, "verify.window"))
    problems = []
    for field, schedule, window_field in schedules:
        window = cfg.verify.window if window_field == "verify.window" else cfg.backup.window
        problem = window_schedule_problem(schedule, window_minutes(window))
        if problem:
            problems.append(f"{field}: with {window_field} {window}, {problem}")
    return problems


def _database_list_problems(cfg: Config) -> list[str]:
    problems: list[str] = []
    seen_names: dict[str, int] = {}
    for i, entry in enumerate(cfg.databases):
        if entry.name in seen_names:
            problems.append(
                f"databases[{i}].name: '{entry.name}' is already used by databases[{seen_names[entry.name]}]; "
                "names must be unique"
            )
        seen_names.setdefault(entry.name, i)
    targets = backup_targets(cfg)
    # Two databases sharing (or nesting) a prefix would mix their backups: `latest` and retention
    # work by listing a prefix, so one database could restore or delete the other's dumps.
    for i, j in _overlapping_prefixes([t.prefix for t in targets]):
        a, b = targets[i], targets[j]
        problems.append(
            f"databases[{i}].prefix: '{a.prefix}' overlaps databases[{j}]'s prefix '{b.prefix}'; "
            "each database needs its own S3 folder (retention and `latest` list by prefix)"
        )
    return problems


def _overlapping_prefixes(prefixes: list[str]) -> list[tuple[int, int]]:
    """Every (i, j), j < i, whose prefixes overlap, in that order. Sorted as `prefix/`, a prefix's
    nested ones follow it in one run, so a fleet of 1,000 needs no million comparisons."""
    if any(not p for p in prefixes):  # an empty prefix overlaps everything
        return [(i, j) for i in range(len(prefixes)) for j in range(i) if _prefixes_overlap(prefixes[i], prefixes[j])]
    keys = sorted((p + "/", i) for i, p in enumerate(prefixes))
    pairs = []
    for position, (key, i) in enumerate(keys):
        for other, j in keys[position + 1 :]:
            if not other.startswith(key):
                break
            pairs.append((max(i, j), min(i, j)))
    return sorted(pairs)


def _cronjob_name_problems(cfg: Config) -> list[str]:
    """Names are shortened to fit Kubernetes' limits, so two long, different names can still end up
    as one CronJob name, and the second would silently replace the first on apply. With restore
    drills a database's drill CronJob (`<name>-drill`) may also meet another database's backup
    CronJob (a database named `<name>-drill`), or the backup CronJob of a fullname cut at `-drill`."""
    problems: list[str] = []
    drills = cfg.verify.enabled and cfg.backup.enabled  # what the chart generates
    seen: dict[str, tuple[int, str]] = {}
    for i, target in enumerate(backup_targets(cfg)):
        jobs = [(cronjob_name(cfg, target), "backup")]
        if drills:
            jobs.append((drill_cronjob_name(cfg, target), "restore drill"))
        for job, kind in jobs:
            if job not in seen:
                seen[job] = (i, kind)
                continue
            j, other = seen[job]
            if not cfg.databases:
                problems.append(
                    f"verify.enabled: the restore drill CronJob name '{job}' (shortened to {len(job)} characters) "
                    "is the same as the backup CronJob's; use a shorter global.fullnameOverride or "
                    "global.releaseName"
                )
            elif cfg.databases[j].name == cfg.databases[i].name:
                continue  # a duplicate databases[].name, reported on its own
            elif (kind, other) == ("backup", "backup"):
                problems.append(
                    f"databases[{i}].name: its CronJob name '{job}' (shortened to {len(job)} characters) is the "
                    f"same as databases[{j}]'s; use shorter or more distinct names"
                )
            else:
                problems.append(
                    f"databases[{i}].name: its {kind} CronJob name '{job}' ({len(job)} characters) is the same "
                    f"as databases[{j}]'s {other} CronJob (verify.enabled); use shorter or more distinct names"
                )
    return problems


def _prefixes_overlap(a: str, b: str) -> bool:
    return not a or not b or a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _monitoring_problems(cfg: Config) -> list[str]:
    problems: list[str] = []
    rule = cfg.monitoring.prometheus_rule
    if rule.enabled and not cfg.monitoring.pushgateway.url:
        # Without a push there are no worker metrics: CnpgBackupFailed/Flagged/DrillFailed could never
        # fire and the absent() check of CnpgBackupMissing would fire for ever.
        problems.append(
            "monitoring.prometheusRule.enabled: requires monitoring.pushgateway.url (the alerts read the "
            "metrics the worker pushes there; without them they could never fire, or fire for ever)"
        )
    webhook = cfg.monitoring.webhook
    if webhook.notify_success and webhook.url_secret is None:
        problems.append(
            "monitoring.webhook.notifySuccess: true requires monitoring.webhook.urlSecret (the Secret key "
            "holding the webhook URL to post to)"
        )
    reserved = standard_labels(cfg, "alerts")
    for key in rule.labels:
        if key in reserved:
            problems.append(
                f'monitoring.prometheusRule.labels["{key}"]: set by the generator on every object; remove it'
            )
    return problems


def _restore_problems(cfg: Config) -> list[str]:
    problems: list[str] = []
    names = [e.name for e in cfg.databases]
    if cfg.restore.database:
        if not cfg.databases:
            problems.append("restore.database: only used with `databases`; remove it or add a databases list")
        elif cfg.restore.database not in names:
            problems.append(
                f"restore.database: '{cfg.restore.database}' is not a databases[].name (configured: {', '.join(names)})"
            )
    elif cfg.restore_requested and len(cfg.databases) > 1:
        problems.append(
            "restore.database: required when restore.object is set and several databases are "
            f"configured; name the one to restore into (one of: {', '.join(names)})"
        )
    return problems


def _globals_problems(cfg: Config) -> list[str]:
    """The superuser Secret roles are dumped and restored with: given, or derived from `<cluster>-app`."""
    secret = cfg.backup.globals.superuser_secret
    wanted = []
    if cfg.backup.enabled and cfg.backup.globals.enabled:
        wanted += [(t, "backup.globals.enabled is true") for t in backup_targets(cfg)]
    if cfg.restore_requested and cfg.restore.globals:
        wanted.append((restore_target(cfg), "restore.globals is true"))
    for target, why in wanted:
        if not secret.name_for(target.secret_name):
            return [
                f"backup.globals.superuserSecret.name: required when {why} and the CNPG Secret "
                f"'{target.secret_name}' is not named <cluster>-app (name CNPG's <cluster>-superuser Secret; "
                "the cluster needs enableSuperuserAccess: true)"
            ]
    return []


def config_warnings(cfg: Config) -> list[str]:
    """Things that are allowed but deserve a loud note at synth time. Never include secret values."""
    warnings: list[str] = []
    if cfg.s3.has_literal_credentials:
        warnings.append(
            "s3.accessKeyId/s3.secretAccessKey are literal credentials: they end up in your values "
            "file (and git) and in plain text in the generated Secret under dist/. Prefer an existing "
            "Secret (s3.useExistingSecret: true + s3.secretName) or IRSA "
            "(serviceAccount.annotations eks.amazonaws.com/role-arn)."
        )
    sc = cfg.security_context
    if not sc.run_as_non_root or sc.allow_privilege_escalation or sc.run_as_user == 0:
        warnings.append(
            "securityContext: runAsNonRoot false, runAsUser 0 or allowPrivilegeEscalation true - the "
            "pods no longer meet the PodSecurity 'restricted' profile and are refused by namespaces "
            "that enforce it."
        )
    image_name = cfg.backup.image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    if image_name == "postgres":
        warnings.append(
            f"backup.image '{cfg.backup.image}' is a plain PostgreSQL image: the pods run "
            "`cnpg-backup-worker`, which it does not contain. The chart's default postgres:16 is "
            f"replaced by the worker image ({DEFAULT_IMAGE}); remove backup.image or point it at "
            "your build of the worker."
        )
    if cfg.cnpg.ssl_root_cert_secret is not None and cfg.cnpg.ssl_mode not in ("verify-ca", "verify-full"):
        warnings.append(
            f"cnpg.sslRootCertSecret is set but cnpg.sslMode is '{cfg.cnpg.ssl_mode}': the server "
            "certificate is only checked against the CA with verify-ca or verify-full."
        )
    if cfg.monitoring.prometheus_rule.enabled and not cfg.backup.enabled:
        warnings.append(
            "monitoring.prometheusRule.enabled is true but backup.enabled is false: no PrometheusRule is "
            "generated (there are no scheduled backups to alert on)."
        )
    if cfg.verify.enabled and not cfg.backup.enabled:
        warnings.append(
            "verify.enabled is true but backup.enabled is false: no restore drill CronJob is generated "
            "(drills run per backed-up database)."
        )
    if cfg.backup.enabled is False and not cfg.restore_requested:
        warnings.append("backup.enabled is false and no restore.object is set: no CronJob or Job is generated.")
    return warnings
