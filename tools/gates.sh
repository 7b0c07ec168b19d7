#!/usr/bin/env bash
# Style and type gates (configured in pyproject.toml): formatting, lint (pyflakes, bugbear, pyupgrade,
# isort) and mypy --strict on app/ and worker/. tools/test.sh runs them before the tests.
# `tools/gates.sh --fix` applies what ruff can fix itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fix" ]; then
  .venv/bin/ruff format .
  .venv/bin/ruff check --fix .
fi
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
