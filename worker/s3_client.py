"""The S3 client: how it is made for AWS and S3-compatible servers alike, and how its errors read.

botocore is imported on first use only, never at module level: importing it and loading its S3
model is ~0.2 s of every run, which a backup spends on a thread while PostgreSQL is checked and
pg_dump starts (`Bucket.prepare` in worker/s3.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .errors import UsageError, WorkerError


class _Botocore:
    """`botocore.exceptions`, imported on first use."""

    def __getattr__(self, name: str) -> Any:
        import botocore.exceptions

        return getattr(botocore.exceptions, name)


errors = _Botocore()


@dataclass(frozen=True)
class S3Location:
    bucket: str
    endpoint: str | None = None
    region: str | None = None
    storage_class: str | None = None
    sse: str | None = None  # server-side encryption of what the worker writes: AES256 | aws:kms
    kms_key_id: str | None = None  # with aws:kms: the key (else the bucket's/account's default)

    def write_args(self) -> dict[str, str]:
        """Arguments every object the worker writes carries (backups, manifests, its own records)."""
        args = {"ServerSideEncryption": self.sse} if self.sse else {}
        if self.sse == "aws:kms" and self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args


def make_client(loc: S3Location) -> Any:
    """A client that works against AWS and S3-compatible servers alike.

    Custom endpoints get path-style addressing (MinIO and most on-prem servers have no wildcard DNS),
    unsigned payloads over HTTPS, and checksums only when an operation requires them: botocore >= 1.36 sends CRC32 trailers by
    default, which several S3-compatible servers reject.
    """
    opts: dict[str, Any] = {
        "retries": {"max_attempts": 8, "mode": "standard"},
        "connect_timeout": 10,
        "read_timeout": 120,
        "user_agent_extra": "cnpg-pgdump-backup",
    }
    # botocore reads AWS_CA_BUNDLE (s3.caSecret in the pods) only at the first request, and then
    # reports a missing file as "SSL validation failed ... No such file or directory", naming neither
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if bundle and not os.access(bundle, os.R_OK):
        raise UsageError(
            f"AWS_CA_BUNDLE names {bundle}, which is not a readable file",
            hint="in the pods it comes from s3.caSecret: check the Secret's name and key; elsewhere point it "
            "at the PEM file of the CA that signed the S3 endpoint's certificate",
        )
    if loc.endpoint:
        opts["s3"] = {"addressing_style": "path"}
        if loc.endpoint.startswith("https://"):
            # TLS already authenticates every byte in transit and every restore checks the manifest's
            # SHA-256, so SigV4's own SHA-256 of each part would be a third pass over the data: 256 MiB
            # to an HTTPS MinIO took 0.56 s of worker CPU signed, 0.32 s unsigned (and MinIO 0.92 vs 0.71 s).
            # Plain HTTP keeps it: there it is the only check a part gets on the way.
            opts["s3"]["payload_signing_enabled"] = False
        opts["request_checksum_calculation"] = "when_required"
        opts["response_checksum_validation"] = "when_required"
    # botocore's own session, not boto3's: the worker needs no resources or transfer manager, and
    # importing boto3 (with s3transfer) was a fifth of every run's start-up
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=loc.endpoint or None,
        region_name=loc.region or None,
        config=Config(**opts),
    )


def describe(exc: BaseException, *, bucket: str, key: str | None = None) -> WorkerError:
    """Turn a boto error into one line naming the bucket/key and the likely fix."""
    if isinstance(exc, WorkerError):
        return exc  # already one line (e.g. from make_client)
    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    if isinstance(exc, errors.NoCredentialsError):
        return WorkerError(
            f"no S3 credentials for {where}",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (s3.secretName) or give the ServiceAccount an IAM role",
        )
    if isinstance(exc, errors.SSLError):
        return WorkerError(
            f"TLS with S3 failed for {where}: {exc}",
            hint="an endpoint whose certificate a private CA signed needs that CA: s3.caSecret "
            "(AWS_CA_BUNDLE outside Kubernetes); else check that s3.endpoint names the host on its certificate",
        )
    if isinstance(exc, (errors.EndpointConnectionError, errors.ConnectTimeoutError)):
        return WorkerError(
            f"cannot reach S3 for {where}: {exc}", hint="check s3.endpoint / s3.region and network policies"
        )
    if isinstance(exc, errors.ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "Unknown")
        msg = err.get("Message", "")
        hints = {
            "NoSuchBucket": "check s3.bucket: the bucket does not exist",
            "InvalidAccessKeyId": "the access key is not known to the S3 server: check the S3 credentials Secret",
            "SignatureDoesNotMatch": "the secret key is wrong: check the S3 credentials Secret",
            "AccessDenied": "the credentials lack permission for this bucket/prefix (`cnpg-pgdump-backup iam-policy` "
            "prints the policy they need)",
            "NoSuchKey": "no such object: list the backups with `cnpg-backup-worker list`",
            "404": "no such object: list the backups with `cnpg-backup-worker list`",
            "403": "S3 refused access: wrong credentials or no permission for this bucket",
            "Forbidden": "S3 refused access: wrong credentials or no permission for this bucket",
            "PreconditionFailed": "an object with this key appeared meanwhile (two backups in the same second?)",
        }
        return WorkerError(f"S3 {code} on {where}: {msg}".rstrip(": "), hint=hints.get(code))
    if isinstance(exc, errors.BotoCoreError):
        return WorkerError(f"S3 request for {where} failed: {exc}")
    return WorkerError(f"S3 request for {where} failed: {exc.__class__.__name__}: {exc}")
