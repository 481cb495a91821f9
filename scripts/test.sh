#!/usr/bin/env bash
# Set up, type-check with mypy, then run the whole test suite: unit, golden, checker and lab tiers.
# Extra arguments go to pytest (e.g. -m "not lab", -k haproxy).
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The type gate: mypy reads its settings (and the haops files) from pyproject.toml.
if ! .venv/bin/python -m mypy; then
  echo "test: mypy found type errors" >&2
  exit 1
fi
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
