#!/usr/bin/env bash
# Set up, then run the whole test suite: unit, golden, checker and lab tiers.
# Extra arguments go to pytest (e.g. -m "not lab", -k haproxy).
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/setup.sh
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
