"""What the generated objects are called and which image they run: constants with no dependencies,
so every module (config, naming, rules) can import them without importing each other."""

from __future__ import annotations

CHART_NAME = "cnpg-pgdump-backup"
APP_VERSION = "0.1.0"
# Where the release workflow (.github/workflows/release.yml) publishes the worker image, tagged with
# the package version; the e2e tests override backup.image with the image they build locally.
IMAGE_REPOSITORY = "ghcr.io/cnpg-pgdump-backup/cnpg-pgdump-backup-worker"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{APP_VERSION}"
# The worker streams pg_dump -> compressor -> multipart upload, so scratch space stays small; the
# limit protects the node's disk (exceeding it evicts the pod). A custom-format restore stages its
# archive there: restore.tmpSizeLimit raises it for the restore pod.
DEFAULT_TMP_SIZE_LIMIT = "1Gi"
