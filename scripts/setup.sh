#!/usr/bin/env bash
# Create .venv and install lmforge with its development extras (Playwright among them), and Debian's
# chromium, which the playground's browser test drives (tests/serving/test_playground_browser.py).
# Where a CPU build of PyTorch lies on this machine's disk (pip's find-links), take it
# instead of downloading a several-GB CUDA build; elsewhere pip resolves torch>=2.4 as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser test uses the system's Chromium, never a browser Playwright downloads; without it that test is
# skipped, which `scripts/test.sh --all` (CI) counts as a failure. LMFORGE_CHROMIUM names another binary.
if [ ! -x "${LMFORGE_CHROMIUM:-/usr/bin/chromium}" ]; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium
  else
    echo "no Chromium at /usr/bin/chromium and no apt-get: install Chromium and set LMFORGE_CHROMIUM to it" >&2
  fi
fi
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
