"""A language model as a classifier: a linear head on the hidden state of the last real token.

A causal model's hidden state at the last token has read the whole text, so a linear map
from it to one score per class is the smallest classifier a language model makes. The
hidden state is the input of the model's output head (after the final norm), caught with a
forward pre-hook, so any family with an output head works unchanged (transformer, RNN).

What trains (`mode`): `head` (the body frozen: a linear probe of what pretraining learned),
`lora` (adapters in the body too, adapt/lora.py) or `full` (every weight). A trained
classifier is a folder: `classifier.json` (base run, labels, mode, LoRA settings) and
`classifier.safetensors` (the head, plus the adapters or the body when they trained).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from lmforge.adapt.lora import DEFAULT_TARGETS, add_lora
from lmforge.errors import LmforgeError
from lmforge.paths import utf8_lines

MODES = ("head", "lora", "full")
SPEC_FILE, WEIGHTS_FILE = "classifier.json", "classifier.safetensors"


@dataclass
class ClassifierSpec:
    base: str  # the run directory whose model is the body
    labels: list[str]
    mode: str = "head"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))


class Classifier(nn.Module):
    def __init__(self, body: nn.Module, n_classes: int):
        super().__init__()
        head = body.output_head()
        if not isinstance(head, nn.Linear):
            raise LmforgeError(f"a {body.family} model has no hidden state to classify from; use a transformer or rnn run")
        self.body, self.head = body, nn.Linear(head.in_features, n_classes)
        self._hidden: torch.Tensor | None = None
        head.register_forward_pre_hook(lambda _, args: setattr(self, "_hidden", args[0]))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class scores (B, K) for right-padded `ids` (B, T) whose rows hold `lengths` real tokens."""
        self.body(ids)
        last = self._hidden[torch.arange(ids.size(0), device=ids.device), lengths - 1]  # (B, C)
        return self.head(last)


def read_examples(path: str | Path, flag: str = "--data") -> list[tuple[str, str]]:
    """(text, label) pairs of a JSONL file with `text` and `label` fields, or a one-line error."""
    rows = read_fields(path, ("text", "label"), flag)
    if len({label for _, label in rows}) < 2:
        raise LmforgeError(f"'{path}' needs examples of at least two labels to classify between")
    return rows


def read_fields(path: str | Path, keys: tuple[str, ...], flag: str = "--data") -> list[tuple[str, ...]]:
    """The `keys` of each line of a JSONL file (given by `flag`), as strings, or a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"{flag} '{path}' does not exist; pass a JSONL file of objects with "
                           f"{' and '.join(repr(k) for k in keys)}")
    rows = []
    for n, line in enumerate(utf8_lines(path, flag), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append(tuple(str(row[k]) for k in keys))
        except (ValueError, KeyError, TypeError):
            raise LmforgeError(f"'{path}' line {n} is not a JSON object with {' and '.join(repr(k) for k in keys)}; "
                               "fix that line") from None
    return rows


def encode_batch(tokenizer, texts: list[str], context: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (each text's first `context` tokens; an empty text becomes EOS or id 0) and lengths."""
    rows = [tokenizer.encode(t)[:context] or [tokenizer.eos_id or 0] for t in texts]
    ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    return ids.to(device), torch.tensor([len(r) for r in rows], device=device)


def build_classifier(spec: ClassifierSpec, device: str = "auto"):
    """The base run and a classifier over its model, set up for `spec.mode`."""
    from lmforge.run import load

    if spec.mode not in MODES:
        raise LmforgeError(f"--mode '{spec.mode}' is not one of {', '.join(MODES)}")
    run = load(spec.base, device=device)
    model = Classifier(run.model, len(spec.labels))
    if spec.mode == "head":
        run.model.requires_grad_(False)
    elif spec.mode == "lora":
        add_lora(run.model, spec.lora_rank, spec.lora_alpha, targets=spec.lora_targets)
    return run, model.to(run.device)


def train_classifier(spec: ClassifierSpec, examples: list[tuple[str, str]], epochs: int = 3, lr: float = 1e-3,
                     batch_size: int = 32, seed: int = 0, device: str = "auto"):
    """Fit the classifier on `examples` with AdamW and cross-entropy; the run and the trained model."""
    torch.manual_seed(seed)
    run, model = build_classifier(spec, device)
    index = {label: i for i, label in enumerate(spec.labels)}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    order = list(range(len(examples)))
    model.train()
    for _ in range(epochs):
        random.Random(seed).shuffle(order)
        for lo in range(0, len(order), batch_size):
            batch = [examples[i] for i in order[lo : lo + batch_size]]
            ids, lengths = encode_batch(run.tokenizer, [t for t, _ in batch], run.model.context_size, run.device)
            target = torch.tensor([index[label] for _, label in batch], device=run.device)
            loss = F.cross_entropy(model(ids, lengths), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return run, model.eval()


@torch.no_grad()
def predict(run, model: Classifier, labels: list[str], texts: list[str], batch_size: int = 64) -> list[str]:
    out = []
    for lo in range(0, len(texts), batch_size):
        ids, lengths = encode_batch(run.tokenizer, texts[lo : lo + batch_size], run.model.context_size, run.device)
        out += [labels[i] for i in model(ids, lengths).argmax(-1).tolist()]
    return out


def save_classifier(model: Classifier, spec: ClassifierSpec, out: Path) -> None:
    """The head and whatever else trained (adapters, or the body in `full` mode); the frozen base is not copied."""
    out.mkdir(parents=True, exist_ok=True)
    state, seen = {}, set()
    for k, v in model.state_dict().items():
        if (spec.mode == "full" or k.startswith("head.") or ".lora_" in k) and v.data_ptr() not in seen:
            seen.add(v.data_ptr())  # a tied head is the embedding: saved once, tied again by the model on load
            state[k] = v.contiguous()
    save_file(state, str(out / WEIGHTS_FILE))
    (out / SPEC_FILE).write_text(json.dumps(asdict(spec), indent=1) + "\n", encoding="utf-8")


def load_classifier(folder: str | Path, device: str = "auto"):
    """The run, the classifier and its spec from a folder `save_classifier` wrote."""
    folder = Path(folder)
    if not (folder / SPEC_FILE).is_file():
        raise LmforgeError(f"'{folder}' holds no {SPEC_FILE}; train one with `lmforge classify train RUN_DIR --data "
                           f"FILE.jsonl --out {folder}`")
    spec = ClassifierSpec(**json.loads((folder / SPEC_FILE).read_text(encoding="utf-8")))
    run, model = build_classifier(spec, device)
    missing, unexpected = model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=False)
    if unexpected or any(k.startswith("head.") or ".lora_" in k for k in missing):
        raise LmforgeError(f"'{folder / WEIGHTS_FILE}' does not match its base run '{spec.base}'; retrain the classifier")
    return run, model.eval(), spec
