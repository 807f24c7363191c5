"""The guide's figures and tables, drawn from what lmforge commands wrote (run by docs/make_figures.py).

Each figure carries a footer with the command that made its numbers and the machine, so a
figure read alone says where it came from. PNGs are kept under 150 KB (small dpi, a palette).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURES = Path(__file__).resolve().parent / "figures"


def lmforge(*args: str) -> str:
    """Run an lmforge command in this process (no start-up cost) and return what it printed."""
    from lmforge.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([str(a) for a in args])
    if rc != 0:
        raise SystemExit(f"lmforge {' '.join(map(str, args))} exited {rc}")
    return out.getvalue()


def save(fig, name: str, command: str, machine: str) -> None:
    """Stamp the footer (command, machine) and write figures/NAME.png as a small palette PNG."""
    from PIL import Image

    fig.text(0.01, 0.005, f"made by: {command}\non: {machine}", fontsize=6.5, color="#555", va="bottom",
             family="monospace")
    fig.subplots_adjust(bottom=max(fig.subplotpars.bottom, 0.2))
    path = FIGURES / f"{name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)


def restamp(src: Path, name: str, command: str, machine: str, width: float = 9.0) -> None:
    """A PNG lmforge drew (curves, study, comparison...), redrawn with the footer."""
    image = plt.imread(src)
    h, w = image.shape[:2]
    fig = plt.figure(figsize=(width, width * h / w + 0.5))
    ax = fig.add_axes((0, 0.5 / (width * h / w + 0.5), 1, 1 - 0.5 / (width * h / w + 0.5)))
    ax.imshow(image)
    ax.axis("off")
    save(fig, name, command, machine)


def table(name: str, header: list[str], rows: list[list[object]], note: str = "") -> None:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    (FIGURES / f"{name}.md").write_text("\n".join(lines) + ("\n\n" + note if note else "") + "\n", encoding="utf-8")


# ---------------------------------------------------------------- chapter 1


def tokens_vocab(work: Path, machine: str) -> None:
    """Tokens per byte and embedding parameters against vocabulary size, for each tokenizer kind."""
    out = work / "figs" / "tokenizers"
    out.mkdir(parents=True, exist_ok=True)
    text = work / "tinyshakespeare.txt"
    grid = {"char": [None], "word": [1024, 2048, 4096, 8192], "bpe": [512, 1024, 2048, 4096, 8192]}
    results = {}
    for kind, sizes in grid.items():
        for size in sizes:
            path = out / f"{kind}-{size}.json"
            lmforge("tokenizer", "train", "--kind", kind, "--data", text, "--out", path,
                    *(["--vocab-size", size] if size else []))
            results.setdefault(kind, []).append(json.loads(lmforge("tokenizer", "inspect", path, "--data", text,
                                                                   "--json")))
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    for kind, rows in results.items():
        v = [r["vocab_size"] for r in rows]
        a.plot(v, [r["tokens_per_byte"] for r in rows], "o-", label=kind)
        b.plot(v, [r["embedding_params"]["384"] for r in rows], "o-", label=kind)
    for ax, title in ((a, "tokens per byte of text"), (b, "embedding parameters at n_embd 384")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("vocabulary size")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    b.set_yscale("log")
    a.legend()
    save(fig, "tokens-vocab", "lmforge tokenizer train --kind K --vocab-size V; lmforge tokenizer inspect --json "
         "(Tiny Shakespeare)", machine)
    table("tokens-vocab", ["kind", "vocabulary", "tokens per byte", "characters per token", "unknown tokens",
                           "embedding parameters (n_embd 384)"],
          [[kind, f"{r['vocab_size']:,}", f"{r['tokens_per_byte']:.3f}", f"{r['chars'] / r['tokens']:.2f}",
            f"{r['unknown_rate']:.1%}", f"{r['embedding_params']['384']:,}"] for kind, rows in results.items()
           for r in rows])


# ---------------------------------------------------------------- chapter 2


def last_eval(run: Path) -> dict:
    """The last eval record of a run's metrics.jsonl."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in records if r["event"] == "eval"][-1]


def ngram_orders(work: Path, machine: str) -> None:
    """Train and val bits per byte of character n-grams of order 1 to 10 (Tiny Shakespeare is ASCII: a character
    is a byte, so bits per byte is the loss over ln 2)."""
    rows = []
    for n in range(1, 11):
        out = work / "figs" / "ngrams" / f"order-{n}"
        if not (out / "metrics.jsonl").is_file():
            lmforge("train", "--preset", "compare-ngram", "--data", work / "tinyshakespeare.txt",
                    "--model.ngram_order", n, "--out", out)
        r = last_eval(out)
        rows.append((n, r["train_loss"] / math.log(2), r["val_bpb"]))
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", label="train text")
    ax.plot([r[0] for r in rows], [r[2] for r in rows], "o-", label="val text")
    ax.set_xlabel("order n (the context is n - 1 characters)")
    ax.set_ylabel("bits per byte")
    ax.grid(alpha=0.3)
    ax.legend()
    save(fig, "ngram-orders", "lmforge train --preset compare-ngram --data tinyshakespeare.txt --model.ngram_order N",
         machine)
    table("ngram-orders", ["order", "train bits/byte", "val bits/byte"],
          [[n, f"{t:.3f}", f"{v:.3f}"] for n, t, v in rows])


# ---------------------------------------------------------------- chapters 3 and 4


def embeddings(work: Path, machine: str) -> None:
    """The LSTM's character embeddings on their two main directions (PCA)."""
    import lmforge
    import torch

    run = lmforge.load(work / "runs" / "lstm")
    E = run.model.tok_emb.weight.detach().float()
    E = E - E.mean(0)
    _, _, v = torch.linalg.svd(E, full_matrices=False)
    xy = (E @ v[:2].T).numpy()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for i, (x, y) in enumerate(xy):
        ch = run.tokenizer.decode([i])
        kind = "C0" if ch.isupper() else "C1" if ch in "aeiou" else "C2" if ch.islower() else "C3"
        ax.text(x, y, repr(ch)[1:-1] or "?", color=kind, fontsize=9, ha="center", va="center")
    ax.set_xlim(xy[:, 0].min() - 0.3, xy[:, 0].max() + 0.3)
    ax.set_ylim(xy[:, 1].min() - 0.3, xy[:, 1].max() + 0.3)
    ax.set_title("character embeddings (first two principal components): capitals blue, vowels orange, "
                 "other lower case green, the rest red", fontsize=8)
    save(fig, "embeddings", "lmforge train --preset compare-rnn --data tinyshakespeare.txt --train.max_steps 300 "
         "--out runs/lstm; SVD of run.model.tok_emb.weight", machine)


def attention(work: Path, machine: str) -> None:
    """Every head's attention in every layer of runs/shakespeare over one line of a play."""
    import lmforge
    from lmforge.serving.inspection import attention_shape, attention_weights

    run = lmforge.load(work / "runs" / "shakespeare")
    text = "ROMEO:\nBut soft, what light through yonder window breaks?"
    shape = attention_shape(run)
    fig, axes = plt.subplots(shape["layers"], shape["heads"], figsize=(2.6 * shape["heads"], 2.7 * shape["layers"]))
    for layer in range(shape["layers"]):
        for head in range(shape["heads"]):
            got = attention_weights(run, text, layer, head, None)
            ax = axes[layer][head]
            ax.imshow(got["weights"], cmap="Blues", vmin=0, vmax=1)
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
            ticks = range(len(got["tokens"]))
            labels = [t.replace("\n", "⏎") for t in got["tokens"]]
            ax.set_xticks(ticks[::3], labels[::3], fontsize=5)
            ax.set_yticks(ticks[::3], labels[::3], fontsize=5)
    fig.suptitle("attention weights: row = the position predicting, column = the position attended to", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    save(fig, "attention", "lmforge train --preset shakespeare-char-cpu --data tinyshakespeare.txt "
         "--train.eval_interval 50 --out runs/shakespeare; lmforge.serving.inspection.attention_weights", machine)


# ---------------------------------------------------------------- chapters 5 to 8: what lmforge drew


def copies(*items: tuple[str, str, str]):
    """A figure function that redraws PNGs lmforge wrote in the guide's runs, with the footer."""
    def draw(work: Path, machine: str) -> None:
        for src, name, command in items:
            restamp(work / src, name, command, machine)
    draw.__name__ = "copies of " + ", ".join(i[1] for i in items)
    return draw


DRAW = {1: [tokens_vocab], 2: [ngram_orders], 3: [embeddings], 4: [attention],
        5: [copies(("runs/shakespeare/curves.png", "curves-shakespeare",
                    "lmforge train --preset shakespeare-char-cpu --data tinyshakespeare.txt --train.eval_interval 50 "
                    "--out runs/shakespeare"),
                   ("runs/overfit/curves.png", "curves-overfit",
                    "lmforge train --preset shakespeare-char-cpu --data small.txt (30 KB) --train.max_steps 400"))],
        6: [copies(("runs/shakespeare/evals/study.png", "study",
                    "lmforge study runs/shakespeare --prompts prompts.txt --samples 4 --max-new-tokens 100"))],
        8: [copies(("sweeps/width/sweep.png", "sweep-width",
                    "lmforge sweep --preset tiny --param model.n_embd=16,32,64 --tokens 40000"),
                   ("runs/century/confusion.png", "confusion-century",
                    "lmforge classify train runs/sotu --data tasks/century.train.jsonl --epochs 1"))]}


def draw_all(work: Path, numbers: set[int], machine: str) -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    for chapter, functions in sorted(DRAW.items()):
        if numbers and chapter not in numbers:
            continue
        for function in functions:
            print(f"drawing {function.__name__}", flush=True)
            function(work, machine)


