#!/usr/bin/env bash
# Lints the GitHub Actions workflows (.github/workflows/*.yml) with actionlint, which also hands
# their `run:` scripts to shellcheck. actionlint is built from source with `go install` into a cache
# outside the repo keyed by version (a warm machine skips the build); shellcheck comes from the
# distribution's packages when it is not on PATH. Exits non-zero on any finding.
# Usage: tools/actionlint.sh [workflow files...]   (no argument: every .github/workflows/*.yml)
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_VERSION="v1.7.12"
CACHE="${CNPG_TOOLS_CACHE:-/var/cache/cnpg-pgdump-backup}"
dir="$CACHE/actionlint-$ACTIONLINT_VERSION"
log() { echo "[actionlint] $*" >&2; }

if [ ! -x "$dir/actionlint" ]; then
  go=$(command -v go || echo /usr/local/go/bin/go)
  log "building actionlint $ACTIONLINT_VERSION with $("$go" version)"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  GOTOOLCHAIN=local GOBIN="$dir.tmp" "$go" install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
fi

# Without shellcheck actionlint silently skips the `run:` scripts: install it rather than lint less.
if ! command -v shellcheck >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  log "installing shellcheck"
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >&2; then
    $sudo apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >&2
  fi
fi

if [ "$#" -eq 0 ]; then
  set -- .github/workflows/*.yml
fi
version=$("$dir/actionlint" -version)
log "actionlint ${version%%$'\n'*}, shellcheck $(shellcheck --version | sed -n 's/^version: //p'); checking: $*"
"$dir/actionlint" -no-color -shellcheck="$(command -v shellcheck)" "$@"
log "no findings"
