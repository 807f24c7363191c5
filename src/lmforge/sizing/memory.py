"""The training memory of one process: weights, gradients, optimizer state, activations; and the device's free memory.

Weights, gradients and optimizer state follow from the parameter count: float32
master weights (autocast computes in 16 bits but keeps them in 32), one gradient
per trainable parameter, and per parameter two AdamW moments or, for the hidden
matrices Muon takes, one momentum. DDP adds its gradient buckets (a second copy
of the gradients); FSDP divides weights, gradients and state by the number of
processes but gathers whole blocks around each use.

Activations are what autograd keeps from the forward pass for the backward one,
per token of a micro-batch (batch_size / grad_accum / processes rows of
block_size tokens). Counts are in values per token, measured on this code with
`torch.autograd.graph.saved_tensors_hooks` on a CPU (tests/sizing checks them):

- transformer, per layer: 8·C (norm inputs and outputs, q/k/v, the attention
  output) plus the MLP's 2 × hidden (4 × hidden for SwiGLU's gate and value);
  rope adds 3·C, RMSNorm 1·C per norm (it is not one fused kernel), QK-norm
  3·C (5·C with RMSNorm), explicit attention its n_head × T attention weights
  (the fused kernel keeps none);
- LSTM 17·C per layer, GRU 8·C, Elman 2·C (PyTorch's CPU kernels);
- after the layers: the final features (2·C) and the log-probabilities (V);
- at the peak, in backward: the logits the step still holds (V), the gradients
  of the log-probabilities and of the logits (2·V), and the MLP's backward
  temporaries (1 × hidden; 3 × hidden for ReLU², whose square and ReLU are
  separate kernels). These are measured as peak RSS (tests/sizing).

Dropout adds masks and copies (about 2.5·C per layer, not measured). In 16-bit
autocast the layers' activations take 2 bytes, but the norms keep theirs in
float32, as the residual stream they read is (their inputs, 2·C per layer, and
RMSNorm's normalized copies, 2·C more; measured under a CPU's bfloat16 autocast),
and the logits take 4 (the loss is computed in float32). Autocast's 16-bit copies
of the weights, kept for backward, are left out: they are freed as the gradients
arrive, which take twice their room. The total is the sum at the peak, which lies
at the start of backward of a step after the first (the optimizer state exists
by then).

On a CPU, peak RSS is above the live tensors: activations smaller than glibc's
mmap threshold (which grows to 32 MiB once big blocks are freed) come from its
heap, and what backward frees there stays in the process. On the shapes of
tests/sizing that added 20-35% of the layers' activations, so the estimate adds
30% of them ("CPU allocator slack") for a transformer (an LSTM's peak showed
none); tensors above 32 MiB are mapped and returned, so a shape that large gets
none either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from lmforge.config import Config
from lmforge.models.base import LanguageModel
from lmforge.training.optim import hidden_matrices

GATES = {"lstm": 17, "gru": 8, "elman": 2}  # saved values per token per layer, in units of C (measured)
HEAP_SLACK = 0.3  # glibc's heap on freed activations: peak RSS was 1.2-1.35x the live tensors (tests/sizing)
MMAP_MAX = 32 * 2**20  # glibc serves allocations above its (dynamic) mmap threshold, at most this, by mmap
MiB = 2**20


@dataclass
class Item:
    name: str
    bytes: int
    note: str = ""


@dataclass
class Memory:
    items: list[Item]
    processes: int
    eval_bytes: int  # an eval's forward pass beside the weights: logits and the largest hidden tensor
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(i.bytes for i in self.items)

    @property
    def eval_total(self) -> int:
        return sum(i.bytes for i in self.items if i.name == "weights") + self.eval_bytes

    @property
    def peak(self) -> int:
        return max(self.total, self.eval_total)


def activation_values(cfg: Config, vocab_size: int) -> tuple[float, float, float, float]:
    """Values per token, as the module docstring counts them: (saved by the layers, the MLP's backward temporaries,
    after the layers at the peak: features, logits and their gradients; of the layers' saved values, those the norms
    keep in float32 under 16-bit autocast)."""
    m, C, V = cfg.model, cfg.model.n_embd, vocab_size
    if m.family == "rnn":
        return float(GATES[m.rnn_cell] * C * m.n_layer), 0.0, float(2 * C + 4 * V), 0.0
    if m.family != "transformer":
        return 0.0, 0.0, 0.0, 0.0
    hidden = 8 * -(-8 * C // 3 // 8) if m.mlp == "swiglu" else 4 * C
    per_layer = 8 * C + (4 if m.mlp == "swiglu" else 2) * hidden
    per_layer += 3 * C if m.positions == "rope" else 0
    per_layer += 2 * C if m.norm == "rmsnorm" else 0
    per_layer += (5 if m.norm == "rmsnorm" else 3) * C if m.qk_norm else 0
    per_layer += m.n_head * m.block_size if m.attention == "explicit" else 0
    per_layer += 2.5 * C if m.dropout > 0 else 0
    backward = (3 if m.mlp == "relu2" else 1) * hidden
    norms = (4 if m.norm == "rmsnorm" else 2) * C  # two norms: each one's input, and RMSNorm's normalized copy
    return float(per_layer * m.n_layer), float(backward), float(2 * C + 4 * V), float(norms * m.n_layer)


def activation_bytes(cfg: Config, vocab_size: int, value_bytes: int) -> float:
    """Bytes per token at the peak: the layers' values at `value_bytes` each (2 under 16-bit autocast) except those
    the norms keep in float32, and the head's in float32."""
    saved, backward, head, norms = activation_values(cfg, vocab_size)
    return (saved + backward - norms) * value_bytes + (norms + head) * 4


def estimate(cfg: Config, model: LanguageModel, processes: int = 1) -> Memory:
    """Training memory per process, for `model` (built on the meta device) as `cfg` trains it."""
    m, t = cfg.model, cfg.train
    V = model.vocab_size
    if model.fitted_by_counts:
        return _counting()
    params = sum(p.numel() for p in model.parameters())
    trained = [p for p in model.parameters() if p.requires_grad]
    n_trained = sum(p.numel() for p in trained)
    muon = sum(p.numel() for p in hidden_matrices(model)) if t.optimizer == "muon" else 0
    state_values = muon + 2 * (n_trained - muon)
    shard = processes if t.parallel == "fsdp" and processes > 1 else 1
    half = t.dtype in ("bfloat16", "float16") or (t.dtype == "auto" and _auto_half(t.device))
    act_bytes = 2 if half else 4
    rows = max(t.batch_size // (t.grad_accum * processes), 1)
    tokens = rows * m.block_size
    layers = sum(activation_values(cfg, V)[:2])
    optimizer = "AdamW" if not muon else "Muon + AdamW"
    items = [
        Item("weights", 4 * params // shard, f"{params:,} float32" + (f", sharded over {shard}" if shard > 1 else "")),
        Item("gradients", 4 * n_trained // shard, f"{n_trained:,} trainable"),
        Item("optimizer state", 4 * state_values // shard,
             f"{optimizer}: " + (f"1 momentum × {muon:,} + " if muon else "") + f"2 moments × {n_trained - muon:,}"),
        Item("activations", int(tokens * activation_bytes(cfg, V, act_bytes)),
             f"{rows} rows × {m.block_size} tokens" + (f" (batch {t.batch_size} / grad_accum {t.grad_accum}"
                                                       + (f" / {processes} processes" if processes > 1 else "") + ")"
                                                       if rows != t.batch_size else "")
             + (", 2-byte values (the norms' 4)" if half else ", 4-byte values")),
    ]
    hidden_tensor = tokens * 4 * m.n_embd * act_bytes  # the MLP's hidden activations of one layer
    if m.family == "transformer" and _on_cpu(t.device) and hidden_tensor < MMAP_MAX:  # the RNN's peak showed none
        items.append(Item("CPU allocator slack", int(HEAP_SLACK * tokens * layers * act_bytes),
                          f"{HEAP_SLACK:.0%} of the layers' activations: freed, but kept in the C heap"))
    if processes > 1 and t.parallel == "ddp":
        items.append(Item("DDP gradient buckets", 4 * n_trained, "a second copy of the gradients"))
    if shard > 1:
        blocks = getattr(model, "blocks", [])
        block = max((sum(p.numel() for p in b.parameters()) for b in blocks), default=0)
        root = params - sum(sum(p.numel() for p in b.parameters()) for b in blocks)
        items.append(Item("FSDP gathered weights", 4 * (2 * block + root),
                          "two whole blocks (one prefetched) and the unsharded rest"))
    eval_rows = t.eval_batch_size
    eval_values = 3 * V + 5 * m.n_embd  # logits, log-probabilities and their float32 copy; a block's widest tensor
    return Memory(items, processes, int(eval_rows * m.block_size * eval_values * 4))


def _on_cpu(device: str) -> bool:
    return device == "cpu" or device == "auto" and not torch.cuda.is_available()


def _auto_half(device: str) -> bool:
    """Whether `--train.dtype auto` means bfloat16 here, as device.resolve_dtype decides (a CUDA GPU that has it; a
    CUDA device named on a machine without one is planned as one that has it), without touching any other device."""
    if not (device.startswith("cuda") or device == "auto" and torch.cuda.is_available()):
        return False
    return not torch.cuda.is_available() or torch.cuda.is_bf16_supported()


def _counting() -> Memory:
    """An n-gram's counting pass: int64 keys of every train token and `np.unique`'s sorted copy and counts."""
    return Memory([], 1, 0, notes=["an n-gram is counted in one pass; it holds about 32 bytes per train token while "
                                   "counting (int64 ids, keys, and np.unique's sorted copy), then its tables"])


# ------------------------------------------------------------------ what the device has free


def free_memory(device: str) -> tuple[str, int | None]:
    """(the device's name, its free bytes now; None when unknown): CUDA's free memory, or the CPU's available RAM."""
    if device.startswith("cuda") or device == "auto" and torch.cuda.is_available():
        index = torch.device(device if device != "auto" else "cuda")
        free, _ = torch.cuda.mem_get_info(index)
        return f"{torch.cuda.get_device_name(index)} ({index})", int(free)
    return "CPU RAM", available_ram()


def available_ram() -> int | None:
    """MemAvailable from /proc/meminfo (Linux): what can be allocated without swapping; else free pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
