"""cnpg-pgdump-backup generator: typed configuration -> Kubernetes manifests (cdk8s)."""

import os

# cdk8s runs on jsii, which prints a large deprecation banner on Node 20 at import time. These
# must be set before `cdk8s`/`imports.k8s` are first imported, so they live here, where every
# entry point (python -m app, main.py, tests) passes first. setdefault: a user can still opt in.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
