"""Throw-away TLS material for the tests: a CA and a server certificate it signed, made with the
`openssl` CLI in a temp dir.

The server certificate names both ways a test reaches a server (SAN IP:127.0.0.1 and
DNS:localhost), so libpq's `sslmode=verify-full` accepts it for PGHOST=127.0.0.1. Its key is
readable by the user the PostgreSQL servers run as only (testsupport/servers.py runs them as the
`postgres` system user when root), as the server insists on: it refuses a key that group or others
can read. The CA's key is the test process's own (mode 0600); nothing outside this module needs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 2  # long enough for any test run; nothing outlives the temp dir anyway


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise AssertionError("the openssl CLI is not installed (apt-get install openssl)")
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {p.stderr.strip()}")


def _new_key(path: Path, cwd: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path), cwd=cwd)
    os.chmod(path, 0o600)


@dataclass
class CertificateAuthority:
    """A self-signed CA (its certificate and key) in `dir`."""

    dir: Path
    name: str

    @property
    def cert(self) -> Path:
        return self.dir / f"{self.name}.crt"

    @property
    def key(self) -> Path:
        return self.dir / f"{self.name}.key"

    def pem(self) -> str:
        """The CA certificate, as a Secret's `ca.crt` key holds it."""
        return self.cert.read_text()


@dataclass
class TlsFiles:
    """A CA and a server certificate + key signed by it, all in one temp dir."""

    dir: Path
    ca: CertificateAuthority
    server_cert: Path
    server_key: Path

    @property
    def ca_cert(self) -> Path:
        return self.ca.cert

    def ca_pem(self) -> str:
        return self.ca.pem()

    def destroy(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _temp_dir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, 0o755)  # the postgres user must reach the server's files in it
    return d


def make_ca(
    directory: Path | None = None, name: str = "ca", common_name: str = "cnpg-pgdump-backup test CA"
) -> CertificateAuthority:
    """A self-signed CA certificate (basicConstraints CA:TRUE, keyCertSign) and its key."""
    d = directory or _temp_dir("cnpg-test-ca-")
    ca = CertificateAuthority(d, name)
    _new_key(ca.key, d)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(ca.key),
        "-sha256",
        "-days",
        str(VALID_DAYS),
        "-subj",
        f"/CN={common_name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-addext",
        "subjectKeyIdentifier=hash",
        "-out",
        str(ca.cert),
        cwd=d,
    )
    os.chmod(ca.cert, 0o644)
    return ca


def make_server_tls(owner: str = "postgres") -> TlsFiles:
    """A fresh CA and a server certificate it signed for 127.0.0.1 / localhost.

    When run as root the server key (and certificate) are chowned to `owner`, the system user the
    test servers run as; the key stays mode 0600 either way.
    """
    d = _temp_dir("cnpg-test-tls-")
    try:
        ca = make_ca(d)
        key, csr, cert, ext = d / "server.key", d / "server.csr", d / "server.crt", d / "server.ext"
        _new_key(key, d)
        _openssl("req", "-new", "-key", str(key), "-subj", "/CN=localhost", "-out", str(csr), cwd=d)
        ext.write_text(
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature, keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
            "authorityKeyIdentifier = keyid\n"
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca.cert),
            "-CAkey",
            str(ca.key),
            "-CAcreateserial",
            "-sha256",
            "-days",
            str(VALID_DAYS),
            "-extfile",
            str(ext),
            "-out",
            str(cert),
            cwd=d,
        )
        csr.unlink()
        os.chmod(cert, 0o644)
        if os.geteuid() == 0:
            shutil.chown(key, owner, owner)
            shutil.chown(cert, owner, owner)
        return TlsFiles(d, ca, cert, key)
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
