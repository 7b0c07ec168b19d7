"""cnpg-pgdump-backup generator: typed configuration -> Kubernetes manifests (cdk8s).

Installed from the wheel this package is `cnpg_pgdump_backup`; in the repository it is `app`.
The library API (app/construct.py)::

    from cnpg_pgdump_backup import CnpgPgdumpBackup, CnpgPgdumpBackupProps, Config
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# cdk8s runs on jsii, which prints a large deprecation banner on Node 20 at import time. These
# must be set before `cdk8s`/the k8s bindings are first imported, so they live here, where every
# entry point (python -m app, main.py, tests, a library user's import) passes first. setdefault: a
# user can still opt in.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

if TYPE_CHECKING:
    from .config import Config
    from .construct import CnpgPgdumpBackup, CnpgPgdumpBackupProps
    from .errors import ConfigError
    from .values import config_from_values, load_values

# Loaded on first use: `python -m app` imports this package before it parses its arguments, and
# the construct imports cdk8s, which starts a Node.js process.
_EXPORTS = {
    "CnpgPgdumpBackup": ".construct",
    "CnpgPgdumpBackupProps": ".construct",
    "Config": ".config",
    "ConfigError": ".errors",
    "config_from_values": ".values",
    "load_values": ".values",
}
__all__ = [
    "CnpgPgdumpBackup",
    "CnpgPgdumpBackupProps",
    "Config",
    "ConfigError",
    "config_from_values",
    "load_values",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
