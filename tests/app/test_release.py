"""The release pipeline's static contract (fast, no servers):

- renovate.json's regex manager sees every Debian package pin of the Dockerfile (an `ARG <NAME>_DEB=`
  line), so a pin added without its `# renovate:` comment fails here instead of silently never
  being updated;
- .github/workflows/release.yml builds linux/amd64 + linux/arm64, signs keyless with cosign, takes the
  image name from app/identity.py and refuses a tag that differs from pyproject.toml's version (its
  check-version script is run here, against the real files and against altered copies).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.identity import APP_VERSION, IMAGE_REPOSITORY

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
RENOVATE = ROOT / "renovate.json"
DOCKERFILE = ROOT / "Dockerfile"

# A Debian package pin: `ARG PYTHON_DEB=3.13.5-2+deb13u5` (a bare `ARG PYTHON_DEB`, which only
# re-declares a global ARG inside a stage, carries no version and needs no comment).
DEB_PIN = re.compile(r"^[ \t]*ARG[ \t]+(?P<name>[A-Za-z0-9_]+_DEB)=(?P<value>\S+)", re.MULTILINE)
# The comment shape the Dockerfile carries directly above each pin.
PINNED_DOCKERFILE = """\
FROM debian:trixie-slim AS base
# renovate: datasource=repology depName=debian_13/python3.13 versioning=deb
ARG PYTHON_DEB=3.13.5-2+deb13u5
# renovate: datasource=repology depName=debian_13/ca-certificates versioning=deb
ARG CA_CERTIFICATES_DEB=20250419+deb13u1
# renovate: datasource=repology depName=debian_14/postgresql-18 versioning=deb
ARG PG18_DEB=18.6-3
ARG PYTHON_DEB
ARG BASE_IMAGE=docker.io/library/debian:trixie-slim
"""
FULL_SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


# ------------------------------------------------------------------------------------------------
# renovate.json


def _renovate() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(RENOVATE.read_text())
    return config


def _js_regex(pattern: str) -> re.Pattern[str]:
    """A Renovate matchString (JavaScript syntax, compiled with the `g` flag only) as a Python regex:
    only the named groups differ, `(?<name>` -> `(?P<name>` (lookbehinds `(?<=`/`(?<!` left alone)."""
    return re.compile(re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", pattern))


def _file_pattern(pattern: str) -> re.Pattern[str]:
    """A managerFilePatterns entry: `/regex/` is a regex, anything else a glob (not used here)."""
    assert pattern.startswith("/") and pattern.endswith("/"), f"expected a /regex/ file pattern: {pattern}"
    return re.compile(pattern[1:-1])


def _dockerfile_managers() -> list[dict[str, Any]]:
    managers = [
        m
        for m in _renovate().get("customManagers", [])
        if m.get("customType") == "regex"
        and any(_file_pattern(p).search("Dockerfile") for p in m.get("managerFilePatterns", []))
    ]
    assert managers, "renovate.json has no regex customManager for the Dockerfile"
    return managers


def _extract(text: str) -> dict[int, dict[str, str]]:
    """What the Dockerfile regex managers extract from `text`, keyed by the offset where each match's
    currentValue starts (so each can be tied to the ARG line it updates)."""
    found: dict[int, dict[str, str]] = {}
    for manager in _dockerfile_managers():
        for pattern in manager["matchStrings"]:
            for m in _js_regex(pattern).finditer(text):
                groups = {k: v for k, v in m.groupdict().items() if v is not None}
                dep = {
                    "depName": groups.get("depName") or manager.get("depNameTemplate", ""),
                    "datasource": groups.get("datasource") or manager.get("datasourceTemplate", ""),
                    "currentValue": groups.get("currentValue", ""),
                    "versioning": groups.get("versioning") or manager.get("versioningTemplate", ""),
                }
                found[m.start("currentValue")] = dep
    return found


def _assert_every_pin_extracted(text: str) -> list[dict[str, str]]:
    pins = list(DEB_PIN.finditer(text))
    extracted = _extract(text)
    deps = []
    missing = []
    for pin in pins:
        dep = extracted.get(pin.start("value"))
        if dep is None:
            missing.append(pin.group(0).strip())
            continue
        assert dep["currentValue"] == pin.group("value"), (pin.group(0), dep)
        assert dep["depName"], f"{pin.group(0).strip()}: no depName"
        assert dep["datasource"], f"{pin.group(0).strip()}: no datasource"
        if dep["datasource"] == "repology":
            # the repology datasource looks packages up as <repository>/<package>
            assert re.fullmatch(r"[a-z0-9_]+/[A-Za-z0-9.+-]+", dep["depName"]), dep
        deps.append(dep)
    assert not missing, (
        "Debian package pins without a Renovate comment directly above them "
        f"('# renovate: datasource=repology depName=<repo>/<package> versioning=deb'): {missing}"
    )
    return deps


def test_renovate_config_managers_and_groups() -> None:
    config = _renovate()
    assert "config:recommended" in config["extends"]
    # enabledManagers limits Renovate to these: custom.regex must be listed for customManagers to run
    assert {"github-actions", "dockerfile", "pep621", "custom.regex"} <= set(config["enabledManagers"])
    rules = config["packageRules"]
    debian = [r for r in rules if "repology" in r.get("matchDatasources", [])]
    assert len(debian) == 1 and debian[0].get("groupName"), "the Debian pins are grouped into one PR"
    actions = [r for r in rules if "github-actions" in r.get("matchManagers", [])]
    assert len(actions) == 1 and actions[0].get("groupName"), "GitHub Actions updates are grouped"
    assert "digest" in actions[0]["matchUpdateTypes"]


def test_renovate_regex_manager_reads_the_pin_comment_shape() -> None:
    deps = _assert_every_pin_extracted(PINNED_DOCKERFILE)
    assert deps == [
        {
            "depName": "debian_13/python3.13",
            "datasource": "repology",
            "currentValue": "3.13.5-2+deb13u5",
            "versioning": "deb",
        },
        {
            "depName": "debian_13/ca-certificates",
            "datasource": "repology",
            "currentValue": "20250419+deb13u1",
            "versioning": "deb",
        },
        {
            "depName": "debian_14/postgresql-18",
            "datasource": "repology",
            "currentValue": "18.6-3",
            "versioning": "deb",
        },
    ]
    # only `_DEB` pins directly below their comment: not other ARGs, not a comment a line further up
    assert len(_extract(PINNED_DOCKERFILE)) == 3
    detached = PINNED_DOCKERFILE.replace("versioning=deb\nARG PG18_DEB", "versioning=deb\nARG OTHER=1\nARG PG18_DEB")
    with pytest.raises(AssertionError, match="PG18_DEB=18.6-3"):
        _assert_every_pin_extracted(detached)


def test_every_dockerfile_deb_pin_has_a_renovate_comment() -> None:
    text = DOCKERFILE.read_text()
    assert DEB_PIN.search(text), "the Dockerfile pins no Debian package (ARG <NAME>_DEB=<version>)?"
    _assert_every_pin_extracted(text)


# ------------------------------------------------------------------------------------------------
# .github/workflows/release.yml


def _workflow() -> dict[Any, Any]:
    workflow: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return workflow


def _job(name: str) -> dict[str, Any]:
    job: dict[str, Any] = _workflow()["jobs"][name]
    return job


def _steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in job["steps"])


def test_release_runs_on_version_tags_with_no_default_permissions() -> None:
    workflow = _workflow()
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert on["push"]["tags"] == ["v*"]
    assert "workflow_dispatch" in on
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {name} states its own permissions"
        if name != "image":
            assert "id-token" not in job["permissions"], name
        if name != "release":
            assert job["permissions"].get("contents") in (None, "read"), name


def test_third_party_actions_are_pinned_to_commit_shas() -> None:
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", WORKFLOW.read_text(), re.MULTILINE)
    assert uses
    for ref, comment in uses:
        assert FULL_SHA_PIN.match(ref), f"{ref}: not pinned to a full commit SHA"
        assert re.match(r"\s+# v\d+\.\d+\.\d+$", comment), f"{ref}: no '# vX.Y.Z' comment"


def test_image_job_pushes_both_platforms_and_signs() -> None:
    job = _job("image")
    assert {"test", "check-version"} <= set(job["needs"])
    assert job["permissions"]["id-token"] == "write"
    assert job["permissions"]["packages"] == "write"
    for action in ("docker/setup-qemu-action", "docker/setup-buildx-action", "docker/metadata-action"):
        assert _steps_using(job, action), action
    (login,) = _steps_using(job, "docker/login-action")
    assert login["with"]["registry"] == "ghcr.io"
    (build,) = _steps_using(job, "docker/build-push-action")
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["with"]["push"] is True
    assert build["with"]["provenance"] == "mode=max"
    assert build["with"]["sbom"] is True
    assert _steps_using(job, "sigstore/cosign-installer")
    runs = _runs(job)
    # signed (and the SBOM attested) by digest, not by tag
    sign = [s for s in job["steps"] if "cosign sign" in s.get("run", "")]
    assert len(sign) == 1 and "--yes" in sign[0]["run"] and '"${IMAGE}@${DIGEST}"' in sign[0]["run"]
    assert sign[0]["env"]["DIGEST"] == f"${{{{ steps.{build['id']}.outputs.digest }}}}"
    (sbom,) = _steps_using(job, "anchore/sbom-action")
    assert sbom["with"]["format"] == "spdx-json"
    assert sbom["with"]["image"].endswith(f"@${{{{ steps.{build['id']}.outputs.digest }}}}")
    # the attested and published SBOM is the file sbom-action wrote
    assert sbom["with"]["output-file"] == "${{ env.SBOM }}"
    assert re.search(r'cosign attest --yes --type spdxjson \\\n\s*--predicate "\$SBOM"', runs)
    (upload,) = _steps_using(job, "actions/upload-artifact")
    assert upload["with"]["path"] == "${{ env.SBOM }}"


def test_image_name_comes_from_app_identity() -> None:
    text = WORKFLOW.read_text()
    assert IMAGE_REPOSITORY not in text
    assert not re.search(r"ghcr\.io/", text), "no image name is written into the workflow"
    from_check = "${{ needs.check-version.outputs.image }}"
    job = _job("image")
    assert job["env"]["IMAGE"] == from_check
    (meta,) = _steps_using(job, "docker/metadata-action")
    assert meta["with"]["images"] == from_check
    check = _job("check-version")
    assert check["outputs"]["image"] == "${{ steps.version.outputs.image }}"
    assert "from app.identity import IMAGE_REPOSITORY" in _runs(check)


def _run_check_version(
    cwd: Path, ref_name: str, tmp_path: Path, ref_type: str = "tag"
) -> tuple[int, str, dict[str, str]]:
    """Runs check-version's script as GitHub does (bash -e -o pipefail) with `python` = this
    interpreter; returns (exit code, output, what it wrote to $GITHUB_OUTPUT)."""
    (step,) = [s for s in _job("check-version")["steps"] if s.get("id") == "version"]
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    if not (bindir / "python").exists():
        (bindir / "python").symlink_to(sys.executable)
    output = tmp_path / "github_output"
    output.write_text("")
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "REF_TYPE": ref_type,
        "REF_NAME": ref_name,
        "GITHUB_OUTPUT": str(output),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return proc.returncode, proc.stdout + proc.stderr, outputs


def _project_copy(tmp_path: Path, version: str | None = None, image: str | None = None) -> Path:
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    shutil.copy(ROOT / "app" / "__init__.py", root / "app" / "__init__.py")
    identity = (ROOT / "app" / "identity.py").read_text()
    if image is not None:
        identity = identity.replace(f'"{IMAGE_REPOSITORY}"', f'"{image}"')
    (root / "app" / "identity.py").write_text(identity)
    pyproject = (ROOT / "pyproject.toml").read_text()
    if version is not None:
        pyproject = pyproject.replace(f'\nversion = "{APP_VERSION}"\n', f'\nversion = "{version}"\n', 1)
    (root / "pyproject.toml").write_text(pyproject)
    return root


def test_check_version_accepts_the_matching_tag_and_exports_the_identity(tmp_path: Path) -> None:
    pyproject_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    rc, out, outputs = _run_check_version(ROOT, f"v{pyproject_version}", tmp_path)
    assert rc == 0, out
    assert outputs == {"version": pyproject_version, "image": IMAGE_REPOSITORY}
    # the image name follows app/identity.py
    project = _project_copy(tmp_path, image="ghcr.io/example/other-worker")
    rc, out, outputs = _run_check_version(project, f"v{pyproject_version}", tmp_path)
    assert rc == 0, out
    assert outputs["image"] == "ghcr.io/example/other-worker"


def test_check_version_refuses_a_tag_that_differs_from_pyproject(tmp_path: Path) -> None:
    rc, out, outputs = _run_check_version(ROOT, "v99.0.0", tmp_path)
    assert rc != 0 and outputs == {}
    assert f"tag v99.0.0 does not match pyproject.toml's version {APP_VERSION}" in out
    # a branch is not a release, even one named like the tag
    rc, out, outputs = _run_check_version(ROOT, f"v{APP_VERSION}", tmp_path, ref_type="branch")
    assert rc != 0 and "runs on a tag" in out and outputs == {}
    # pyproject.toml is what the tag is compared with (and APP_VERSION must follow it)
    project = _project_copy(tmp_path, version="99.0.0")
    rc, out, outputs = _run_check_version(project, f"v{APP_VERSION}", tmp_path)
    assert rc != 0 and outputs == {}
    assert f"tag v{APP_VERSION} does not match pyproject.toml's version 99.0.0" in out
    rc, out, outputs = _run_check_version(project, "v99.0.0", tmp_path)
    assert rc != 0 and outputs == {}
    assert f"APP_VERSION {APP_VERSION} does not match pyproject.toml's version 99.0.0" in out


def test_python_dist_and_release_assets() -> None:
    dist = _job("python-dist")
    assert {"test", "check-version"} <= set(dist["needs"])
    assert "python -m build --sdist --wheel" in _runs(dist)
    (upload,) = _steps_using(dist, "actions/upload-artifact")
    release = _job("release")
    assert {"image", "python-dist"} <= set(release["needs"])
    assert release["permissions"] == {"contents": "write"}
    (gh_release,) = _steps_using(release, "softprops/action-gh-release")
    files = gh_release["with"]["files"].split()
    assert f"release-assets/{upload['with']['name']}/*" in files
    (sbom_upload,) = _steps_using(_job("image"), "actions/upload-artifact")
    assert any(f.startswith(f"release-assets/{sbom_upload['with']['name']}/") for f in files)
