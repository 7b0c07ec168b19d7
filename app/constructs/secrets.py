"""S3 credentials: the managed Secret when the config carries literal keys (which Secret the pods
read: app/pod_props.py `s3_credentials`)."""

from __future__ import annotations

import base64
import dataclasses

from constructs import Construct
from pydantic import SecretStr

from ..bindings import k8s


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


@dataclasses.dataclass(frozen=True)
class ManagedS3SecretProps:
    """The managed S3 Secret: its name, labels and the literal keys it holds."""

    name: str
    labels: dict[str, str]
    access_key_id: SecretStr
    secret_access_key: SecretStr


class ManagedS3Secret(Construct):
    """The Secret generated from literal s3.accessKeyId/secretAccessKey (discouraged: synth warns)."""

    def __init__(self, scope: Construct, id: str, *, props: ManagedS3SecretProps) -> None:
        super().__init__(scope, id)
        self.secret = k8s.KubeSecret(
            self,
            "secret",
            metadata=k8s.ObjectMeta(name=props.name, labels=props.labels),
            type="Opaque",
            # `data`, not `stringData`: the server stores only `data`, so with `stringData`
            # every `kubectl apply` finds a difference, reports `configured` and patches again.
            data={
                "AWS_ACCESS_KEY_ID": _b64(props.access_key_id.get_secret_value()),
                "AWS_SECRET_ACCESS_KEY": _b64(props.secret_access_key.get_secret_value()),
            },
        )
