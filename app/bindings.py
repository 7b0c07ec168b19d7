"""The generated Kubernetes bindings (imports/k8s, made by imports/regenerate.sh), found where this
package was loaded from.

In the repository they are the top-level package `imports`, the layout `cdk8s synth` and
`cdk8s import` expect. The wheel ships them inside the library instead, as
`cnpg_pgdump_backup.imports` (pyproject.toml): every cdk8s project has an `imports` package of its
own, and a top-level one of ours would shadow it, or be shadowed by it. A relative import cannot
reach them in both layouts (`app` is a top-level package in the repository), so the module is
looked up by the name of the package this file belongs to.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # What a type checker of an installed copy must see (the top-level `imports` would be the
    # user's). In the repository `app.imports` does not exist and mypy types k8s as Any, as it
    # always did for the generated bindings (pyproject.toml).
    from .imports import k8s
else:
    _package = __name__.rpartition(".")[0]  # "app" (repository) or "cnpg_pgdump_backup" (wheel)
    k8s = importlib.import_module("imports.k8s" if _package == "app" else f"{_package}.imports.k8s")

__all__ = ["k8s"]
