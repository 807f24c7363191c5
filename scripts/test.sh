#!/usr/bin/env bash
# Set up (if needed) and run the test suite.
#   bash scripts/test.sh            fast tests (pytest's default here: -m 'not slow')
#   bash scripts/test.sh -m slow    the slow ones; any other pytest arguments pass through
#   bash scripts/test.sh --all      what CI runs: fast and slow tests, skip reasons printed, and a test
#                                   skipped for any reason but a missing GPU fails the run
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = "--all" ]; then
  shift
  export LMFORGE_NO_SKIPS=1
  set -- -m "slow or not slow" -rs --durations=15 "$@"
fi
.venv/bin/python -m pytest "$@"
