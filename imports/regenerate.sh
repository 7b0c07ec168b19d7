#!/usr/bin/env bash
# Regenerate imports/k8s (the typed Kubernetes 1.33 API classes) without internet access.
#
#   imports/regenerate.sh
#
# cdk8s-cli downloads the Kubernetes OpenAPI schema from a fixed internet address and has no
# option for a local file; ../shared/k8s-schema/cdk8s-offline-schema.js is a Node preload that
# answers exactly that request from a local copy (CDK8S_K8S_SCHEMA_DIR). The output is
# deterministic, so the result is committed and this script only runs on a version bump.
#
# Overridable: CDK8S_K8S_SCHEMA_DIR (folder holding v<X.Y.Z>/_definitions.json), K8S_VERSION.
#
# The bindings are imported under the module name `cnpg_pgdump_backup` (`NAME:=k8s@X.Y.Z`), which
# makes their jsii assembly `cnpg_pgdump_backup_k8s` instead of `k8s`, and moved to imports/k8s (the
# generated Python is location-independent). A user's cdk8s project that installs this library has
# its own `k8s` assembly: two assemblies of one name in one process share jsii's type registry, and
# the objects one binding's factories return (k8s.Quantity, k8s.IntOrString) fail the other
# binding's type checks (tests/app/test_library.py).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
schema_dir="${CDK8S_K8S_SCHEMA_DIR:-$repo_root/../shared/k8s-schema}"
k8s_version="${K8S_VERSION:-1.33.0}"

if [[ ! -f "$schema_dir/cdk8s-offline-schema.js" || ! -f "$schema_dir/v$k8s_version/_definitions.json" ]]; then
  echo "regenerate.sh: no offline schema for Kubernetes $k8s_version under $schema_dir" >&2
  echo "  (expected cdk8s-offline-schema.js and v$k8s_version/_definitions.json; set CDK8S_K8S_SCHEMA_DIR)" >&2
  exit 1
fi

# The project's one installer pins and caches cdk8s-cli; it prints `export CNPG_CDK8S_CLI=...`.
eval "$(bash "$repo_root/tools/install-servers.sh" cdk8s)"

export CDK8S_CHECK_UPGRADE=false
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
export CDK8S_K8S_SCHEMA_DIR="$schema_dir"
export NODE_OPTIONS="--require $schema_dir/cdk8s-offline-schema.js${NODE_OPTIONS:+ $NODE_OPTIONS}"

cd "$repo_root"
# Import into a scratch dir and swap, so a failed import never leaves a half-written imports/k8s.
scratch="$(mktemp -d "$repo_root/imports/.regen.XXXXXX")"
# `cdk8s import` adds the spec to cdk8s.yaml (and drops its comments): the committed one is put back.
cp cdk8s.yaml "$scratch/cdk8s.yaml.keep"
trap 'cp "$scratch/cdk8s.yaml.keep" cdk8s.yaml; rm -rf "$scratch"' EXIT
"$CNPG_CDK8S_CLI" import "cnpg_pgdump_backup:=k8s@$k8s_version" --language python --output "$scratch"
rm -rf "$repo_root/imports/k8s"
mv "$scratch/cnpg_pgdump_backup/k8s" "$repo_root/imports/k8s"
echo "regenerate.sh: wrote imports/k8s for Kubernetes $k8s_version" >&2
