"""The identity the worker pods run as (annotate it for IRSA / workload identity)."""

from __future__ import annotations

import dataclasses

from constructs import Construct

from ..bindings import k8s


@dataclasses.dataclass(frozen=True)
class ServiceAccountProps:
    """The worker pods' ServiceAccount: name, labels, annotations."""

    name: str
    labels: dict[str, str]
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)  # e.g. IRSA's role-arn


class WorkerServiceAccount(Construct):
    """The ServiceAccount the worker pods run as, without an API token (the worker never calls the
    Kubernetes API); annotate it for IRSA / workload identity."""

    def __init__(self, scope: Construct, id: str, *, props: ServiceAccountProps) -> None:
        super().__init__(scope, id)
        self.name = props.name
        self.service_account = k8s.KubeServiceAccount(
            self,
            "serviceaccount",
            metadata=k8s.ObjectMeta(name=props.name, labels=props.labels, annotations=props.annotations or None),
            # The worker never calls the Kubernetes API; token projection for IRSA is separate.
            automount_service_account_token=False,
        )
