"""The identity the worker pods run as (annotate it for IRSA / workload identity)."""

from __future__ import annotations

from constructs import Construct

from app import naming
from app.config import Config
from imports import k8s


class WorkerServiceAccount(Construct):
    def __init__(self, scope: Construct, id: str, *, cfg: Config) -> None:
        super().__init__(scope, id)
        self.name = naming.service_account_name(cfg)
        self.service_account = k8s.KubeServiceAccount(
            self,
            "serviceaccount",
            metadata=k8s.ObjectMeta(
                name=self.name,
                labels=naming.labels(cfg, "service-account"),
                annotations=dict(cfg.service_account.annotations) or None,
            ),
            # The worker never calls the Kubernetes API; token projection for IRSA is separate.
            automount_service_account_token=False,
        )
