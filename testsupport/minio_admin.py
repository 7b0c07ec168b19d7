"""MinIO users with exactly one IAM policy, through MinIO's admin API (the `minio` SDK's MinioAdmin,
which signs and encrypts the admin requests as `mc admin` does)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


class MinioUsers:
    def __init__(self, minio: Any) -> None:
        from minio import MinioAdmin
        from minio.credentials import StaticProvider

        self.minio = minio
        self.admin = MinioAdmin(
            endpoint=minio.endpoint.split("://", 1)[1],
            credentials=StaticProvider(minio.access_key, minio.secret_key),
            secure=False,
        )
        self.created: list[tuple[str, str]] = []

    def add(self, user: str, secret: str, policy_name: str, policy: dict[str, Any]) -> dict[str, str]:
        """A user whose only policy is `policy`; returns the worker's AWS_* credentials for it."""
        self.admin.policy_add(policy_name, policy=policy)
        self.admin.user_add(user, secret)
        self.admin.attach_policy([policy_name], user=user)
        self.created.append((user, policy_name))
        return {"AWS_ACCESS_KEY_ID": user, "AWS_SECRET_ACCESS_KEY": secret}

    def client(self, creds: dict[str, str]) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.minio.endpoint,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def remove_all(self) -> None:
        for user, policy_name in self.created:
            self.admin.detach_policy([policy_name], user=user)
            self.admin.user_remove(user)
            self.admin.policy_remove(policy_name)
        self.created.clear()
