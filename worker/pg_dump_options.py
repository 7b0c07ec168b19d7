"""Extra pg_dump options (`backup.extraArgs`, CNPG_BACKUP_DUMP_EXTRA_ARGS, `--pg-dump-arg`): which
are accepted, checked by synth (app/config.py) and again by the worker before pg_dump starts, with
the same one-line messages. Standard library only (the worker image carries it).

An allow list, not a deny list: an option a future pg_dump adds is refused until it is known to keep
what a backup promises. The worker owns the format, compression and output (the stream it hashes,
compresses and uploads, and whose trailer proves the dump complete), the connection (libpq's
environment, never argv: PGDATABASE, PGPASSWORD) and the lock wait (backup.lockWaitTimeoutSeconds).
A backup must restore on its own into an empty database (restore, drills): no partial sections, no
DROP/CREATE DATABASE in it, and data as COPY, which the drills count rows of.

Each option is one list item, long form, its value after `=` (`--exclude-table=audit.*`): pg_dump
would take a separate item not starting with `-` as the database name.
"""

from __future__ import annotations

from collections.abc import Sequence

# option -> takes a value. Object filters (patterns, as pg_dump's -n/-N/-t/-T) and output details
# that leave a complete, restorable dump.
ALLOWED: dict[str, bool] = {
    "--schema": True,
    "--exclude-schema": True,
    "--table": True,
    "--exclude-table": True,
    "--table-and-children": True,
    "--exclude-table-and-children": True,
    "--exclude-table-data": True,
    "--exclude-table-data-and-children": True,
    "--extension": True,
    "--encoding": True,
    "--exclude-extension": True,
    "--no-owner": False,
    "--no-privileges": False,
    "--no-comments": False,
    "--no-publications": False,
    "--no-subscriptions": False,
    "--no-security-labels": False,
    "--no-tablespaces": False,
    "--no-table-access-method": False,
    "--no-toast-compression": False,
    "--no-unlogged-table-data": False,
    "--no-large-objects": False,
    "--large-objects": False,
    "--no-statistics": False,
    "--quote-all-identifiers": False,
    "--enable-row-security": False,
    "--load-via-partition-root": False,
    "--strict-names": False,
    "--serializable-deferrable": False,
}

# Refused with a reason: what the option would break.
_OWNED = "set by the worker"
REFUSED: dict[str, str] = {
    "--format": f"{_OWNED} (backup.format)",
    "--file": f"{_OWNED}: pg_dump writes to the worker's stream, which is hashed, compressed and uploaded",
    "--compress": f"{_OWNED} (backup.compression, backup.compressionLevel)",
    "--jobs": "parallel dumps need the directory format, which cannot be streamed to S3",
    "--dbname": f"{_OWNED} from PGDATABASE (the database of the CronJob); credentials never go on argv",
    "--host": f"{_OWNED} from the CNPG Secret (PGHOST)",
    "--port": f"{_OWNED} from the CNPG Secret (PGPORT)",
    "--username": f"{_OWNED} from the CNPG Secret (PGUSER)",
    "--password": "the password comes from the CNPG Secret (PGPASSWORD); pg_dump must never prompt",
    "--no-password": "already set by the worker",
    "--role": "the dump runs as the CNPG Secret's user; a different role is a different credential",
    "--lock-wait-timeout": f"{_OWNED} (backup.lockWaitTimeoutSeconds)",
    "--snapshot": "the dump takes its own snapshot; an exported one would be gone by the next run",
    "--create": "the dump would create and connect to its own database; the restore picks the target",
    "--clean": "the restore decides what is dropped (restore.force), verified; a dump must not",
    "--if-exists": "only with --clean, which is refused",
    "--data-only": "a backup without the schema cannot be restored into an empty database",
    "--schema-only": "a backup without the data is not a backup",
    "--no-data": "a backup without the data is not a backup",
    "--no-schema": "a backup without the schema cannot be restored into an empty database",
    "--statistics-only": "a backup without the data is not a backup",
    "--section": "a partial dump cannot be restored on its own",
    "--inserts": "data must stay COPY: the restore drills count its rows",
    "--column-inserts": "data must stay COPY: the restore drills count its rows",
    "--rows-per-insert": "data must stay COPY: the restore drills count its rows",
    "--on-conflict-do-nothing": "only with --inserts, which is refused",
    "--disable-triggers": "only for data-only dumps, which are refused",
    "--filter": "reads a file the pod does not have: list the patterns as --table=/--exclude-table=... items",
    "--binary-upgrade": "for pg_upgrade only",
    "--use-set-session-authorization": "the restore runs as the CNPG Secret's user, which may not switch "
    "session authorization (superuser only)",
    "--no-sync": "meaningless for a dump to a stream",
    "--verbose": "pg_dump's progress on stderr would fill the worker's error report",
    "--version": "not a dump",
    "--help": "not a dump",
}

SHORT: dict[str, str] = {
    "-n": "--schema",
    "-N": "--exclude-schema",
    "-t": "--table",
    "-T": "--exclude-table",
    "-e": "--extension",
    "-O": "--no-owner",
    "-x": "--no-privileges",
    "-b": "--large-objects",
    "-B": "--no-large-objects",
    "-F": "--format",
    "-f": "--file",
    "-Z": "--compress",
    "-j": "--jobs",
    "-d": "--dbname",
    "-h": "--host",
    "-p": "--port",
    "-U": "--username",
    "-W": "--password",
    "-w": "--no-password",
    "-C": "--create",
    "-c": "--clean",
    "-a": "--data-only",
    "-s": "--schema-only",
    "-v": "--verbose",
    "-E": "--encoding",
    "-V": "--version",
    "-?": "--help",
}


# What a parallel backup (backup.jobs > 1, worker/parallel.py) cannot take: it chooses each part's
# tables itself (part 0 all but the big tables' data, parts 1.. those tables' data), so a user's
# object filter would leave a table's data in one part and its definition nowhere, and large
# objects or a deferrable snapshot would be taken per part.
NOT_WITH_JOBS = frozenset(
    {
        "--schema",
        "--exclude-schema",
        "--table",
        "--exclude-table",
        "--table-and-children",
        "--exclude-table-and-children",
        "--exclude-table-data",
        "--exclude-table-data-and-children",
        "--extension",
        "--exclude-extension",
        "--large-objects",
        "--no-large-objects",
        "--serializable-deferrable",
        "--strict-names",
    }
)


def parallel_problem(arg: str) -> str | None:
    """Why `arg` (accepted on its own) cannot go with a parallel backup, or None."""
    name = arg.partition("=")[0]
    if name in NOT_WITH_JOBS:
        return f"{name}: not with backup.jobs > 1 (the parts choose their tables themselves); use backup.jobs: 1"
    return None


def problem(arg: str) -> str | None:
    """Why `arg` (one item) is refused, as `<option>: <why>`; None when pg_dump may have it. Only
    the option's name is shown, never a value: a refused --dbname or --password may carry a secret."""
    if not arg.startswith("-"):
        return (
            "not an option: pg_dump would take it as the database name "
            "(write an option and its value as one item, e.g. --exclude-table=audit_log)"
        )
    if arg.startswith("--"):
        name, equals, value = arg.partition("=")
        label = name
    else:  # -Ofoo / -Tfoo: the short option is the first two characters
        short = arg[:2]
        name, equals, value = SHORT.get(short, short), "", arg[2:]
        label = f"{short} ({name})" if name != short else short
        if name in ALLOWED:
            form = f"{name}=VALUE" if ALLOWED[name] else name
            return f"{short}: write the long form, {form}, as one item"
    if name in REFUSED:
        return f"{label}: refused: {REFUSED[name]}"
    if name not in ALLOWED:
        return f"{label}: not an option backup.extraArgs accepts (see docs/configuration.md)"
    if ALLOWED[name] and not value:
        return f"{name}: needs a value in the same item, e.g. {name}=PATTERN"
    if not ALLOWED[name] and equals:
        return f"{name}: takes no value"
    return None


def problems(args: Sequence[str], jobs: int = 1) -> list[tuple[int, str]]:
    """(index, message) for every refused item (with `jobs` > 1, also what a parallel backup cannot take)."""
    found = []
    for i, arg in enumerate(args):
        message = problem(arg) or (parallel_problem(arg) if jobs > 1 else None)
        if message is not None:
            found.append((i, message))
    return found
