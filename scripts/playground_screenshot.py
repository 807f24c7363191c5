"""Make README's docs/images/playground.png: the browser test's Generate and Inspect screenshots over RUN, cropped
and stacked, in 256 colours (well under 200 KB).

    python scripts/playground_screenshot.py RUN [--out docs/images/playground.png]

RUN was a `lmforge train --preset shakespeare-char-cpu --train.max_steps 400` run on tinyshakespeare.txt, when the
preset was 3 × 96.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "tmp" / "artifacts" / "playground"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run directory to serve")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "playground.png")
    args = parser.parse_args()
    env = {**os.environ, "LMFORGE_PLAYGROUND_RUN": str(args.run.resolve()), "LMFORGE_ARTIFACTS": str(SHOTS.parent),
           "PYTHONPATH": str(ROOT / "src")}
    test = ROOT / "tests" / "serving" / "test_playground_browser.py"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test), "-k",
                    "temperature or inspect"], env=env, cwd=ROOT, check=True)
    top = Image.open(SHOTS / "generate.png").convert("RGB").crop((0, 0, 1280, 515))  # the page, not the blank below
    bottom = Image.open(SHOTS / "inspect.png").convert("RGB").crop((0, 45, 1280, 740))  # without the header again
    both = Image.new("RGB", (1280, top.height + bottom.height), "white")
    both.paste(top, (0, 0))
    both.paste(bottom, (0, top.height))
    both.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(args.out, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
