#!/usr/bin/env bash
# Every check, as CI runs it: the Prometheus tools the tests need, then lint, format, types, tests. Run
# inside the project's environment (`python3 -m pipenv run scripts/check.sh`). pytest's exit code 5 (no
# tests ran) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export GRPC_VERBOSITY="${GRPC_VERBOSITY:-NONE}"

scripts/prometheus-tools.sh || exit 1
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
