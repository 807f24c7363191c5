"""The sizing table as text, and the setting that would make a too-large estimate fit."""

from __future__ import annotations

from lmforge.config import Config
from lmforge.errors import LmforgeError
from lmforge.sizing import Sizing, memory_of


def human(n: float, unit: str = "") -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {prefix}{unit}".rstrip()
    return f"{n:.3g} {unit}".rstrip()


def mib(n: float) -> str:
    return f"{n / 2**30:,.2f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def render(s: Sizing, free: tuple[str, int | None] | None = None) -> str:
    t, m = s.cfg.train, s.cfg.model
    lines = [f"{s.describe}; vocabulary {s.facts.vocab_size:,} ({s.facts.source})", ""]
    if s.ngram is not None:
        lines += _ngram(s)
    else:
        lines.append(f"{'parameters':<22}{'count':>14}  share")
        for p in s.parts:
            share = f"{p.params / s.params:6.1%}" if s.params else ""
            lines.append(f"  {p.name:<20}{p.params:>14,}  {p.note or share}")
        lines.append(f"  {'total':<20}{s.params:>14,}" + ("" if s.trainable == s.params else
                                                            f"  ({s.trainable:,} trainable)"))
        lines.append(f"  {'non-embedding':<20}{s.non_embedding:>14,}  (what compute per token scales with)")
        step_tokens = t.batch_size * m.block_size
        lines += ["", f"FLOPs per token: forward {human(s.flops.forward)}, training {human(s.flops.training)} "
                      f"(a step of {t.batch_size} × {m.block_size} tokens: {human(s.flops.training * step_tokens)}; "
                      f"{t.max_steps:,} steps: {human(s.flops.training * step_tokens * t.max_steps)})"]
    mem = s.memory
    where = f", per process of {mem.processes} ({t.parallel})" if mem.processes > 1 else ""
    if mem.items:
        lines += ["", f"training memory (estimate{where})"]
        lines += [f"  {i.name:<22}{mib(i.bytes):>12}  {i.note}" for i in mem.items]
        lines.append(f"  {'total':<22}{mib(mem.total):>12}")
        lines.append(f"  {'eval forward':<22}{mib(mem.eval_total):>12}  weights + {t.eval_batch_size} rows × "
                     f"{m.block_size} tokens of logits, no gradients (--train.eval_batch_size)")
    lines += [f"  {note}" for note in mem.notes]
    lines += ["", _eval_line(s)]
    if free is not None:
        lines.append(_free_line(s, free))
    return "\n".join(lines)


def _ngram(s: Sizing) -> list[str]:
    n = s.ngram
    how = "as fitted" if n.exact else "at most (known once fitted: min(V^k, train tokens))"
    lines = [f"no trained parameters: count tables, {how}", f"  {'order':<8}{'contexts':>16}{'continuations':>16}"]
    lines += [f"  {k:<8}{h:>16,}{e:>16,}" for k, h, e in n.entries]
    lines.append(f"  {n.numbers:,} stored numbers ({'' if n.exact else 'at most '}{mib(n.bytes)}, int64 and float64)")
    return lines


def _eval_line(s: Sizing) -> str:
    e = s.eval
    if e.val_tokens is None:
        what = "the whole val split (its length is known once the data is tokenized)"
    elif e.whole_split:
        what = f"the whole val split, {e.val_tokens:,} tokens (cap it with --train.eval_tokens N)"
    else:
        what = f"{e.val_tokens:,} val tokens (a fixed sample, --train.eval_tokens)"
    evals = f"{e.evals} eval" + ("s" if e.evals != 1 else "")
    line = f"each eval scores {what} and {e.train_tokens:,} train tokens; {evals} a run"
    if e.forward_flops is not None:
        line += f"; {human(e.forward_flops)}FLOP each"
    if e.seconds is not None:
        line += f", about {e.seconds:.2g} s at this run's measured training speed"
    return line


def _free_line(s: Sizing, free: tuple[str, int | None]) -> str:
    device, available = free
    if available is None:
        return f"free memory of {device}: unknown"
    peak = s.memory.peak
    if peak <= available:
        return f"fits: {mib(peak)} of {mib(available)} free on {device}"
    fix = advice(s.cfg, s.facts.vocab_size, available, s.memory.processes)
    return (f"warning: the estimate ({mib(peak)}) exceeds the {mib(available)} free on {device}; "
            + (fix or "no batch setting fits it: a smaller model (--model.n_embd, --model.n_layer) or more devices "
                      "(torchrun with --train.parallel fsdp)"))


def advice(cfg: Config, vocab_size: int, available: int, processes: int = 1) -> str | None:
    """The first setting, in the order that changes training least, whose estimate fits in `available` bytes."""
    t = cfg.train

    def fits(values: dict) -> bool:
        try:
            return memory_of(cfg.updated(values), vocab_size, processes).peak <= available
        except LmforgeError:
            return False

    base = memory_of(cfg, vocab_size, processes)
    if base.eval_total > available and base.total <= available:
        rows = t.eval_batch_size
        while rows > 1:
            rows //= 2
            if fits({"train.eval_batch_size": rows}):
                return f"lower --train.eval_batch_size to {rows} (evals only; training fits)"
        return None
    accum = t.grad_accum
    while t.batch_size % (accum * 2 * processes) == 0:
        accum *= 2
        if fits({"train.grad_accum": accum}):
            return (f"--train.grad_accum {accum} would fit it (micro-batches of {t.batch_size // accum // processes} "
                    f"rows, the same batch of {t.batch_size})")
    rows = t.batch_size
    while rows > 1:
        rows //= 2
        values = {"train.batch_size": rows, "train.grad_accum": 1}
        if fits(values):
            verb = "halve" if rows == t.batch_size // 2 else "lower"
            return f"{verb} --train.batch_size to {rows}" + (" (and --train.grad_accum 1)" if t.grad_accum > 1 else "") \
                + " to fit it"
    return None
