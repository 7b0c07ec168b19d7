"""Command line: `python -m app synth ...` / `job list|status|check|restore` / `restore-job` / `schema` /
`uninstall` / `iam-policy` / `lifecycle`
(also installed as the `cnpg-pgdump-backup` console script).

Exit codes: 0 success, 2 configuration/usage error (one line per problem on stderr, never a
traceback), 1 could not write the output (or `uninstall` could not read or delete the release).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import yaml

from .config import Config
from .errors import ConfigError
from .oneoff import (
    default_max_age,
    logs_command,
    operation_target,
    operation_yaml,
    restore_yaml,
    synth_summary,
    warn_stderr,
)
from .values import config_from_values, merge_all

PROG = "cnpg-pgdump-backup"
EXIT_CONFIG = 2
EXIT_IO = 1


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line like every other error of this tool."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)


def _add_values_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "release",
        nargs="?",
        metavar="RELEASE",
        help="release name, as in `helm template RELEASE` (sets global.releaseName; default: the values' or "
        "cnpg-backup)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="namespace written into every object's metadata (sets global.namespace; default: none, "
        "`kubectl apply -n` decides)",
    )
    parser.add_argument(
        "-f",
        "--values",
        action="append",
        default=[],
        metavar="FILE",
        help="values file shaped like the Helm chart's values.yaml; repeat to merge left to right",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a value, Helm syntax (a.b=c, list[0].x=y, comma-separated pairs; true/false/"
        "null and integers are typed)",
    )
    parser.add_argument(
        "--set-string",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="like --set, but the value always stays a string",
    )
    parser.add_argument(
        "--set-json",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help='override a value with JSON (a.b={"x":1},c=[1,2]); applied before --set, as in Helm',
    )
    parser.add_argument(
        "--set-file",
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="set a value to a file's content, verbatim (e.g. a credential kept off the command line); "
        "applied last, as in Helm",
    )


RESTORE_DESCRIPTION = (
    "Print ONE restore Job as YAML, named after the current UTC time so every invocation is a new, "
    "separate run; the configuration files are not changed. The Job uses the ServiceAccount and "
    "Secrets of the normal manifests, so `kubectl apply -f dist/` must have been run in the namespace "
    "first. Needs no Node.js. Example: python -m app job restore -f values.yaml --object "
    "appdb_2024-01-21_02-00-00.sql.gz | kubectl create -n <namespace> -f -"
)


def _add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", metavar="NAME", help="databases[].name (required with several databases)")


def _add_restore_options(restore: argparse.ArgumentParser) -> None:
    _add_values_options(restore)
    restore.add_argument(
        "--object",
        required=True,
        metavar="KEY",
        help="backup to restore: a file name relative to the database's prefix, a full key, or 'latest'",
    )
    restore.add_argument("--force", action="store_true", help="restore even if the database is not empty")
    restore.add_argument(
        "--backup-before-restore", action="store_true", help="take a backup of the current database first"
    )
    restore.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept a backup without manifest (one made by the Helm chart); its gzip stream is still checked",
    )
    restore.add_argument(
        "--database", metavar="NAME", help="databases[].name to restore (required with several databases)"
    )
    restore.add_argument("--target-database", metavar="DB", help="restore into this database instead")
    restore.add_argument(
        "--jobs", type=int, metavar="N", help="parallel pg_restore jobs (custom format, empty target; restore.jobs)"
    )
    restore.add_argument(
        "--create",
        action="store_true",
        help="create --target-database if it does not exist (restore.createDatabase; the role needs CREATEDB)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Generate Kubernetes manifests for pg_dump backups of CloudNativePG databases."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    synth = commands.add_parser(
        "synth",
        help="write the manifests (ServiceAccount, Secret, CronJobs, restore Job) to a directory",
        description="Write the manifests for a configuration. Old *.k8s.yaml files in the output "
        "directory are removed first. Apply with (prunes what the config no longer produces): "
        "KUBECTL_APPLYSET=true kubectl apply -n <namespace> --prune --applyset=cnpg-pgdump-backup.<release> -f dist/",
    )
    _add_values_options(synth)
    synth.add_argument("-o", "--output", default="dist", metavar="DIR", help="output directory (default: dist)")

    restore = commands.add_parser(
        "restore-job",
        help="print a one-off restore Job to stdout (pipe it to kubectl create -f -); same as `job restore`",
        description=RESTORE_DESCRIPTION,
    )
    _add_restore_options(restore)

    job = commands.add_parser(
        "job",
        help="print a one-off Job (list, status, check, restore) to stdout; needs no Node.js",
        description="Print ONE Job as YAML, to pipe into `kubectl create -n <namespace> -f -`. It runs the "
        "worker image with the ServiceAccount, security context and S3 settings/Secret of the backup "
        "CronJob (`kubectl apply -f dist/` first), named after the current UTC time so every invocation "
        "is a new run. list/status/check only read the bucket (they work while the database is down) and "
        "are deleted a day after they finish. Needs Python and this package only, not Node.js.",
    )
    operations = job.add_subparsers(dest="operation", required=True, metavar="OPERATION", parser_class=_Parser)
    for name, summary in (
        ("list", "the database's backups, newest first, with their status"),
        ("status", "the last backup run, the newest good backup and the last drill"),
    ):
        sp = operations.add_parser(name, help=summary, description=f"A Job printing {summary}.")
        _add_values_options(sp)
        _add_database_option(sp)
        sp.add_argument("--json", action="store_true", help="machine-readable output")
    check = operations.add_parser(
        "check",
        help="fail (Job status Failed) unless the newest backup is recent, whole and unflagged",
        description="A Job that fails with one line unless the newest backup is recent, whole and "
        "unflagged, and the last run and drill succeeded.",
    )
    _add_values_options(check)
    _add_database_option(check)
    check.add_argument(
        "--max-age",
        metavar="DURATION",
        help="e.g. 26h (default: when the CnpgBackupMissing alert fires: the schedule's longest gap "
        "times monitoring.prometheusRule.slack)",
    )
    check.add_argument("--min-bytes", type=int, metavar="N", help="a smaller newest backup is a failure")
    _add_restore_options(
        operations.add_parser("restore", help="a restore Job, as `restore-job`", description=RESTORE_DESCRIPTION)
    )

    remove = commands.add_parser(
        "uninstall",
        help="delete what `kubectl apply --prune --applyset` installed for a release (like helm uninstall)",
        description="Delete the objects a release's ApplySet records (README: Install, upgrade, uninstall), "
        "then the ApplySet's Secret; nothing else in the namespace. Prints each kubectl command it runs. "
        "One-off restore Jobs (restore-job) are not part of the release and stay.",
    )
    remove.add_argument("release", metavar="RELEASE", help="the release name given to synth")
    remove.add_argument("-n", "--namespace", required=True, metavar="NS", help="the namespace it was applied to")
    remove.add_argument("--dry-run", action="store_true", help="only print the kubectl commands")
    remove.add_argument("--kubectl", default="kubectl", metavar="PATH", help="kubectl binary (default: kubectl)")

    commands.add_parser(
        "schema",
        help="print the JSON schema of the configuration (values files) for editors and CI",
        description="Print the JSON schema of the configuration, as the values YAML/JSON is shaped "
        "(camelCase keys). Point your editor at it, e.g. `# yaml-language-server: $schema=values.schema.json`. "
        "The cross-field rules (a required bucket, codec and format combinations, ...) are checked by synth.",
    )
    _add_aws_commands(commands)
    return parser


def _add_aws_commands(commands: Any) -> None:
    from .aws_lifecycle import DEFAULT_ABORT_INCOMPLETE_UPLOAD_DAYS
    from .aws_policy import ROLES

    iam = commands.add_parser(
        "iam-policy",
        help="print the least-privilege IAM policy (JSON) for the bucket and the databases' prefixes",
        description="Print an IAM policy document granting exactly what the worker does on the configured "
        "bucket, under each database's prefix: --role backup (backups, drills, retention, the generated "
        "restore Job) or --role restore (read the backups, write only the restore's own records). Notes go "
        "to stderr. Example: python -m app iam-policy -f values.yaml > backup-policy.json",
    )
    _add_values_options(iam)
    iam.add_argument("--role", choices=ROLES, default="backup", help="which policy (default: backup)")
    iam.add_argument("--database", metavar="NAME", help="only this databases[].name's objects (default: all databases)")

    lifecycle = commands.add_parser(
        "lifecycle",
        help="print S3 lifecycle rules (JSON): expiry after backup.retentionDays, abort of stale uploads",
        description="Print the bucket lifecycle configuration for the databases' backups, for "
        "`aws s3api put-bucket-lifecycle-configuration --bucket <bucket> --lifecycle-configuration "
        "file://rules.json`: per database, Expiration after backup.retentionDays (not with backup.retention "
        "counts) and AbortIncompleteMultipartUpload. Notes go to stderr.",
    )
    _add_values_options(lifecycle)
    lifecycle.add_argument(
        "--abort-incomplete-days",
        type=int,
        default=DEFAULT_ABORT_INCOMPLETE_UPLOAD_DAYS,
        metavar="N",
        help=f"abort multipart uploads unfinished after N days (default: {DEFAULT_ABORT_INCOMPLETE_UPLOAD_DAYS})",
    )
    lifecycle.add_argument("--database", metavar="NAME", help="only this databases[].name's rule (default: all)")


def _note_stderr(notes: list[str]) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def _iam_policy(args: argparse.Namespace) -> int:
    from . import aws_policy

    cfg = config_from_values(_values(args))
    document = aws_policy.policy(cfg, args.role, args.database)
    sys.stdout.write(aws_policy.render(document))
    _note_stderr(aws_policy.notes(cfg, args.role, document))
    return 0


def _lifecycle(args: argparse.Namespace) -> int:
    import json

    from . import aws_lifecycle

    cfg = config_from_values(_values(args))
    document = aws_lifecycle.lifecycle(cfg, args.abort_incomplete_days, args.database)
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    _note_stderr(aws_lifecycle.notes(cfg))
    return 0


def _fail(error: ConfigError) -> int:
    print(str(error), file=sys.stderr)
    return EXIT_CONFIG


def _values(args: argparse.Namespace) -> dict[str, Any]:
    values = merge_all(args.values, args.set, args.set_string, set_jsons=args.set_json, set_files=args.set_file)
    # The command line wins over the values files, as --set does.
    if args.release is not None or args.namespace is not None:
        release_and_namespace = dict(values.get("global") or {})
        if args.release is not None:
            release_and_namespace["releaseName"] = args.release
        if args.namespace is not None:
            release_and_namespace["namespace"] = args.namespace
        values["global"] = release_and_namespace
    return values


def _synth(args: argparse.Namespace) -> int:
    cfg = config_from_values(_values(args))
    if shutil.which("node") is None:  # else jsii fails below with a long traceback
        print(
            "error: synth needs Node.js >= 20 (cdk8s runs on it) and `node` is not on PATH: install it, "
            "or print a single Job without it: python -m app job list|status|check|restore --help",
            file=sys.stderr,
        )
        return EXIT_IO
    from .chart import write  # imports cdk8s (starts node): only once the config is valid

    try:
        written = write(cfg, args.output)
    except OSError as exc:
        print(f"error: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_IO
    for path in written.files:
        print(path)
    from .applyset import apply_command

    print(
        f"apply (prunes what the config no longer produces): "
        f"{apply_command(cfg.global_.release_name, cfg.global_.namespace, args.output)}",
        file=sys.stderr,
    )
    for line in synth_summary(cfg, written.workloads):
        print(line)
    return 0


def _uninstall(args: argparse.Namespace) -> int:
    from .applyset import UninstallError, uninstall
    from .validation import namespace_problem, release_name_problem

    problems = [
        f"{what}: {problem}"
        for what, problem in (
            ("RELEASE", release_name_problem(args.release)),
            (
                "--namespace",
                namespace_problem(args.namespace)
                if args.namespace
                else "required (the namespace the release was applied to)",
            ),
        )
        if problem
    ]
    if problems:
        raise ConfigError(problems)
    try:
        return uninstall(args.release, args.namespace, kubectl=args.kubectl, dry_run=args.dry_run)
    except UninstallError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_IO


def utc_now() -> datetime:
    """The clock of `restore-job` names (a function so tests can fake it)."""
    return datetime.now(UTC)


def _restore_job(args: argparse.Namespace) -> int:
    if not args.object.strip():
        raise ConfigError.one("--object: required: a backup file name, a full key, or 'latest'")
    values = _values(args)
    restore = dict(values.get("restore") or {})
    # The one-off does exactly what its flags say; a force/target left in the values file for a
    # declarative restore must not silently apply here.
    restore.update(
        enabled=True,
        object=args.object,
        force=args.force,
        backupBeforeRestore=args.backup_before_restore,
        targetDatabase=args.target_database or "",
        allowUnverified=args.allow_unverified,
        createDatabase=args.create,
    )
    if args.database is not None:
        restore["database"] = args.database
    if args.jobs is not None:
        restore["jobs"] = args.jobs
    values["restore"] = restore
    cfg = config_from_values(values)

    cfg = config_from_values(values)
    text = restore_yaml(cfg, utc_now(), warn_stderr)
    sys.stdout.write(text)
    _follow_hint(cfg, text)
    return 0


def _follow_hint(cfg: Config, text: str) -> None:
    # stderr: stdout is the manifest, piped to kubectl
    name = yaml.safe_load(text)["metadata"]["name"]
    print(f"# job {name}: follow it with: {logs_command(cfg, name)}", file=sys.stderr)


def _operation_job(args: argparse.Namespace) -> int:
    if args.operation == "restore":
        return _restore_job(args)
    cfg = config_from_values(_values(args))
    target = operation_target(cfg, args.database)
    worker_args: list[str] = []
    if args.operation == "check":
        worker_args += ["--max-age", args.max_age or default_max_age(cfg, target)]
        if args.min_bytes is not None:
            worker_args += ["--min-bytes", str(args.min_bytes)]
    elif args.json:
        worker_args.append("--json")
    text = operation_yaml(cfg, args.operation, worker_args, utc_now(), target)
    sys.stdout.write(text)
    _follow_hint(cfg, text)
    return 0


def _schema() -> int:
    import json

    from .config import Config

    schema = Config.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cnpg-pgdump-backup values"
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "synth":
            return _synth(args)
        if args.command == "schema":
            return _schema()
        if args.command == "uninstall":
            return _uninstall(args)
        if args.command == "iam-policy":
            return _iam_policy(args)
        if args.command == "lifecycle":
            return _lifecycle(args)
        if args.command == "job":
            return _operation_job(args)
        return _restore_job(args)
    except ConfigError as error:
        return _fail(error)


if __name__ == "__main__":
    raise SystemExit(main())
