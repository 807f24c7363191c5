"""`lmforge finetune`: continue training a run (or a local Hugging Face model) on instruction data.

It is the trainer (training/trainer.py) with three pieces swapped: the data are encoded
examples with a loss mask (adapt/instructions.py) instead of a token stream, the model starts
from the base's weights (with LoRA adapters beside them when `model.lora_rank` > 0), and an
eval scores the answers only (val loss, perplexity and bits per byte of the completion tokens;
train loss likewise on a fixed set of train examples). Everything else, checkpoints, exact
resume, curves, the best model, is the trainer's, so the new run is an ordinary run directory.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from lmforge.adapt.instructions import ChatTemplate, completion_text, encode_example, read_instructions
from lmforge.adapt.lora import adapter_state
from lmforge.config import Config
from lmforge.data.batches import IGNORE_INDEX
from lmforge.errors import LmforgeError
from lmforge.models import LanguageModel, build_model, next_token_loss
from lmforge.tokenizers.base import ScoredBytes
from lmforge.training.trainer import Trainer

FINETUNE_FILE, ADAPTER_FILE = "finetune.json", "adapter.safetensors"
Example = tuple[np.ndarray, np.ndarray]  # ids, and which ids are targets


def windows(ids: np.ndarray, trained: np.ndarray, block_size: int) -> list[Example]:
    """Rows that give every trained target the context decoding gives it. An example that fits the context is one
    row; a longer one is its first `block_size` + 1 tokens, then, for each answer token past them, a row of the
    `block_size` tokens before it, since decoding slides its window one token at a time (a row that kept only the
    example's end would start the prompt elsewhere than decoding does)."""
    if len(ids) <= block_size + 1:
        return [(ids, trained)]
    rows = [(ids[: block_size + 1], trained[: block_size + 1])]
    last_only = np.zeros(block_size + 1, dtype=bool)
    last_only[-1] = True
    rows += [(ids[t - block_size : t + 1], last_only) for t in range(block_size + 1, len(ids)) if trained[t]]
    return rows


def pad_examples(examples: list[Example], block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of the examples' rows (`windows`), right-padded; targets are IGNORE_INDEX at prompt
    tokens and padding."""
    rows = [row for ids, trained in examples for row in windows(ids, trained, block_size)]
    T = max(len(ids) for ids, _ in rows) - 1
    inputs = torch.zeros((len(rows), T), dtype=torch.int64)
    targets = torch.full((len(rows), T), IGNORE_INDEX, dtype=torch.int64)
    for r, (ids, trained) in enumerate(rows):
        target = np.where(trained[1:], ids[1:], IGNORE_INDEX)  # target j predicts token j + 1
        inputs[r, : len(ids) - 1], targets[r, : len(ids) - 1] = torch.from_numpy(ids[:-1]), torch.from_numpy(target)
    return inputs, targets


class InstructionFeed:
    """`batch_size` examples drawn at random each step with the trainer's generator (its state is the position)."""

    def __init__(self, rows: list[Example], batch_size: int, block_size: int, generator: torch.Generator):
        self.rows, self.batch_size, self.block_size, self.generator = rows, batch_size, block_size, generator

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        picks = torch.randint(len(self.rows), (self.batch_size,), generator=self.generator).tolist()
        return pad_examples([self.rows[i] for i in picks], self.block_size)

    def forward(self, model: torch.nn.Module, x: torch.Tensor, rows: slice) -> torch.Tensor:
        return model(x)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, parts: list[dict]) -> None:
        pass


@torch.inference_mode()
def answer_loss(model: LanguageModel, rows: list[Example], block_size: int, batch_size: int, device: torch.device,
                eos_id: int) -> tuple[float, int, float]:
    """Summed nats over the answer tokens, their count, and the nats of those that are not EOS (bits per byte)."""
    was_training = model.training
    model.eval()
    nats = text_nats = 0.0
    count = 0
    for lo in range(0, len(rows), batch_size):
        x, y = (t.to(device) for t in pad_examples(rows[lo : lo + batch_size], block_size))
        per_token = next_token_loss(model(x), y, reduction="none").view_as(y)
        nats += per_token.sum().item()
        text_nats += per_token[y != eos_id].sum().item()
        count += int((y != IGNORE_INDEX).sum())
    model.train(was_training)
    return nats, count, text_nats


class FinetuneTrainer(Trainer):
    """The trainer over instruction examples, starting from `base_state` (None when resuming)."""

    def __init__(self, cfg: Config, out_dir: Path, tokenizer, train: list, val: list, template: ChatTemplate,
                 base_state: dict[str, torch.Tensor] | None, resume: bool = False):
        self.examples, self.template, self.base_state = (train, val), template, base_state
        super().__init__(cfg, out_dir, tokenizer=tokenizer, resume=resume)

    def _load_data(self, text: str | None, tokenizer) -> None:
        self.tokenizer, (train, val) = tokenizer, self.examples
        self.train_rows = [encode_example(tokenizer, e, self.template) for e in train]
        self.val_rows = [encode_example(tokenizer, e, self.template) for e in val]
        self.train_ids = np.concatenate([ids for ids, _ in self.train_rows])  # what the checkpoint fingerprints
        self.val_ids = np.concatenate([ids for ids, _ in self.val_rows])
        self.val_bytes = ScoredBytes(sum(len(completion_text(e, self.template).encode()) for e in val))
        self.documents = True

    def _new_model(self) -> LanguageModel:
        """The base model with the base's weights, then (LoRA) its adapters; resuming, the checkpoint's weights."""
        plain = self.cfg.model.model_copy(update={"lora_rank": 0})
        model = build_model(plain, self.tokenizer.vocab_size)
        if self.base_state is not None:
            model.load_state_dict(self.base_state)
        if self.cfg.model.lora_rank:
            from lmforge.adapt.lora import add_lora

            m = self.cfg.model
            add_lora(model, m.lora_rank, m.lora_alpha, m.lora_dropout, m.lora_targets)
        return model

    def _training_feed(self):
        return InstructionFeed(self.train_rows, self.cfg.train.batch_size, self.cfg.model.block_size,
                               self.state.batch_gen)

    def evaluate(self) -> dict[str, float]:
        t, block, eos = self.cfg.train, self.cfg.model.block_size, self.tokenizer.eos_id
        nats, count, text_nats = answer_loss(self.model, self.val_rows, block, t.eval_batch_size, self.device, eos)
        fixed = random.Random(t.seed).sample(self.train_rows, min(len(self.train_rows), 256))
        train_nats, train_count, _ = answer_loss(self.model, fixed, block, t.eval_batch_size, self.device, eos)
        loss = nats / max(count, 1)
        return {"train_loss": train_nats / max(train_count, 1), "val_loss": loss, "val_ppl": math.exp(min(loss, 700)),
                "val_bpb": text_nats / math.log(2) / max(self.val_bytes.bytes, 1), "val_tokens": count}

    def _save_best(self) -> None:
        super()._save_best()
        if self.cfg.model.lora_rank and self.dist.is_main:  # the adapters alone, kilobytes, to share
            save_file(adapter_state(self.model), str(self.out_dir / ADAPTER_FILE))


def split_examples(examples: list, val_examples: list | None, seed: int) -> tuple[list, list]:
    """Train and val: the given val file, or a held-out 10% (at least one example)."""
    if val_examples is not None:
        return examples, val_examples
    if len(examples) < 2:
        raise LmforgeError("fine-tuning needs at least 2 examples (one to hold out for val), or pass --val-data")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    cut = max(1, len(examples) // 10)
    return [examples[i] for i in order[cut:]], [examples[i] for i in order[:cut]]


def read_base(base: str | Path) -> tuple[Config, Any, dict[str, torch.Tensor]]:
    """The config, tokenizer and weights of a run directory or a local Hugging Face folder (GPT-2, Llama)."""
    from lmforge.interop.huggingface import is_hf_folder, read_hf
    from lmforge.run import load

    if is_hf_folder(base):
        ck = read_hf(base)
        return Config().updated({"model": ck.model.model_dump()}), ck.tokenizer, ck.state
    run = load(base, device="cpu")
    if run.config.model.lora_rank:
        raise LmforgeError(f"'{base}' is a LoRA run; fold its adapters in first with `lmforge merge {base} --out DIR`")
    return run.config, run.tokenizer, run.model.state_dict()


def init_from(source: str | Path, cfg: Config, out: str | Path) -> Trainer:
    """`lmforge train --init-from SOURCE`: a trainer whose model, tokenizer and first weights are SOURCE's (a run
    directory or a local Hugging Face folder); data, optimizer and schedule are `cfg`'s."""
    base, tokenizer, state = read_base(source)
    trainer = Trainer(cfg.updated({"model": base.model.model_dump()}), Path(out), tokenizer=tokenizer)
    trainer.model.load_state_dict(state)  # in place: the optimizers hold these very parameters
    return trainer


def with_eos(tokenizer, state: dict[str, torch.Tensor]) -> tuple[Any, dict[str, torch.Tensor]]:
    """A char tokenizer without EOS (a run on one text) gains one as a new last token, so a fine-tuned model can learn
    to stop; its embedding row (and head row) start as the mean of the others."""
    from lmforge.tokenizers.char import CharTokenizer

    if tokenizer.eos_id is not None or not isinstance(tokenizer, CharTokenizer):
        return tokenizer, state
    grown = CharTokenizer(tokenizer.chars, tokenizer.unknown, tokenizer.fallback,
                          {**tokenizer.special_text, "eos": "<|endoftext|>"})
    if grown.eos_id != tokenizer.vocab_size:
        return tokenizer, state  # specials already sit after the characters: encode_example says what is missing
    state = dict(state)
    for name in ("tok_emb.weight", "head.weight"):
        if name in state:
            state[name] = torch.cat([state[name], state[name].mean(0, keepdim=True)])
    return grown, state


def finetune(base: str | Path, data: str | Path, out: str | Path, overrides: dict[str, Any],
             val_data: str | Path | None = None) -> Trainer:
    """A trainer for fine-tuning `base` (a run directory or a local Hugging Face folder) on `data`."""
    config, tokenizer, state = read_base(base)
    tokenizer, state = with_eos(tokenizer, state)
    examples = read_instructions(data)
    template = ChatTemplate.for_examples(examples)
    train, val = split_examples(examples, read_instructions(val_data, "--val-data") if val_data else None,
                              config.train.seed)
    first_prompt = "".join(text for text, trained in (template.segments(val[0]) if isinstance(val[0][0], dict)
                                                      else val[0]) if not trained)
    defaults = {"train.lr": 3e-4, "train.min_lr": 3e-5, "train.warmup_steps": 10, "train.max_steps": 300,
                "train.eval_interval": 50, "train.optimizer": "adamw", "train.eval_tokens": 0,
                "train.batch_size": 16, "train.grad_accum": 1, "train.patience": 0,
                "data.path": str(Path(data).resolve()), "sample.prompt": first_prompt, "sample.max_new_tokens": 40,
                "sample.temperature": 0.0}
    if overrides.get("model.lora_rank"):  # adapters are no hidden matrices (optim.py): nothing for decay to act on
        defaults["train.weight_decay"] = 0.0
    cfg = config.updated({**defaults, **overrides}, source="command line")
    out = Path(out)
    trainer = FinetuneTrainer(cfg, out, tokenizer, train, val, template, state)
    out.mkdir(parents=True, exist_ok=True)
    template.save(out)
    info = {"base": str(Path(base).resolve()), "data": str(Path(data).resolve()),
            "val_data": str(Path(val_data).resolve()) if val_data else None, "train_examples": len(train),
            "val_examples": len(val)}
    (out / FINETUNE_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return trainer


def resume_finetune(run_dir: str | Path, overrides: dict[str, Any]) -> Trainer:
    """The trainer of a fine-tuning run, continued from its newest checkpoint (its data read again from finetune.json)
    with `overrides` over its config."""
    from lmforge.tokenizers.base import load_tokenizer
    from lmforge.training.run_dir import CONFIG_FILE, TOKENIZER_FILE

    run_dir = Path(run_dir)
    if not (run_dir / FINETUNE_FILE).is_file():
        raise LmforgeError(f"'{run_dir}' is not a fine-tuning run (no {FINETUNE_FILE}); resume it with "
                           f"`lmforge train --resume {run_dir}`")
    cfg = Config.from_file(run_dir / CONFIG_FILE).updated(overrides)
    info = json.loads((run_dir / FINETUNE_FILE).read_text(encoding="utf-8"))
    val = read_instructions(info["val_data"]) if info["val_data"] else None
    train, val = split_examples(read_instructions(info["data"]), val, cfg.train.seed)
    template = ChatTemplate.load(run_dir) or ChatTemplate()
    return FinetuneTrainer(cfg, run_dir, load_tokenizer(run_dir / TOKENIZER_FILE), train, val, template, None,
                           resume=True)


def merge_run(run_dir: str | Path, out: str | Path) -> Path:
    """A LoRA run with its adapters folded into the weights: an ordinary run (no adapters) in `out`."""
    import shutil

    from lmforge.adapt.lora import merge_lora
    from lmforge.run import load
    from lmforge.training.run_dir import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, check_out_dir, save_weights

    run = load(run_dir, device="cpu")
    if not run.config.model.lora_rank:
        raise LmforgeError(f"'{run_dir}' has no LoRA adapters to merge (its model.lora_rank is 0)")
    out = Path(out)
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    merge_lora(run.model)
    save_weights(run.model, out / MODEL_FILE)
    run.config.updated({"model.lora_rank": 0}).save(out / CONFIG_FILE)
    for name in (TOKENIZER_FILE, "chat_template.json", "metrics.jsonl", FINETUNE_FILE):
        if (Path(run_dir) / name).is_file():
            shutil.copy2(Path(run_dir) / name, out / name)
    return out
