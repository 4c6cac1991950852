#!/usr/bin/env bash
# Every check, as CI runs it: the Prometheus tools and kubectl the tests need, then lint, format, types, tests, all with
# the project's .venv (made by `scripts/setup.sh --dev`). Arguments go to pytest. pytest's exit code 5 (no
# tests ran) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export GRPC_VERBOSITY="${GRPC_VERBOSITY:-NONE}"

if [ ! -x .venv/bin/pytest ] || [ ! -x .venv/bin/ruff ] || [ ! -x .venv/bin/mypy ]; then
  echo "check: no .venv with the dev packages: run scripts/setup.sh --dev first" >&2
  exit 1
fi
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"

scripts/prometheus-tools.sh || exit 1
scripts/kubectl.sh || exit 1
ruff check . || exit 1
ruff format --check . || exit 1
mypy || exit 1
python3 -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
