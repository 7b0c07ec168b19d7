"""Runs a Kubernetes pod template (of a Job or CronJob) as real containers with rootful podman.

Every field of the pod spec is either translated into podman flags or refused: the runner keeps an
explicit allow-list per level and raises UnsupportedField for anything else it finds, so a field
added to the manifests can never be silently ignored here. What each field becomes:

pod spec
  initContainers / containers   run one after the other (init first), as the kubelet does with
                                restartPolicy Never: the first failing container fails the pod
  restartPolicy                 only "Never" (a failed container is not restarted)
  volumes[].emptyDir            a fresh tmpfs mounted on the host for this pod, shared by its
                                containers (size = sizeLimit, group = fsGroup, mode 2777 like the
                                kubelet's emptyDir with fsGroup); medium "" or "Memory"
  volumes[].secret              a fresh small tmpfs on the host holding the keys of the named Secret
                                from the runner's `secrets` (secretName): all of them, or only
                                items[{key, path, mode}] (path relative, no ".."), written as the
                                kubelet does: owner root, mode = item mode or defaultMode (default
                                0644), with fsGroup group fsGroup and mode |= 0440. A missing Secret
                                or key fails the pod before it starts (the kubelet's
                                CreateContainerConfigError) unless `optional`, which leaves it out.
                                Always bind-mounted read-only, as the kubelet mounts Secret volumes
  securityContext               pod defaults for each container (see below); fsGroup -> supplementary
                                group of every container + group of the volumes
  automountServiceAccountToken  only false (no token is mounted)
  enableServiceLinks            only false (no service variables are injected)
  serviceAccountName            accepted: it matters only through a mounted token, which is refused
  terminationGracePeriodSeconds podman --stop-timeout
container
  name, image                   container name suffix, image (must exist locally)
  imagePullPolicy               IfNotPresent / Never -> --pull=never (no registry here); Always refused
  command / args                --entrypoint (JSON; podman then drops the image CMD, as Kubernetes does)
                                / arguments, with Kubernetes' $(VAR) expansion
  env                           value, or valueFrom.secretKeyRef {name, key, optional} resolved from
                                the given Secrets; values reach podman through its environment
                                (`-e NAME`), never its argv
  resources                     limits.cpu -> --cpus, limits.memory -> --memory,
                                requests.cpu -> --cpu-shares, requests.memory -> --memory-reservation
  securityContext               runAsUser/runAsGroup -> --user; runAsNonRoot -> refuse to start uid 0
                                (as the kubelet does); readOnlyRootFilesystem -> --read-only with
                                --read-only-tmpfs=false (podman would otherwise add writable tmpfs
                                on /tmp, /var/tmp, /run); allowPrivilegeEscalation false ->
                                no-new-privileges; privileged -> --privileged; capabilities
                                drop/add -> --cap-drop/--cap-add; seccompProfile RuntimeDefault ->
                                the container runtime's default profile, Unconfined -> unconfined
  volumeMounts                  -v hostdir:mountPath[:ro] (name, mountPath, readOnly; :ro always
                                for a secret volume)
pod template metadata
  labels -> --label, annotations -> --annotation

Deliberate deviation, from the test's needs rather than the manifest: `--network host`, so the
containers reach the test PostgreSQL and MinIO on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class UnsupportedField(AssertionError):
    """The pod spec has a field (or value) this runner does not translate."""


POD_TEMPLATE_FIELDS = {"metadata", "spec"}
POD_METADATA_FIELDS = {"labels", "annotations"}
POD_SPEC_FIELDS = {
    "initContainers",
    "containers",
    "restartPolicy",
    "volumes",
    "securityContext",
    "automountServiceAccountToken",
    "enableServiceLinks",
    "serviceAccountName",
    "terminationGracePeriodSeconds",
}
POD_SECURITY_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "seccompProfile"}
CONTAINER_FIELDS = {
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "resources",
    "securityContext",
    "volumeMounts",
}
CONTAINER_SECURITY_FIELDS = {
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "privileged",
    "capabilities",
    "seccompProfile",
}
CAPABILITY_FIELDS = {"drop", "add"}
SECCOMP_FIELDS = {"type"}
ENV_FIELDS = {"name", "value", "valueFrom"}
ENV_FROM_FIELDS = {"secretKeyRef"}
SECRET_KEY_REF_FIELDS = {"name", "key", "optional"}
RESOURCES_FIELDS = {"limits", "requests"}
RESOURCE_NAMES = {"cpu", "memory"}
VOLUME_FIELDS = {"name", "emptyDir", "secret"}
VOLUME_SOURCES = ("emptyDir", "secret")
EMPTY_DIR_FIELDS = {"sizeLimit", "medium"}
SECRET_VOLUME_FIELDS = {"secretName", "items", "defaultMode", "optional"}
KEY_TO_PATH_FIELDS = {"key", "path", "mode"}
SECRET_DEFAULT_MODE = 0o644  # the API server's default for defaultMode
SECRET_VOLUME_TMPFS = "size=2097152,mode=0755"  # a Secret holds at most 1 MiB
MOUNT_FIELDS = {"name", "mountPath", "readOnly"}
JOB_SPEC_FIELDS = {"template", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"}

_QUANTITY = re.compile(r"^([0-9.]+)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
_FACTORS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def _check(obj: Any, allowed: set[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise UnsupportedField(f"{where}: expected a mapping, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise UnsupportedField(
            f"{where}: field(s) {unknown} are not understood by the pod runner (it translates only {sorted(allowed)})"
        )
    return obj


def _refuse(where: str, value: Any) -> UnsupportedField:
    return UnsupportedField(f"{where}: value {value!r} is not supported by the pod runner")


def _bytes(q: str | int, where: str) -> int:
    m = _QUANTITY.match(str(q))
    if not m or m.group(2) == "m":
        raise _refuse(where, q)
    return int(float(m.group(1)) * _FACTORS[m.group(2)])


def _millicpu(q: str | int, where: str) -> int:
    m = _QUANTITY.match(str(q))
    if not m or m.group(2) not in (None, "m"):
        raise _refuse(where, q)
    return int(float(m.group(1)) * (1 if m.group(2) == "m" else 1000))


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command/args ($$ escapes; unknown names stay as written)."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


def _file_mode(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise _refuse(where, value)
    return value


def _write_secret_files(root: Path, files: list[tuple[str, str, int]], fs_group: int | None) -> None:
    """A secret volume's files as the kubelet writes them: owner root; with fsGroup, group fsGroup
    and group read added (its SetVolumeOwnership for a read-only volume)."""
    gid = fs_group if fs_group is not None else 0
    for rel, content, mode in files:
        path = root / rel
        for parent in reversed(path.relative_to(root).parents[:-1]):
            (root / parent).mkdir(mode=0o755, exist_ok=True)
            os.chmod(root / parent, 0o755)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        if os.geteuid() == 0:
            os.chown(path, 0, gid)
        os.chmod(path, mode | 0o440 if fs_group is not None else mode)
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        os.chown(root, 0, gid)


@dataclass
class ContainerResult:
    name: str
    returncode: int
    stdout: str
    stderr: str
    argv: list[str]

    def error_lines(self) -> list[str]:
        return [
            line
            for line in self.stderr.splitlines()
            if '"level": "error"' in line or '"level":"error"' in line or " ERROR " in line
        ]


@dataclass
class PodResult:
    containers: list[ContainerResult] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return bool(self.containers) and all(c.returncode == 0 for c in self.containers)

    def __getitem__(self, name: str) -> ContainerResult:
        return next(c for c in self.containers if c.name == name)

    def describe(self) -> str:
        return "\n".join(f"--- {c.name}: exit {c.returncode}\n{c.stdout}{c.stderr}" for c in self.containers)


class PodRunner:
    def __init__(
        self, secrets: dict[str, dict[str, str]], containers_conf: str, image_exists=None, timeout: float = 300
    ) -> None:
        self.secrets = secrets
        self.containers_conf = containers_conf
        self.timeout = timeout
        self._image_exists = image_exists

    # ----------------------------------------------------------------------------------------------
    def run_job(self, job: dict) -> PodResult:
        """A Job's (or CronJob's jobTemplate's) pod, retried up to backoffLimit times on failure."""
        spec = _check(job["spec"], JOB_SPEC_FIELDS, f"{job.get('kind', 'Job')}.spec")
        retries = int(spec.get("backoffLimit", 6))
        timeout = float(spec.get("activeDeadlineSeconds") or self.timeout)
        # ttlSecondsAfterFinished: garbage collection of the finished Job object; containers here
        # are removed when they exit, so there is nothing left to collect.
        result = self.run_pod(spec["template"], timeout=timeout)
        while not result.succeeded and retries > 0:
            retries -= 1
            result = self.run_pod(spec["template"], timeout=timeout)
        return result

    def run_pod(self, template: dict, timeout: float | None = None) -> PodResult:
        plan = self.plan(template)  # every field checked before anything runs
        pod_id = f"e2e-{uuid.uuid4().hex[:8]}"
        mounts: dict[str, Path] = {}
        mounted: set[Path] = set()
        result = PodResult()
        try:
            for vol in plan["volumes"]:
                name, gid = vol["name"], vol["gid"]
                d = Path(tempfile.mkdtemp(prefix=f"{pod_id}-{name}-"))
                mounts[name] = d
                if vol["kind"] == "emptyDir":
                    size = vol["size"]
                    opts = [
                        f"size={size}" if size else "size=1073741824",
                        "mode=2777" if gid is not None else "mode=0777",
                    ]
                    if gid is not None:
                        opts.append(f"gid={gid}")
                    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(opts), "tmpfs", str(d)], check=True)
                    mounted.add(d)
                else:  # secret: the keys on a tmpfs (never on disk, as the kubelet keeps them)
                    subprocess.run(["mount", "-t", "tmpfs", "-o", SECRET_VOLUME_TMPFS, "tmpfs", str(d)], check=True)
                    mounted.add(d)
                    _write_secret_files(d, vol["files"], gid)
            for c in plan["containers"]:
                argv = [
                    "podman",
                    "run",
                    "--rm",
                    "--name",
                    f"{pod_id}-{c['name']}",
                    "--network",
                    "host",
                    *plan["pod_flags"],
                    *c["flags"],
                ]
                for vol, path, ro in c["mounts"]:  # ro: readOnly, or a secret volume
                    argv += ["-v", f"{mounts[vol]}:{path}{':ro' if ro else ''}"]
                argv += (
                    ["--entrypoint", json.dumps(c["command"]), c["image"], *c["args"]]
                    if c["command"]
                    else [c["image"], *c["args"]]
                )
                env = dict(os.environ, CONTAINERS_CONF=self.containers_conf, **c["env"])
                try:
                    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout or self.timeout)
                    res = ContainerResult(c["name"], p.returncode, p.stdout, p.stderr, argv)
                except subprocess.TimeoutExpired as exc:
                    subprocess.run(["podman", "rm", "-f", f"{pod_id}-{c['name']}"], env=env, capture_output=True)
                    res = ContainerResult(
                        c["name"], -1, exc.stdout or "", f"{exc.stderr or ''}\nactiveDeadline exceeded", argv
                    )
                result.containers.append(res)
                if res.returncode != 0:
                    break
        finally:
            for d in mounts.values():
                if d in mounted:
                    subprocess.run(["umount", str(d)], check=False)
                shutil.rmtree(d, ignore_errors=True)
        return result

    # ----------------------------------------------------------------------------------------------
    def plan(self, template: dict) -> dict:
        """Translate a pod template into podman flags, refusing any field not in the allow-lists."""
        _check(template, POD_TEMPLATE_FIELDS, "template")
        meta = _check(template.get("metadata") or {}, POD_METADATA_FIELDS, "template.metadata")
        spec = _check(template["spec"], POD_SPEC_FIELDS, "spec")
        pod_flags: list[str] = []
        for k, v in (meta.get("labels") or {}).items():
            pod_flags += ["--label", f"{k}={v}"]
        for k, v in (meta.get("annotations") or {}).items():
            pod_flags += ["--annotation", f"{k}={v}"]
        if spec.get("restartPolicy") != "Never":
            raise _refuse("spec.restartPolicy", spec.get("restartPolicy"))
        if spec.get("automountServiceAccountToken") is not False:
            raise _refuse(
                "spec.automountServiceAccountToken (a token would be mounted)", spec.get("automountServiceAccountToken")
            )
        if spec.get("enableServiceLinks") is not False:
            raise _refuse(
                "spec.enableServiceLinks (service variables would be injected)", spec.get("enableServiceLinks")
            )
        if "terminationGracePeriodSeconds" in spec:
            pod_flags += ["--stop-timeout", str(int(spec["terminationGracePeriodSeconds"]))]
        pod_sc = _check(spec.get("securityContext") or {}, POD_SECURITY_FIELDS, "spec.securityContext")
        fs_group = pod_sc.get("fsGroup")

        volumes: list[dict] = []
        for i, v in enumerate(spec.get("volumes") or []):
            _check(v, VOLUME_FIELDS, f"spec.volumes[{i}]")
            sources = [k for k in VOLUME_SOURCES if k in v]
            if len(sources) != 1:
                raise UnsupportedField(
                    f"spec.volumes[{i}] ({v.get('name')}): exactly one of {list(VOLUME_SOURCES)} is supported, "
                    f"got {sources or 'none'}"
                )
            if "emptyDir" in v:
                ed = _check(v["emptyDir"] or {}, EMPTY_DIR_FIELDS, f"spec.volumes[{i}].emptyDir")
                if ed.get("medium") not in (None, "", "Memory"):
                    raise _refuse(f"spec.volumes[{i}].emptyDir.medium", ed.get("medium"))
                size = _bytes(ed["sizeLimit"], f"spec.volumes[{i}].emptyDir.sizeLimit") if "sizeLimit" in ed else None
                volumes.append({"name": v["name"], "kind": "emptyDir", "size": size, "gid": fs_group})
            else:
                files = self._secret_files(v["secret"], f"spec.volumes[{i}].secret")
                volumes.append({"name": v["name"], "kind": "secret", "files": files, "gid": fs_group})
        volume_kinds = {vol["name"]: vol["kind"] for vol in volumes}

        containers = []
        all_containers = [("initContainers", c) for c in spec.get("initContainers") or []] + [
            ("containers", c) for c in spec.get("containers") or []
        ]
        if not spec.get("containers"):
            raise UnsupportedField("spec.containers: none")
        if len(spec["containers"]) != 1:
            raise UnsupportedField("spec.containers: only one main container is supported (init containers run first)")
        for i, (group, c) in enumerate(all_containers):
            where = f"spec.{group}[{c.get('name', i)}]"
            containers.append(self._container(c, where, pod_sc, fs_group, volume_kinds))
        return {"pod_flags": pod_flags, "volumes": volumes, "containers": containers}

    def _secret_files(self, sv: Any, where: str) -> list[tuple[str, str, int]]:
        """(relative path, content, mode) of each file a secret volume projects."""
        _check(sv, SECRET_VOLUME_FIELDS, where)
        name = sv.get("secretName")
        if not name:
            raise _refuse(f"{where}.secretName", name)
        default_mode = _file_mode(sv.get("defaultMode", SECRET_DEFAULT_MODE), f"{where}.defaultMode")
        optional = bool(sv.get("optional"))
        secret = self.secrets.get(name)
        if secret is None:
            if optional:
                return []
            raise AssertionError(f"{where}: Secret {name!r} does not exist in the test Secrets")
        items = sv.get("items")
        if items is None:
            return [(key, value, default_mode) for key, value in sorted(secret.items())]
        files = []
        for j, item in enumerate(items):
            _check(item, KEY_TO_PATH_FIELDS, f"{where}.items[{j}]")
            key, path = item.get("key"), item.get("path")
            parts = str(path or "").split("/")
            if not key or not path or path.startswith("/") or ".." in parts or "" in parts:
                raise _refuse(f"{where}.items[{j}] key/path", (key, path))
            mode = _file_mode(item["mode"], f"{where}.items[{j}].mode") if "mode" in item else default_mode
            if key not in secret:
                if optional:
                    continue
                raise AssertionError(f"{where}.items[{j}]: Secret {name!r} has no key {key!r} in the test Secrets")
            files.append((path, secret[key], mode))
        return files

    def _container(self, c: dict, where: str, pod_sc: dict, fs_group: int | None, volume_kinds: dict[str, str]) -> dict:
        _check(c, CONTAINER_FIELDS, where)
        flags: list[str] = []
        policy = c.get("imagePullPolicy", "IfNotPresent")
        if policy not in ("IfNotPresent", "Never"):
            raise _refuse(f"{where}.imagePullPolicy (no registry is reachable)", policy)
        flags.append("--pull=never")
        if self._image_exists and not self._image_exists(c["image"]):
            raise AssertionError(f"{where}: image {c['image']} is not in podman storage: run tools/build-image.sh")

        env: dict[str, str] = {}
        for j, e in enumerate(c.get("env") or []):
            _check(e, ENV_FIELDS, f"{where}.env[{j}]")
            if "valueFrom" in e:
                vf = _check(e["valueFrom"], ENV_FROM_FIELDS, f"{where}.env[{j}].valueFrom")
                ref = _check(vf["secretKeyRef"], SECRET_KEY_REF_FIELDS, f"{where}.env[{j}].valueFrom.secretKeyRef")
                secret = self.secrets.get(ref["name"])
                if secret is None or ref["key"] not in secret:
                    if ref.get("optional"):
                        continue
                    # The kubelet refuses to start the container (CreateContainerConfigError).
                    raise AssertionError(
                        f"{where}.env {e['name']}: Secret {ref['name']!r} key {ref['key']!r} "
                        "does not exist in the test Secrets"
                    )
                env[e["name"]] = secret[ref["key"]]
            else:
                env[e["name"]] = _expand(str(e.get("value", "")), env)
        for name in env:
            flags += ["-e", name]  # the value comes from podman's environment, never its argv

        res = _check(c.get("resources") or {}, RESOURCES_FIELDS, f"{where}.resources")
        limits = _check(res.get("limits") or {}, RESOURCE_NAMES, f"{where}.resources.limits")
        requests = _check(res.get("requests") or {}, RESOURCE_NAMES, f"{where}.resources.requests")
        if "cpu" in limits:
            flags += ["--cpus", f"{_millicpu(limits['cpu'], where + '.resources.limits.cpu') / 1000:g}"]
        if "memory" in limits:
            flags += ["--memory", str(_bytes(limits["memory"], where + ".resources.limits.memory"))]
        if "cpu" in requests:  # the kubelet's cpu.shares for a request
            flags += [
                "--cpu-shares",
                str(max(2, _millicpu(requests["cpu"], where + ".resources.requests.cpu") * 1024 // 1000)),
            ]
        if "memory" in requests:
            flags += ["--memory-reservation", str(_bytes(requests["memory"], where + ".resources.requests.memory"))]

        sc = _check(c.get("securityContext") or {}, CONTAINER_SECURITY_FIELDS, f"{where}.securityContext")
        merged = {**{k: v for k, v in pod_sc.items() if k != "fsGroup"}, **sc}
        uid, gid = merged.get("runAsUser"), merged.get("runAsGroup")
        if uid is None:
            raise UnsupportedField(
                f"{where}: no runAsUser (the image's user would apply; the runner wants it explicit)"
            )
        if merged.get("runAsNonRoot") and int(uid) == 0:
            raise AssertionError(f"{where}: runAsNonRoot with runAsUser 0: the kubelet refuses to start it")
        flags += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
        if fs_group is not None:
            flags += ["--group-add", str(fs_group)]
        if merged.get("readOnlyRootFilesystem"):
            flags += ["--read-only", "--read-only-tmpfs=false"]
        if merged.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        if merged.get("privileged"):
            flags.append("--privileged")
        caps = _check(merged.get("capabilities") or {}, CAPABILITY_FIELDS, f"{where}.securityContext.capabilities")
        for cap in caps.get("drop") or []:
            flags += ["--cap-drop", cap]
        for cap in caps.get("add") or []:
            flags += ["--cap-add", cap]
        seccomp = _check(
            merged.get("seccompProfile") or {"type": "RuntimeDefault"},
            SECCOMP_FIELDS,
            f"{where}.securityContext.seccompProfile",
        )
        if seccomp["type"] == "Unconfined":
            flags += ["--security-opt", "seccomp=unconfined"]
        elif seccomp["type"] != "RuntimeDefault":
            raise _refuse(f"{where}.securityContext.seccompProfile.type", seccomp["type"])
        # RuntimeDefault: podman applies its default seccomp profile unless told otherwise.

        mounts = []
        for j, m in enumerate(c.get("volumeMounts") or []):
            _check(m, MOUNT_FIELDS, f"{where}.volumeMounts[{j}]")
            if m["name"] not in volume_kinds:
                raise AssertionError(f"{where}.volumeMounts[{j}]: no volume named {m['name']!r}")
            read_only = bool(m.get("readOnly")) or volume_kinds[m["name"]] == "secret"
            mounts.append((m["name"], m["mountPath"], read_only))

        command = [_expand(x, env) for x in c.get("command") or []]
        args = [_expand(x, env) for x in c.get("args") or []]
        return {
            "name": c["name"],
            "image": c["image"],
            "flags": flags,
            "env": env,
            "mounts": mounts,
            "command": command,
            "args": args,
        }
