"""End-to-end fixtures: the worker image under rootful podman, test Secrets, synthesized manifests.

The image and podman come from `tools/build-image.sh` (recorded in $CACHE/env.d/image.env); the
PostgreSQL and MinIO servers from tests/conftest.py. Nothing here skips: a missing tool fails naming
the command that provides it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from testsupport.e2e_helpers import BUILD_HINT, DATASET_SQL, ROOT, Env, Podman, setting_or_fail
from testsupport.servers import PostgresServer


@pytest.fixture(scope="session")
def podman() -> Podman:
    if shutil.which("podman") is None:
        pytest.fail(f"podman is not installed: {BUILD_HINT}", pytrace=False)
    image = os.environ.get("CNPG_TEST_IMAGE") or setting_or_fail("CNPG_TEST_IMAGE")
    conf = os.environ.get("CNPG_TEST_CONTAINERS_CONF") or setting_or_fail("CNPG_TEST_CONTAINERS_CONF")
    p = Podman(image, conf)
    if not Path(conf).is_file():
        pytest.fail(f"{conf} is missing: {BUILD_HINT}", pytrace=False)
    if not p.image_exists(image):
        pytest.fail(f"image {image} is not in podman storage: {BUILD_HINT}", pytrace=False)
    # An image built from older worker sources would test old code.
    check = subprocess.run(
        ["bash", str(ROOT / "tools/build-image.sh"), "--check"],
        capture_output=True,
        text=True,
        env=dict(os.environ, CNPG_IMAGE=image),
    )
    if check.returncode != 0:
        pytest.fail(check.stderr.strip() or f"{image} is out of date: {BUILD_HINT}", pytrace=False)
    return p


@pytest.fixture
def make_env(podman, minio, bucket, tmp_path):
    def make(server: PostgresServer) -> Env:
        database = f"e2e_{uuid.uuid4().hex[:8]}"
        server.create_database(database)
        with server.connect(database) as c:
            c.execute(DATASET_SQL)
        return Env(server, minio, bucket, database, podman, tmp_path)

    return make
