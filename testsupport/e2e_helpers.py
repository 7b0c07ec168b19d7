"""Helpers of the end-to-end tests: the worker image under podman, synthesized pods run for real."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from testsupport.podrunner import PodRunner
from testsupport.servers import ROOT, MinioServer, PostgresServer, setting

BUILD_HINT = "run tools/build-image.sh (it installs podman and builds the worker image)"
JSII_ENV = {
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "CDK8S_CHECK_UPGRADE": "false",
}
os.environ.update(JSII_ENV)


@dataclass
class Podman:
    image: str
    containers_conf: str

    def env(self) -> dict[str, str]:
        return dict(os.environ, CONTAINERS_CONF=self.containers_conf)

    def image_exists(self, image: str) -> bool:
        return subprocess.run(["podman", "image", "exists", image], env=self.env()).returncode == 0


def setting_or_fail(name: str) -> str:
    try:
        return setting(name)
    except pytest.fail.Exception:
        pytest.fail(f"{name} is not recorded: {BUILD_HINT}", pytrace=False)


# --------------------------------------------------------------------------------------------------
# A database with a bit of everything, and a fingerprint to compare two of them.

DATASET_SQL = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2), payload jsonb,
                    created timestamptz DEFAULT '2024-01-01 00:00:00+00');
INSERT INTO items (id, name, amount, payload)
  SELECT i, 'item ' || i || E' \\u00e9\\u4e2d\\t"q''', i * 1.25, jsonb_build_object('i', i, 'tags', ARRAY['a', 'b'])
  FROM generate_series(1, 20000) i;
CREATE TABLE "Mixed Case" (id bigserial PRIMARY KEY, data bytea, ref int REFERENCES items(id));
INSERT INTO "Mixed Case" (data, ref) SELECT decode(md5(i::text), 'hex'), i FROM generate_series(1, 3000) i;
CREATE SCHEMA extra;
CREATE TABLE extra.big (id int PRIMARY KEY, blob text);
INSERT INTO extra.big SELECT i, repeat(md5(i::text), 200) FROM generate_series(1, 300) i;
CREATE VIEW item_totals AS SELECT count(*) AS n, sum(amount) AS total FROM items;
CREATE FUNCTION extra.double(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
"""

FINGERPRINT_TABLES = ["public.items", 'public."Mixed Case"', "extra.big"]


def fingerprint(server: PostgresServer, database: str) -> dict[str, Any]:
    """Row count and an md5 over every row (in key order) of each table, plus other objects."""
    out: dict[str, Any] = {}
    with server.connect(database) as c:
        for t in FINGERPRINT_TABLES:
            out[t] = c.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {t} t"
            ).fetchone()
        out["view"] = c.execute("SELECT n, total FROM item_totals").fetchone()
        out["function"] = c.execute("SELECT extra.double(21)").fetchone()
        out["sequence"] = c.execute("""SELECT last_value FROM "Mixed Case_id_seq" """).fetchone()
    return out


# --------------------------------------------------------------------------------------------------


@dataclass
class Env:
    """One test's world: a PostgreSQL server with a filled database, a bucket, the test Secrets."""

    server: PostgresServer
    minio: MinioServer
    bucket: str
    database: str
    podman: Podman
    tmp: Path
    # More Secrets the pods may reference (e.g. a CA Secret for cnpg.sslRootCertSecret): name -> data.
    extra_secrets: dict[str, dict[str, str]] = field(default_factory=dict)

    CNPG_SECRET = "e2e-cnpg-app"
    S3_SECRET = "e2e-s3-creds"
    CA_SECRET = "e2e-cnpg-ca"
    PREFIX = "e2e"

    @property
    def secrets(self) -> dict[str, dict[str, str]]:
        return {
            self.CNPG_SECRET: {
                "host": "127.0.0.1",
                "port": str(self.server.port),
                "username": self.server.user,
                "password": self.server.password,
                "dbname": self.database,
            },
            self.S3_SECRET: {
                "AWS_ACCESS_KEY_ID": self.minio.access_key,
                "AWS_SECRET_ACCESS_KEY": self.minio.secret_key,
            },
            **self.extra_secrets,
        }

    def add_ca_secret(self, ca_pem: str, name: str | None = None, key: str = "ca.crt") -> dict[str, str]:
        """Add a Secret holding a CA certificate; return the `cnpg.sslRootCertSecret` naming it."""
        name = name or self.CA_SECRET
        self.extra_secrets[name] = {key: ca_pem}
        return {"name": name, "key": key}

    def values(self, **sections: dict) -> dict[str, Any]:
        vals: dict[str, Any] = {
            "backup": {"image": self.podman.image, "imagePullPolicy": "IfNotPresent", "logFormat": "json"},
            "cnpg": {"secretName": self.CNPG_SECRET, "database": self.database},
            "s3": {
                "bucket": self.bucket,
                "prefix": self.PREFIX,
                "region": "us-east-1",
                "endpoint": self.minio.endpoint,
                "secretName": self.S3_SECRET,
            },
        }
        for name, override in sections.items():
            vals[name] = {**vals.get(name, {}), **override}
        return vals

    def synth(self, vals: dict[str, Any]) -> list[dict[str, Any]]:
        """The manifests of a config, through the generator's own code (config_from_values + synth)."""
        from app.chart import synth
        from app.values import config_from_values

        out = self.tmp / f"dist-{uuid.uuid4().hex[:6]}"
        files = synth(config_from_values(vals), out, warn=lambda _m: None)
        return [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]

    def write_values(self, vals: dict[str, Any]) -> Path:
        path = self.tmp / f"values-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(vals))
        return path

    def runner(self) -> PodRunner:
        return PodRunner(self.secrets, self.podman.containers_conf, image_exists=self.podman.image_exists)

    def s3(self):
        return self.minio.client()

    def objects(self) -> list[str]:
        resp = self.s3().list_objects_v2(Bucket=self.bucket, Prefix=self.PREFIX + "/")
        return sorted(o["Key"] for o in resp.get("Contents", []))

    def backup_objects(self) -> list[str]:
        """The backups and their manifests: objects() without the worker's own state under
        `<prefix>/.cnpg-backup/` (status object, upload heartbeats, restore ledger)."""
        return [k for k in self.objects() if not k.startswith(f"{self.PREFIX}/.cnpg-backup/")]


def job_of_cronjob(cronjob: dict) -> dict:
    """What the CronJob controller creates at a scheduled time: a Job with the jobTemplate's spec."""
    return {
        "kind": "Job",
        "metadata": {"name": cronjob["metadata"]["name"] + "-manual"},
        "spec": copy.deepcopy(cronjob["spec"]["jobTemplate"]["spec"]),
    }


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def app_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, **JSII_ENV),
        timeout=120,
    )
