"""The built-in tasks (adapt/tasks.py), before and after adapting a model pretrained on the built-in corpus.

1. Instruction fine-tuning: the share of held-out years (last digit 3 or 7) whose question
   "Which president delivered the State of the Union of YEAR?" is answered exactly right
   (greedy decoding, the answer up to EOS or the end of the line), by the base model and by
   the fine-tuned one; the party questions likewise.
2. Classification: the century of a paragraph's address, a linear head on the base model
   (`lmforge classify train --mode head`), against the majority-class baseline.

    python benchmarks/adapt_tasks.py                      # trains the default preset first
    python benchmarks/adapt_tasks.py --base runs/default  # or adapts a run you have
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lmforge.adapt.tasks import write_tasks  # noqa: E402
from lmforge.run import load  # noqa: E402


def lmforge(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "lmforge", *argv], check=True, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"})


def answer_rate(run_dir: Path, rows: list[dict], kind: str) -> tuple[int, int]:
    run = load(run_dir, device="cpu")
    asked = [r for r in rows if r["prompt"].startswith("Which president" if kind == "president" else "Which party")]
    right = 0
    for r in asked:
        out = run.generate(r["prompt"], 30, greedy=True)[len(r["prompt"]):]
        right += out.split("\n")[0].strip() == r["completion"]
    return right, len(asked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="a run pretrained on the built-in corpus (default: train the default preset)")
    parser.add_argument("--steps", type=int, default=600, help="fine-tuning steps (600)")
    parser.add_argument("--lora-rank", type=int, default=0, help="fine-tune with LoRA adapters of this rank (0: full)")
    parser.add_argument("--classify-mode", default="head", choices=["head", "lora", "full"], help="what the classifier "
                        "trains (head)")
    parser.add_argument("--classify-epochs", type=int, default=5, help="classifier epochs (5)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lmforge-adapt-"))
    start = time.perf_counter()
    base = Path(args.base) if args.base else work / "base"
    if not args.base:
        lmforge("train", "--out", str(base))
    tasks = work / "tasks"
    write_tasks(tasks)
    tuned = work / "tuned"
    lmforge("finetune", str(base), "--data", str(tasks / "president.train.jsonl"), "--val-data",
            str(tasks / "president.test.jsonl"), "--out", str(tuned), "--train.max_steps", str(args.steps),
            "--train.eval_interval", str(max(args.steps // 4, 1)), "--train.lr", "1e-3",
            *(["--lora-rank", str(args.lora_rank)] if args.lora_rank else []))
    test = [json.loads(line) for line in (tasks / "president.test.jsonl").read_text().splitlines()]
    print("| model | president right (held-out years) | party right |\n| --- | ---: | ---: |")
    for name, run_dir in (("base (before fine-tuning)", base), (f"fine-tuned, {args.steps} steps", tuned)):
        (p, n), (q, m) = answer_rate(run_dir, test, "president"), answer_rate(run_dir, test, "party")
        print(f"| {name} | {p}/{n} = {p / n:.1%} | {q}/{m} = {q / m:.1%} |")
    clf = work / "century"
    lmforge("classify", "train", str(base), "--data", str(tasks / "century.train.jsonl"), "--test-data",
            str(tasks / "century.test.jsonl"), "--out", str(clf), "--mode", args.classify_mode, "--epochs", str(args.classify_epochs), "--lr", "3e-3")
    scores = json.loads((clf / "scores.json").read_text())
    train_labels = Counter(json.loads(line)["label"] for line in (tasks / "century.train.jsonl").read_text().splitlines())
    test_labels = [json.loads(line)["label"] for line in (tasks / "century.test.jsonl").read_text().splitlines()]
    majority = train_labels.most_common(1)[0][0]
    baseline = sum(label == majority for label in test_labels) / len(test_labels)
    print(f"\ncentury of a paragraph (--mode {args.classify_mode}, {args.classify_epochs} epochs) ({len(test_labels)} test paragraphs): classifier accuracy "
          f"{scores['accuracy']:.1%}, majority class ('{majority}') {baseline:.1%}")
    print((clf / "report.md").read_text())
    print(f"(files in {work}; {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
