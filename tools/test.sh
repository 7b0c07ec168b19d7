#!/usr/bin/env bash
# The project's test command: a fresh virtualenv with the test dependencies, then pytest.
# Extra arguments go to pytest (e.g. `tools/test.sh tests/app -q`).
set -euo pipefail
cd "$(dirname "$0")/.."
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
.venv/bin/pip install -q -e '.[test,bench]'
bash tools/install-servers.sh >/dev/null
exec .venv/bin/pytest "$@"
