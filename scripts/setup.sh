#!/usr/bin/env bash
# Create .venv and install lmforge with its development extras.
# Where a CPU build of PyTorch lies on this machine's disk (pip's find-links), take it
# instead of downloading a several-GB CUDA build; elsewhere pip resolves torch>=2.4 as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "lmforge needs Python 3.10 or newer" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  LOCAL_TORCH=2.13.0
  if $PIP download --quiet --no-deps --no-index --dest "$(mktemp -d)" "torch==$LOCAL_TORCH" >/dev/null 2>&1; then
    $PIP install --quiet "torch==$LOCAL_TORCH"
  fi
fi
$PIP install --quiet -e '.[dev]'
