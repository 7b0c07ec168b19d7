#!/usr/bin/env bash
# The project's test command, README command 2, and what .ci/run calls: on a fresh machine it installs
# everything the tests talk to (cached outside the repo by version, so a warm machine skips the
# builds), runs the style and type gates, then pytest over every suite.
# Extra arguments go to pytest instead of the default whole run, and skip the gates
# (e.g. `tools/test.sh tests/app -q`).
set -euo pipefail
cd "$(dirname "$0")/.."
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
export CNPG_TOOLS_CACHE="${CNPG_TOOLS_CACHE:-/var/cache/cnpg-pgdump-backup}"
start=$(date +%s)
step() { echo "::: $(( $(date +%s) - start ))s $*" >&2; }

step "python dependencies (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
.venv/bin/pip install -q -e '.[test,bench]'

step "servers: MinIO, PostgreSQL 13-18, cdk8s-cli, etcd + kube-apiserver, promtool + pushgateway (cache: $CNPG_TOOLS_CACHE)"
bash tools/install-servers.sh >/dev/null

step "worker image (podman; cached by content hash)"
bash tools/build-image.sh >/dev/null

if [ $# -eq 0 ]; then
  step "gates: ruff format, ruff check, mypy --strict (tools/gates.sh)"
  bash tools/gates.sh
fi

step "pytest"
rc=0
.venv/bin/pytest "$@" || rc=$?
step "done"
exit $rc
