"""The packages of the wheel (everything else is in pyproject.toml).

The repository keeps cdk8s's layout: the generator `app/`, its generated Kubernetes bindings
`imports/` and the `worker/` at the top. Installed, a top-level `app` or `imports` would collide
with a user's cdk8s project, which has an `imports/` (and often an `app`) of its own. So the wheel
ships the generator as `cnpg_pgdump_backup` (from app/) with the bindings inside it,
`cnpg_pgdump_backup.imports` (from imports/; app/bindings.py finds them in either layout), and the
worker as `worker`, the name its image and console script `cnpg-backup-worker` use.

The worker image builds from pyproject.toml and worker/ alone (Dockerfile: no app/, no imports/,
no setup.py), where setuptools' automatic discovery finds just `worker`.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
LIBRARY = "cnpg_pgdump_backup"


def _tree(source: str, name: str) -> list[str]:
    """`name` and its subpackages, for the package directory `source`."""
    return [name, *(f"{name}.{sub}" for sub in find_packages(str(ROOT / source)))]


setup(
    packages=[*_tree("worker", "worker"), *_tree("app", LIBRARY), *_tree("imports", f"{LIBRARY}.imports")],
    package_dir={LIBRARY: "app", f"{LIBRARY}.imports": "imports"},
    package_data={
        "worker": ["py.typed"],
        LIBRARY: ["py.typed"],
        f"{LIBRARY}.imports": ["**/*.tgz", "**/*.json", "**/py.typed"],
    },
)
