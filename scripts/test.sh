#!/usr/bin/env bash
# Set up (if needed) and run the test suite: fast tests by default; `-m slow` for the slow ones.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest "$@"
