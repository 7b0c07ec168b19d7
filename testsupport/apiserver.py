"""A real Kubernetes API server for the tests: etcd + kube-apiserver on free loopback ports, plus
the matching kubectl, all built from source by `tools/install-servers.sh kube`.

No controller-manager, scheduler or kubelet runs: objects are stored and admitted (schema,
field validation, defaulting, PodSecurity, RBAC) exactly as a cluster's API server does, but nothing
reconciles them (a Job never gets a Pod, a Namespace never gets its `default` ServiceAccount).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from testsupport.servers import free_port, setting

INSTALL_HINT = "run `bash tools/install-servers.sh kube` (builds etcd, kube-apiserver and kubectl into the cache)"


@dataclass
class Kubectl:
    returncode: int
    stdout: str
    stderr: str

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "Warning:" in line]


def _stop(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class KubeAPIServer:
    def __init__(self) -> None:
        try:
            bindir = Path(setting("CNPG_TEST_KUBE_BIN"))
        except pytest.fail.Exception:
            pytest.fail(
                f"CNPG_TEST_KUBE_BIN is not set and not recorded in the tools cache: {INSTALL_HINT}", pytrace=False
            )
        self.etcd_bin, self.apiserver_bin, self.kubectl_bin = (
            bindir / "etcd",
            bindir / "kube-apiserver",
            bindir / "kubectl",
        )
        missing = [str(b) for b in (self.etcd_bin, self.apiserver_bin, self.kubectl_bin) if not os.access(b, os.X_OK)]
        if missing:
            pytest.fail(f"missing {', '.join(missing)}: {INSTALL_HINT}", pytrace=False)
        self.base = Path(tempfile.mkdtemp(prefix="cnpg-test-kube-", dir="/tmp"))
        self.etcd_port, self.etcd_peer_port, self.port = free_port(), free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = self.base / "kubeconfig"
        self._token = secrets.token_hex(24)  # never printed; only in the 0600 files below
        self.etcd: subprocess.Popen | None = None
        self.apiserver: subprocess.Popen | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> KubeAPIServer:
        try:
            self._start_etcd()
            self._start_apiserver()
            self._wait_ready(timeout)
            self._write_kubeconfig()
        except BaseException:
            self.destroy()
            raise
        return self

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        self.etcd = subprocess.Popen(
            [
                str(self.etcd_bin),
                "--name=test",
                f"--data-dir={self.base / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=test={peer}",
                "--log-level=error",
                "--unsafe-no-fsync",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.base / "etcd.log", "wb"),
        )

    def _start_apiserver(self) -> None:
        sa_key, sa_pub = self.base / "sa.key", self.base / "sa.pub"
        subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True)
        subprocess.run(
            ["openssl", "rsa", "-in", str(sa_key), "-pubout", "-out", str(sa_pub)], check=True, capture_output=True
        )
        tokens = self.base / "tokens.csv"
        tokens.touch(mode=0o600)
        tokens.write_text(f"{self._token},admin,admin-uid,system:masters\n")
        self.apiserver = subprocess.Popen(
            [
                str(self.apiserver_bin),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.base / 'certs'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--enable-priority-and-fairness=false",
                "--endpoint-reconciler-type=none",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.base / "kube-apiserver.log", "wb"),
        )

    def _wait_ready(self, timeout: float) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        req = urllib.request.Request(f"{self.url}/readyz", headers={"Authorization": f"Bearer {self._token}"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in (("etcd", self.etcd), ("kube-apiserver", self.apiserver)):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"kube-apiserver not ready in {timeout:.0f} s:\n{self.log_tail('kube-apiserver')}")

    def _write_kubeconfig(self) -> None:
        # The serving certificate is self-signed by --cert-dir; the file holds it (and its CA).
        ca = self.base / "certs" / "apiserver.crt"
        cluster = {"server": self.url}
        if ca.is_file():
            cluster["certificate-authority"] = str(ca)
        else:
            cluster["insecure-skip-tls-verify"] = True
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": "test", "cluster": cluster}],
            "users": [{"name": "admin", "user": {"token": self._token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        }
        self.kubeconfig.touch(mode=0o600)
        self.kubeconfig.write_text(json.dumps(config))

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.base / f"{name}.log"
        if not path.is_file():
            return ""
        text = path.read_text(errors="replace")
        return "\n".join(text.replace(self._token, "<token>").splitlines()[-lines:])

    def stop(self) -> None:
        _stop(self.apiserver)
        _stop(self.etcd)
        self.apiserver = self.etcd = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    # --- kubectl -----------------------------------------------------------------------------

    def kubectl_env(self) -> dict[str, str]:
        """The environment kubectl runs in: this server's kubeconfig, none of the caller's KUBE* settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env.update(KUBECONFIG=str(self.kubeconfig), KUBECACHEDIR=str(self.base / "kubectl-cache"), HOME=str(self.base))
        return env

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> Kubectl:
        env = {**self.kubectl_env(), **(env or {})}
        p = subprocess.run(
            [str(self.kubectl_bin), *args], input=input, capture_output=True, text=True, env=env, timeout=timeout
        )
        out = Kubectl(p.returncode, p.stdout, p.stderr.replace(self._token, "<token>"))
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{out.stderr}{out.stdout}")
        return out

    def create_restricted_namespace(self, name: str) -> str:
        """A real namespace enforcing PodSecurity `restricted`, with the `default` ServiceAccount
        a controller-manager would have created."""
        ns = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/warn": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                },
            },
        }
        self.kubectl("create", "-f", "-", input=json.dumps(ns))
        self.kubectl("create", "serviceaccount", "default", "-n", name)
        return name
