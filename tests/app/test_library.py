"""The generator as a library: the construct composes with a user's own chart, and the wheel installs
next to a user's cdk8s project without either shadowing the other.

The in-process tests place CnpgPgdumpBackup in a chart with a namespace. The wheel tests build the
sdist and wheel as the release does, from a copy of this repository, install the wheel into a fresh
virtualenv (its dependencies come from the package index) and run examples/library/main.py in a
user project that has its own `app` package and its own `imports/`: the k8s binding as
`cdk8s import k8s` generates it (the same Kubernetes classes as ours, in a jsii assembly named
`k8s`), or a hand-written one. mypy checks a typed user file against the installed package
(py.typed). The worker image's build context (pyproject.toml and worker/ only) still builds.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import cdk8s
import pytest
import yaml

from app import CnpgPgdumpBackup, CnpgPgdumpBackupProps, Config
from app.values import config_from_values
from testsupport.app_helpers import JSII_ENV, values

REPO = Path(__file__).resolve().parents[2]
LIBRARY = "cnpg_pgdump_backup"
# Everything the rules need: pushed metrics, the PrometheusRule, drills, a declarative restore.
FULL = {
    "monitoring": {"pushgateway": {"url": "http://pushgateway:9091"}, "prometheusRule": {"enabled": True}},
    "verify": {"enabled": True},
    "restore": {"object": "latest"},
    "s3": {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "not-a-real-key"},
}


def _documents(chart: cdk8s.Chart) -> list[dict[str, Any]]:
    return [doc for doc in cdk8s.Testing.synth(chart) if doc]


def test_objects_take_the_namespace_of_the_chart_they_are_placed_in() -> None:
    cfg = config_from_values(values(FULL))
    app = cdk8s.Testing.app()
    chart = cdk8s.Chart(app, "shop", namespace="shop")
    cdk8s.ApiObject(chart, "mine", api_version="v1", kind="ConfigMap", metadata={"name": "mine"})
    backup = CnpgPgdumpBackup(chart, "backup", props=CnpgPgdumpBackupProps(config=cfg))
    docs = _documents(chart)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == ["ConfigMap", "CronJob", "CronJob", "Job", "PrometheusRule", "Secret", "ServiceAccount"]
    assert [doc["metadata"].get("namespace") for doc in docs] == ["shop"] * len(docs)
    # without monitoring.prometheusRule.namespace the rules match the CronJobs in the chart's namespace
    rule = next(doc for doc in docs if doc["kind"] == "PrometheusRule")
    exprs = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert any('kube_cronjob_status_last_successful_time{namespace="shop",' in e for e in exprs), exprs
    # the synth warnings are the caller's to print
    assert any("literal credentials" in w for w in backup.warnings), backup.warnings
    assert not any("global.namespace" in w for w in backup.warnings)
    other = cdk8s.Chart(app, "other", namespace="other")
    moved = CnpgPgdumpBackup(
        other,
        "backup",
        props=CnpgPgdumpBackupProps(
            config=cfg.model_copy(update={"global_": cfg.global_.model_copy(update={"namespace": "shop"})})
        ),
    )
    assert (
        "global.namespace 'shop' is not used: the objects take the namespace of the chart they are placed in (other)"
        in moved.warnings
    )


def test_object_names_do_not_depend_on_the_chart_or_construct_ids() -> None:
    """A user's chart keeps cdk8s's resource-name hashes on: every object of ours is named by the
    config, exactly as `python -m app synth` names it."""
    from app.chart import BackupChart

    cfg = config_from_values(values(FULL))
    plain = cdk8s.Chart(cdk8s.Testing.app(), "plain")
    CnpgPgdumpBackup(plain, "backup", props=CnpgPgdumpBackupProps(config=cfg))
    hashed = cdk8s.Chart(cdk8s.Testing.app(), "other-chart", namespace="x")
    CnpgPgdumpBackup(hashed, "some-other-id", props=CnpgPgdumpBackupProps(config=cfg))

    def names(chart: cdk8s.Chart) -> list[str]:
        return [doc["metadata"]["name"] for doc in _documents(chart)]

    assert names(plain) == names(hashed) == names(BackupChart(cdk8s.Testing.app(), "cnpg-pgdump-backup", cfg=cfg))


def test_app_imports_itself_relatively() -> None:
    """Installed, app/ is `cnpg_pgdump_backup` and imports/ is inside it: an absolute `app.` or
    `imports` import would fail there (or load a user's package of that name). The wheel tests
    below only reach the modules they import; this covers every module."""
    absolute = re.compile(r"^[ \t]*(from|import)[ \t]+(app|imports)\b[^\n]*", re.MULTILINE)
    found = [
        f"{path.relative_to(REPO)}: {m.group(0).strip()}"
        for path in sorted((REPO / "app").rglob("*.py"))
        for m in absolute.finditer(path.read_text())
    ]
    assert found == [], "use relative imports inside app/ (and app/bindings.py for k8s): " + "; ".join(found)


def test_synth_without_a_namespace_as_before() -> None:
    from app.chart import BackupChart

    chart = BackupChart(cdk8s.Testing.app(), "cnpg-pgdump-backup", cfg=config_from_values(values(FULL)))
    assert [doc["metadata"].get("namespace") for doc in _documents(chart)] == [None] * 6


# ------------------------------------------------------------------------------------------------
# The wheel, installed


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _source_copy(dest: Path, *names: str) -> Path:
    """The files a wheel is built from, copied: building in the worktree leaves build/ behind."""
    dest.mkdir(parents=True)
    for name in names:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(src, dest / name)
    return dest


def _build_wheel(source: Path, out: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)], cwd=source)
    (wheel,) = out.glob("*.whl")
    return wheel


def _top_level(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return {name.split("/")[0] for name in zf.namelist() if not name.split("/")[0].endswith(".dist-info")}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv, holding `build` at first."""
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(root)], cwd=root)
    _run([str(root / "bin/pip"), "install", "-q", "build"], cwd=root)
    return root


@pytest.fixture(scope="module")
def wheel(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel as the release workflow builds it (`python -m build --sdist --wheel`: the wheel is
    built from the sdist, so this also proves the sdist complete)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = _source_copy(tmp / "src", "pyproject.toml", "setup.py", "README.md", "app", "imports", "worker")
    _run([str(venv / "bin/python"), "-m", "build", "--sdist", "--wheel", "--outdir", str(tmp / "out")], cwd=source)
    (built,) = (tmp / "out").glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(venv: Path, wheel: Path) -> Path:
    """The fresh virtualenv with the wheel and its `synth` extra, and mypy (the gates' version)."""
    mypy = next(d for d in _pyproject_test_deps() if d.startswith("mypy=="))
    _run([str(venv / "bin/pip"), "install", "-q", f"{wheel}[synth]", mypy], cwd=venv)
    return venv


def _pyproject_test_deps() -> list[str]:
    import tomllib

    deps: list[str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    return deps


def _user_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **JSII_ENV}


EXAMPLE = REPO / "examples/library"
# Run in the user's project next to the example: which `app`, `imports` and library it gets.
WHICH = """\
import app, imports, cnpg_pgdump_backup, cnpg_pgdump_backup.bindings
print(app.OWNER, imports.OWNER, cnpg_pgdump_backup.bindings.k8s.__name__)
"""

TYPED_OK = """\
from cdk8s import App, Chart

from cnpg_pgdump_backup import CnpgPgdumpBackup, CnpgPgdumpBackupProps, Config
from cnpg_pgdump_backup.config import Backup

config = Config(backup=Backup(retention_days=7))
days: int = config.backup.retention_days
backup = CnpgPgdumpBackup(Chart(App(), "x"), "backup", props=CnpgPgdumpBackupProps(config=config))
warnings: list[str] = backup.warnings
"""

TYPED_WRONG = """\
from cnpg_pgdump_backup import Config

days: str = Config().backup.retention_days
"""


# A user's bindings written by hand: what the project uses, nothing of what ours need, so code of
# ours that picked up the top-level `imports` would fail.
HANDWRITTEN_K8S = """\
from typing import Any

from cdk8s import ApiObject, JsonPatch
from constructs import Construct


class KubeConfigMap(ApiObject):
    def __init__(
        self, scope: Construct, id: str, *, data: dict[str, str] | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        super().__init__(scope, id, api_version="v1", kind="ConfigMap", metadata=metadata)
        if data:
            self.add_json_patch(JsonPatch.add("/data", data))
"""

# The other order: our binding loaded after the user's, then the user's own factory objects.
WEB = """\
from cdk8s import App, Chart
from imports import k8s

import cnpg_pgdump_backup.bindings

chart = Chart(App(), "web")
port = k8s.ServicePort(port=80, target_port=k8s.IntOrString.from_number(8080))
k8s.KubeService(chart, "web", spec=k8s.ServiceSpec(ports=[port]))
print(chart.to_json()[0]["spec"]["ports"])
"""

OUR_ASSEMBLY = "cnpg_pgdump_backup_k8s"


def _as_cdk8s_import_writes_it(ours: Path, dest: Path) -> None:
    """Our generated binding with its jsii assembly named `k8s` again, as a plain
    `cdk8s import k8s@1.33.0` writes it (imports/regenerate.sh says why ours is renamed)."""

    def plain(text: bytes) -> bytes:
        for name in (OUR_ASSEMBLY, "cnpg_pgdump_backup-k8s", "cnpg_pgdump_backup.k8s"):
            text = text.replace(name.encode(), b"k8s")
        return text

    (dest / "_jsii").mkdir(parents=True)
    for name in ("__init__.py", "_jsii/__init__.py", "py.typed"):
        (dest / name).write_bytes(plain((ours / name).read_bytes()))
    with (
        tarfile.open(ours / f"_jsii/{OUR_ASSEMBLY}@0.0.0.jsii.tgz") as src,
        tarfile.open(dest / "_jsii/k8s@0.0.0.jsii.tgz", "w:gz") as out,
    ):
        for member in src.getmembers():
            data = src.extractfile(member)
            assert data is not None, member.name
            content = plain(data.read())
            info = tarfile.TarInfo(plain(member.name.encode()).decode())
            info.size, info.mode = len(content), member.mode
            out.addfile(info, io.BytesIO(content))
    assert OUR_ASSEMBLY not in (dest / "_jsii/__init__.py").read_text()


@pytest.fixture(scope="module", params=["generated", "handwritten"])
def user_project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cdk8s project of a user with its own `app` package and its own `imports`: either the
    generated k8s binding as `cdk8s import k8s` writes it (jsii assembly `k8s`), or a small
    hand-written one."""
    root = tmp_path_factory.mktemp(f"user-project-{request.param}")
    if request.param == "generated":
        _as_cdk8s_import_writes_it(REPO / "imports/k8s", root / "imports/k8s")
        (root / "web.py").write_text(WEB)
    else:
        (root / "imports").mkdir()
        (root / "imports/k8s.py").write_text(HANDWRITTEN_K8S)
    (root / "imports/__init__.py").write_text('OWNER = "user"\n')
    (root / "app").mkdir()
    (root / "app/__init__.py").write_text('OWNER = "user"\nNAME = "shop"\n')
    shutil.copy(EXAMPLE / "main.py", root / "main.py")
    shutil.copy(EXAMPLE / "cdk8s.yaml", root / "cdk8s.yaml")
    (root / "which.py").write_text(WHICH)
    (root / "typed_ok.py").write_text(TYPED_OK)
    (root / "typed_wrong.py").write_text(TYPED_WRONG)
    return root


@pytest.mark.slow
def test_wheel_ships_the_generator_under_one_name(wheel: Path) -> None:
    assert _top_level(wheel) == {LIBRARY, "worker"}
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert {
        f"{LIBRARY}/py.typed",
        "worker/py.typed",
        f"{LIBRARY}/imports/k8s/_jsii/{OUR_ASSEMBLY}@0.0.0.jsii.tgz",
    } <= names
    assert f"cnpg-pgdump-backup = {LIBRARY}.cli:main" in entry_points
    assert "cnpg-backup-worker = worker.cli:main" in entry_points


@pytest.mark.slow
def test_worker_image_build_context_holds_the_worker_only(tmp_path: Path) -> None:
    """The Dockerfile copies pyproject.toml and worker/ (no setup.py, app/ or imports/) and runs
    `pip install .`: that must still build, and hold the worker alone."""
    source = _source_copy(tmp_path / "src", "pyproject.toml", "worker")
    (source / "README.md").touch()  # as the Dockerfile does
    assert _top_level(_build_wheel(source, tmp_path / "out")) == {"worker"}


@pytest.mark.slow
def test_example_user_project_composes_our_construct_with_its_own_resources(
    installed: Path, user_project: Path
) -> None:
    """examples/library/main.py, run in a user project with its own `app` and `imports`."""
    python = str(installed / "bin/python")
    which = _run([python, "which.py"], cwd=user_project, env=_user_env())
    assert which.split() == ["user", "user", f"{LIBRARY}.imports.k8s"]
    _run([python, "main.py"], cwd=user_project, env={**_user_env(), "CDK8S_OUTDIR": "out"})
    if (user_project / "web.py").exists():
        # with one assembly name for both bindings: "type of argument target_port must be one of
        # (imports.k8s.IntOrString, NoneType); got cnpg_pgdump_backup.imports.k8s.IntOrString"
        web = _run([python, "web.py"], cwd=user_project, env=_user_env())
        assert web.strip() == "[{'port': 80, 'targetPort': 8080}]"
    out = user_project / "out"
    assert sorted(p.name for p in out.iterdir()) == ["cluster.k8s.yaml", "shop.k8s.yaml"]
    shop = [d for d in yaml.safe_load_all((out / "shop.k8s.yaml").read_text()) if d]
    assert [d["kind"] for d in shop] == ["ConfigMap", "ServiceAccount", "CronJob"]
    assert [d["metadata"]["namespace"] for d in shop] == ["shop"] * 3
    assert shop[0]["data"] == {"greeting": "hello"}
    service_account, cronjob = shop[1], shop[2]
    assert cronjob["metadata"]["name"] == "cnpg-backup-cnpg-pgdump-backup"
    assert cronjob["spec"]["schedule"] == "30 1 * * *"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == service_account["metadata"]["name"]
    cluster = [d for d in yaml.safe_load_all((out / "cluster.k8s.yaml").read_text()) if d]
    assert [(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in cluster] == [
        ("ConfigMap", "flags", None)
    ]


@pytest.mark.slow
def test_installed_console_script_writes_the_checked_in_dist(installed: Path, tmp_path: Path) -> None:
    """`cnpg-pgdump-backup` of the installed wheel, run away from the repository, writes what
    `python -m app synth -f examples/values.yaml -o dist` wrote into dist/."""
    _run(
        [str(installed / "bin/cnpg-pgdump-backup"), "synth", "-f", str(REPO / "examples/values.yaml"), "-o", "dist"],
        cwd=tmp_path,
        env=_user_env(),
    )
    written = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert written == sorted(p.name for p in (REPO / "dist").glob("*.k8s.yaml"))
    for name in written:
        assert (tmp_path / "dist" / name).read_text() == (REPO / "dist" / name).read_text(), name


@pytest.mark.slow
def test_config_and_construct_are_typed_for_a_users_mypy(installed: Path, user_project: Path) -> None:
    mypy = [str(installed / "bin/mypy"), "--strict", "--no-incremental"]
    _run([*mypy, "typed_ok.py"], cwd=user_project, env=_user_env())
    # not Any: a wrong type is an error
    proc = subprocess.run(
        [*mypy, "typed_wrong.py"], cwd=user_project, env=_user_env(), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'Incompatible types in assignment (expression has type "int", variable has type "str")' in proc.stdout
    assert proc.stdout.count("error:") == 1, proc.stdout


def test_public_names() -> None:
    import app

    assert app.Config is Config
    for name in app.__all__:
        assert getattr(app, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        app.Nope  # noqa: B018
