#!/usr/bin/env bash
# The main job on a fresh machine: set up, train the default preset on the built-in corpus,
# then print a sample and the val perplexity.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lmforge train --out "runs/demo-$(date +%Y%m%d-%H%M%S)" "$@"
