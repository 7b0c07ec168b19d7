"""One real Kubernetes API server per test session (see testsupport/apiserver.py) with the CRDs the
project may generate (the Prometheus Operator's PrometheusRule), and fresh namespaces that enforce
PodSecurity `restricted`."""

from __future__ import annotations

import itertools

import pytest

from testsupport.apiserver import KubeAPIServer
from testsupport.kube_helpers import install_crds


@pytest.fixture(scope="session")
def kube():
    server = KubeAPIServer().start()
    install_crds(server)
    yield server
    server.destroy()


_counter = itertools.count()


@pytest.fixture
def namespace(kube, request) -> str:
    """A new namespace per test (nothing is deleted: no namespace controller runs, and the whole
    etcd goes away with the session)."""
    stem = request.node.name.lower().replace("_", "-")
    stem = "".join(c if c.isalnum() or c == "-" else "-" for c in stem)[:50].strip("-")
    return kube.create_restricted_namespace(f"{stem}-{next(_counter)}")
