"""Issue #13: the synthesized pods, run from the freshly built image, against PostgreSQL servers that
accept TLS only (ssl=on, pg_hba `hostssl` and nothing else), with `cnpg.sslMode: verify-full` and
the CA from a Secret mounted the way the manifests mount it. The image's one client (PostgreSQL 18)
dumps 18, 13 and 16 and restores what it dumped; a CA that did not sign the server's certificate
stops the backup with one line naming the certificate."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import psycopg
import pytest
import yaml

from testsupport.e2e_helpers import Env, fingerprint, job_of_cronjob, one
from testsupport.podrunner import PodResult, PodRunner, UnsupportedField, _write_secret_files
from testsupport.servers import PostgresServer
from testsupport.tls import TlsFiles, make_ca, make_server_tls

pytestmark = pytest.mark.integration

CA_DIR = "/etc/cnpg-backup/ca"  # app/constructs/pod.py


@pytest.fixture(scope="module")
def server_tls():
    tls = make_server_tls()
    yield tls
    tls.destroy()


class _TlsPool:
    """One TLS-only server per major, started on demand, all destroyed with the module."""

    def __init__(self, tls: TlsFiles) -> None:
        self.tls = tls
        self.servers: dict[int, PostgresServer] = {}

    def get(self, major: int) -> PostgresServer:
        if major not in self.servers:
            self.servers[major] = PostgresServer(major, tls=self.tls).start()
        return self.servers[major]

    def close(self) -> None:
        for s in self.servers.values():
            s.destroy()


@pytest.fixture(scope="module")
def tls_servers(server_tls):
    pool = _TlsPool(server_tls)
    yield pool
    pool.close()


@pytest.fixture
def other_ca():
    ca = make_ca(common_name="some other CA")  # a CA that never signed the servers' certificate
    yield ca
    shutil.rmtree(ca.dir, ignore_errors=True)


def assert_tls_only(server: PostgresServer) -> None:
    """The server refuses a connection without TLS; the test's own connection is TLS, verified."""
    with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf entry"):
        psycopg.connect(
            f"host=127.0.0.1 port={server.port} user={server.user} dbname=postgres sslmode=disable",
            password=server.password,
            connect_timeout=10,
        )
    with server.connect() as c:
        assert c.execute("SHOW ssl").fetchone() == ("on",)
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
        assert c.execute("SELECT array_agg(DISTINCT type) FROM pg_hba_file_rules").fetchone() == (["hostssl"],)


def tls_values(env: Env, ca: dict, **sections: dict) -> dict:
    return env.values(cnpg={"sslMode": "verify-full", "sslRootCertSecret": ca}, **sections)


def assert_ca_mounted(result: PodResult) -> None:
    """Every container of the pod got the CA Secret's volume, read-only, where PGSSLROOTCERT points."""
    for c in result.containers:
        mounts = [c.argv[i + 1] for i, a in enumerate(c.argv) if a == "-v"]
        assert any(m.endswith(f":{CA_DIR}:ro") for m in mounts), (c.name, mounts)


def backup_pod_env(cron: dict) -> dict[str, str]:
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize(
    "major, backup, suffix",
    [
        # no codec chosen: a custom archive gets zstd, which the image's pg_dump 18 writes
        pytest.param(18, {"format": "custom"}, ".dump", id="pg18-custom-default-zstd"),
        pytest.param(13, {"format": "custom", "compression": "lz4"}, ".dump", id="pg13-custom-lz4"),
        pytest.param(16, {"format": "plain", "compression": "zstd"}, ".sql.zst", id="pg16-plain-zstd"),
    ],
)
def test_tls_only_server_verify_full_backup_then_restore(make_env, tls_servers, server_tls, major, backup, suffix):
    server = tls_servers.get(major)
    assert_tls_only(server)
    env = make_env(server)
    ca = env.add_ca_secret(server_tls.ca_pem())
    vals = tls_values(env, ca, backup=backup)

    cron = one(env.synth(vals), "CronJob")
    pod_env = backup_pod_env(cron)
    assert pod_env["PGSSLMODE"] == "verify-full"
    assert pod_env["PGSSLROOTCERT"] == f"{CA_DIR}/ca.crt"
    before = set(env.backup_objects())
    result = env.runner().run_job(job_of_cronjob(cron))
    assert result.succeeded, result.describe()
    assert [c.name for c in result.containers] == ["wait-for-postgres", "backup"]
    assert_ca_mounted(result)

    new = sorted(set(env.backup_objects()) - before)
    data = [k for k in new if not k.endswith(".manifest.json")]
    assert len(data) == 1 and data[0] + ".manifest.json" in new, new
    key = data[0]
    assert key.endswith(suffix), key
    manifest = json.loads(env.s3().get_object(Bucket=env.bucket, Key=key + ".manifest.json")["Body"].read())
    assert manifest["status"] == "complete", manifest
    assert manifest["format"] == backup["format"], manifest
    assert manifest["compression"] == backup.get("compression", "zstd"), manifest
    assert manifest["pg_dump_major"] == 18, manifest  # the image's only client
    assert manifest["server_version"].split(".")[0] == str(major), manifest

    fresh = env.database + "_tls_restored"
    server.create_database(fresh)
    job = one(
        env.synth(
            tls_values(env, ca, backup=backup, restore={"object": key.split("/", 1)[1], "targetDatabase": fresh})
        ),
        "Job",
    )
    result = env.runner().run_job(job)
    assert result.succeeded, result.describe()
    assert [c.name for c in result.containers] == ["wait-for-postgres", "restore"]
    assert_ca_mounted(result)
    assert fingerprint(server, fresh) == fingerprint(server, env.database)


def test_verify_full_with_another_ca_fails_the_backup_with_one_certificate_line(make_env, tls_servers, other_ca):
    server = tls_servers.get(18)
    assert_tls_only(server)
    env = make_env(server)
    ca = env.add_ca_secret(other_ca.pem())
    # The default 150 s wait: a certificate the CA cannot verify does not get better by waiting, so
    # the worker gives up at the first attempt (the attempt count proves it without timing anything).
    vals = tls_values(env, ca, backup={"backoffLimit": 0})

    result = env.runner().run_job(job_of_cronjob(one(env.synth(vals), "CronJob")))
    assert not result.succeeded
    failed = result.containers[-1]
    assert failed.returncode != 0
    assert [c.name for c in result.containers] == ["wait-for-postgres"], result.describe()  # backup never started
    assert "Traceback" not in failed.stderr
    errors = failed.error_lines()
    assert len(errors) == 1, failed.stderr
    assert "\n" not in errors[0]
    assert "certificate" in errors[0] and "sslRootCertSecret" in errors[0], errors[0]
    assert "waiting for postgres" not in failed.stderr and "not ready after" not in failed.stderr, failed.stderr
    assert env.backup_objects() == []  # nothing that looks like a backup


# --------------------------------------------------------------------------------------------------
# The runner's translation of the CA Secret volume (no containers needed).


def _tls_template(tmp_path: Path, **cnpg) -> dict:
    from app.chart import synth
    from app.values import config_from_values

    vals = {
        "cnpg": {"secretName": "s", "database": "d", **cnpg},
        "s3": {"bucket": "bucket-x", "secretName": "s3"},
    }
    files = synth(config_from_values(vals), tmp_path, warn=lambda _m: None)
    cron = one([d for f in files for d in yaml.safe_load_all(f.read_text()) if d], "CronJob")
    return cron["spec"]["jobTemplate"]["spec"]["template"]


FAKE = {
    "s": {k: "x" for k in ("host", "port", "username", "password")},
    "s3": {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
    "the-ca": {"ca.crt": "PEM", "other": "not projected"},
}


def test_runner_projects_the_ca_secret_volume(tmp_path):
    template = _tls_template(tmp_path, sslMode="verify-full", sslRootCertSecret={"name": "the-ca", "key": "ca.crt"})
    plan = PodRunner(FAKE, "/dev/null").plan(template)
    (ca,) = [v for v in plan["volumes"] if v["kind"] == "secret"]
    assert ca["files"] == [("ca.crt", "PEM", 0o444)]  # only the item asked for, at defaultMode
    assert ca["gid"] == 999
    for c in plan["containers"]:
        assert (ca["name"], CA_DIR, True) in c["mounts"]

    # written as the kubelet writes it: root-owned, group fsGroup, read-only for everyone
    vol = tmp_path / "vol"
    vol.mkdir()
    _write_secret_files(vol, [("ca.crt", "PEM", 0o444), ("sub/x", "X", 0o400)], 999)
    st = os.stat(vol / "ca.crt")
    assert stat.S_IMODE(st.st_mode) == 0o444 and (vol / "ca.crt").read_text() == "PEM"
    assert stat.S_IMODE(os.stat(vol / "sub" / "x").st_mode) == 0o440  # fsGroup adds group read
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (0, 999)

    # a Secret or key that does not exist stops the pod before it starts, unless optional
    missing = {k: v for k, v in FAKE.items() if k != "the-ca"}
    with pytest.raises(AssertionError, match="the-ca"):
        PodRunner(missing, "/dev/null").plan(template)
    volume = next(v for v in template["spec"]["volumes"] if "secret" in v)
    volume["secret"]["optional"] = True
    plan = PodRunner(missing, "/dev/null").plan(template)
    assert [v["files"] for v in plan["volumes"] if v["kind"] == "secret"] == [[]]
    volume["secret"]["items"][0]["path"] = "../escape"
    with pytest.raises(UnsupportedField, match="escape"):
        PodRunner(FAKE, "/dev/null").plan(template)
