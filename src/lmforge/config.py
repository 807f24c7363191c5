"""Typed configuration: one dataclass per section, named presets, YAML and overrides.

A run is fully described by a `Config`. It is resolved in layers, each overriding
the one before: the dataclass defaults, a named preset (`presets/NAME.yaml`), a
user's YAML file, then dotted command-line overrides such as
`--train.max_steps 2000`. The resolved result, every value included, is saved as
`config.yaml` in the run directory, so a run can always be reproduced from it.

No torch here: configs are plain data that can be read, written and checked
without building anything.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lmforge.errors import LmforgeError, did_you_mean


@dataclass
class ModelConfig:
    family: str = "transformer"  # transformer | rnn | ngram
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128  # transformer width; rnn embedding and hidden size
    block_size: int = 128  # context length in tokens (rnn: the truncated-BPTT window)
    dropout: float = 0.0
    bias: bool = False  # biases in Linear layers and norms; off is faster and as good
    tie_weights: bool = True  # output head shares the token embedding matrix (transformer, rnn)
    # transformer options
    positions: str = "learned"  # learned | rope | none
    rope_base: float = 10000.0  # rope: the rotation of pair i turns by base^(-2i/hs) per position
    norm: str = "layernorm"  # layernorm | rmsnorm
    mlp: str = "gelu"  # gelu | swiglu | relu2
    qk_norm: bool = False  # normalize queries and keys per head before attention
    attention: str = "fused"  # fused (scaled_dot_product_attention) | explicit (written out, for reading)
    # rnn options
    rnn_cell: str = "lstm"  # elman | lstm | gru
    # ngram options
    ngram_order: int = 4  # n: each token is predicted from the n-1 before it
    ngram_smoothing: str = "modified_kn"  # modified_kn (three discounts per order) | kn (one)


@dataclass
class DataConfig:
    path: str | None = None  # a text file, folder, glob or JSONL (prepared into RUN_DIR/data), or a `lmforge prepare`
    #                          directory; None: the built-in corpus
    tokenizer: str = "char"  # char | word | bpe (a prepared directory brings its own)
    val_fraction: float = 0.1  # one text: its last fraction is val; several documents: each one's chance to be val
    text_field: str | None = None  # JSONL: the field holding the text (.jsonl files: "text"; given: any file is JSONL)
    separator: str | None = None  # cut plain text files into documents here; None: a file is one document
    vocab_size: int = 0  # word and bpe vocabulary size; 0: 8192 (char: always every character of the text)
    batches: str = "windows"  # windows (random contiguous windows) | documents (whole documents, padded; prepared data)


@dataclass
class TrainConfig:
    seed: int = 1337
    batch_size: int = 32
    max_steps: int = 1000
    max_seconds: float = 0.0  # stop after this much training time; 0: no limit
    grad_accum: int = 1  # micro-batches per optimizer step; batch_size is split over them (and over ranks)
    lr: float = 1e-3
    min_lr: float = 1e-4
    schedule: str = "cosine"  # constant | cosine | linear | wsd (warmup, stable, decay)
    warmup_steps: int = 100
    decay_steps: int = 0  # the decay ends here; 0: at max_steps
    decay_fraction: float = 0.2  # wsd only: the last fraction of the steps before decay_steps decays
    optimizer: str = "adamw"  # adamw | muon (Muon for hidden matrices, AdamW for the rest)
    muon_lr: float = 0.02  # peak lr of the Muon matrices (follows the same schedule shape)
    muon_momentum: float = 0.95
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max global gradient norm; 0: no clipping
    max_bad_steps: int = 5  # non-finite losses in a row that stop the run
    patience: int = 0  # evals without a new best val loss before stopping early; 0: never
    eval_interval: int = 250
    eval_batch_size: int = 64
    eval_tokens: int = 0  # val tokens scored at each eval, spread over the split; 0: the whole val split
    eval_train_tokens: int = 65536  # train loss at eval is measured on this many tokens
    log_interval: int = 10
    checkpoint_interval: int = 0  # steps between resumable checkpoints; 0: at every eval
    keep_checkpoints: int = 3  # the newest K checkpoints are kept, plus the one of the best step
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16 (float16 adds a gradient scaler)
    tf32: bool = True  # TensorFloat-32 matmuls on CUDA GPUs that have them; no effect elsewhere
    compile: str = "auto"  # auto | true | false; auto: torch.compile on CUDA only
    parallel: str = "ddp"  # ddp | fsdp: how several processes (torchrun) share the model
    tensorboard: bool = True  # TensorBoard event files in RUN_DIR/tensorboard
    peak_flops: float = 0.0  # peak FLOP/s of one device for MFU; 0: from the built-in GPU table
    progress: bool = True  # show a progress bar on stderr


@dataclass
class SampleConfig:
    """How text is sampled at each eval and at the end of training."""

    prompt: str = "\n"
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0


DECODE_MODES = ("auto", "eager", "static", "compiled")


@dataclass
class DecodeConfig:
    """How `lmforge sample` and `Run.generate` choose tokens.

    Not a section of `Config`: a run's `sample` section seeds the defaults and the
    command line overrides them. The processors run in the order documented in
    `generation/processors.py`; each value's "off" setting leaves logits untouched.
    """

    max_new_tokens: int = 200
    greedy: bool = False  # always take the most likely token (temperature 0 means the same)
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1: off
    min_p: float = 0.0  # 0: off
    repetition_penalty: float = 1.0  # 1: off; above 1 discourages tokens already in the prompt or the output
    presence_penalty: float = 0.0  # subtracted once from every token already in the output
    frequency_penalty: float = 0.0  # subtracted once per earlier occurrence in the output
    banned_ids: tuple[int, ...] = ()  # token ids that are never produced
    num_beams: int = 1  # above 1: beam search, which is deterministic
    length_penalty: float = 1.0  # beam score = sum of log-probabilities / generated length ** length_penalty
    stop: tuple[str, ...] = ()  # a sample ends before the first of these strings
    eos_id: int | None = None  # a sample ends at this token (not part of the text)
    seed: int | None = None  # None: a fresh random seed
    mode: str = "auto"  # auto | eager | static | compiled; auto: compiled on CUDA, eager elsewhere

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0

    def validate(self, vocab_size: int | None = None) -> DecodeConfig:
        """Check every value; each message names the `lmforge sample` flag to change."""
        _check(self.max_new_tokens >= 0, f"--max-new-tokens must be 0 or more, not {self.max_new_tokens}")
        _check(self.temperature >= 0, f"--temperature must be 0 (greedy) or positive, not {self.temperature}")
        _check(self.top_k >= 0, f"--top-k must be 0 (off) or positive, not {self.top_k}")
        _check(0 < self.top_p <= 1, f"--top-p must be in (0, 1], not {self.top_p}")
        _check(0 <= self.min_p <= 1, f"--min-p must be in [0, 1], not {self.min_p}")
        _check(self.repetition_penalty > 0, f"--repetition-penalty must be positive (1: off), not {self.repetition_penalty}")
        for name in ("presence_penalty", "frequency_penalty", "length_penalty", "temperature", "min_p"):
            value = getattr(self, name)
            _check(value == value and abs(value) != float("inf"), f"--{name.replace('_', '-')} must be a finite number")
        _check(self.num_beams >= 1, f"--beams must be at least 1, not {self.num_beams}")
        _check(all(s for s in self.stop), "--stop needs a non-empty string")
        _check(self.mode in DECODE_MODES, f"--decode must be one of {', '.join(DECODE_MODES)}, not '{self.mode}'")
        if vocab_size is not None:
            bad = [i for i in self.banned_ids if not 0 <= i < vocab_size]
            _check(not bad, f"--ban: token ids {bad} are outside the vocabulary of {vocab_size}")
            _check(len(set(self.banned_ids)) < vocab_size, "--ban covers the whole vocabulary; leave at least one token")
            if self.eos_id is not None:
                _check(0 <= self.eos_id < vocab_size, f"eos id {self.eos_id} is outside the vocabulary of {vocab_size}")
        return self


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "sample": SampleConfig}
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
SCHEDULES = ("constant", "cosine", "linear", "wsd")
OPTIMIZERS = ("adamw", "muon")
PARALLEL = ("ddp", "fsdp")
COMPILE = ("auto", "true", "false")
FAMILIES = ("transformer", "rnn", "ngram")
POSITIONS = ("learned", "rope", "none")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu", "relu2")
ATTENTIONS = ("fused", "explicit")
RNN_CELLS = ("elman", "lstm", "gru")
NGRAM_SMOOTHINGS = ("modified_kn", "kn")
MAX_NGRAM_ORDER = 16
TOKENIZERS = ("char", "word", "bpe")
BATCHES = ("windows", "documents")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    # ----------------------------------------------------------------- building

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> Config:
        cfg = cls()
        cfg.update(values, source)
        return cfg

    @classmethod
    def from_preset(cls, name: str) -> Config:
        return cls.from_dict(load_preset(name), source=f"preset '{name}'")

    @classmethod
    def from_file(cls, path: str | Path) -> Config:
        return cls.from_dict(read_yaml(path), source=str(path))

    def update(self, values: dict[str, Any], source: str = "config") -> None:
        """Apply a nested dict ({section: {key: value}}) on top of this config."""
        if not isinstance(values, dict):
            raise LmforgeError(f"{source}: expected a mapping of sections, got {type(values).__name__}")
        for section, entries in values.items():
            if section not in SECTIONS:
                raise LmforgeError(
                    f"{source}: unknown config section '{section}'{did_you_mean(section, SECTIONS)};"
                    f" sections are {', '.join(SECTIONS)}"
                )
            if not isinstance(entries, dict):
                raise LmforgeError(f"{source}: section '{section}' must be a mapping of key: value")
            for key, value in entries.items():
                if (section, key) != ("model", "vocab_size"):  # old runs' config.yaml: the tokenizer's size, now not a setting
                    self.set(f"{section}.{key}", value, source)

    def set(self, dotted: str, value: Any, source: str = "command line") -> None:
        """Set `section.key` to `value`, converted to the field's type (strings are parsed)."""
        section, _, key = dotted.partition(".")
        if section not in SECTIONS or not key:
            raise LmforgeError(
                f"{source}: unknown config key '{dotted}'{did_you_mean(dotted, all_keys())};"
                " keys look like section.key, e.g. train.max_steps"
            )
        obj = getattr(self, section)
        hints = typing.get_type_hints(type(obj))
        if key not in hints:
            raise LmforgeError(f"{source}: unknown config key '{dotted}'{did_you_mean(dotted, all_keys())}")
        setattr(obj, key, _coerce(value, hints[key], dotted, source))

    # ----------------------------------------------------------------- checking

    def validate(self) -> Config:
        """Check values alone and across sections; each message names the flag to change."""
        m, d, t, s = self.model, self.data, self.train, self.sample
        cell_hint = " (a recurrent cell is chosen with --model.family rnn --model.rnn_cell NAME)" if m.family in RNN_CELLS else ""
        _check(m.family in FAMILIES, f"--model.family must be one of {', '.join(FAMILIES)}, not '{m.family}'{cell_hint}")
        _check(d.tokenizer in TOKENIZERS, f"--data.tokenizer must be one of {', '.join(TOKENIZERS)}, not '{d.tokenizer}'")
        _check(d.batches in BATCHES, f"--data.batches must be one of {', '.join(BATCHES)}, not '{d.batches}'")
        _check(d.batches == "windows" or m.family == "transformer",
               f"--data.batches documents trains a transformer; a {m.family} model reads windows, so leave it out")
        for name in ("n_layer", "n_head", "n_embd", "block_size"):
            _check(getattr(m, name) >= 1, f"--model.{name} must be at least 1, not {getattr(m, name)}")
        if m.family == "transformer":  # heads split the width; other families have no heads
            _check(m.n_embd % m.n_head == 0,
                   f"--model.n_embd ({m.n_embd}) must be divisible by --model.n_head ({m.n_head})")
            _check(m.positions != "rope" or (m.n_embd // m.n_head) % 2 == 0,
                   f"--model.positions rope rotates pairs of channels, so the head size --model.n_embd / "
                   f"--model.n_head ({m.n_embd // m.n_head}) must be even")
        for flag, value, choices in (("positions", m.positions, POSITIONS), ("norm", m.norm, NORMS),
                                     ("mlp", m.mlp, MLPS), ("attention", m.attention, ATTENTIONS),
                                     ("rnn_cell", m.rnn_cell, RNN_CELLS),
                                     ("ngram_smoothing", m.ngram_smoothing, NGRAM_SMOOTHINGS)):
            _check(value in choices, f"--model.{flag} must be one of {', '.join(choices)}, not '{value}'")
        _check(m.rope_base > 1.0, f"--model.rope_base must be above 1, not {m.rope_base}")
        _check(1 <= m.ngram_order <= MAX_NGRAM_ORDER,
               f"--model.ngram_order must be between 1 and {MAX_NGRAM_ORDER}, not {m.ngram_order}")
        _check(m.block_size <= 1_000_000, f"--model.block_size {m.block_size} is absurd; use a context under 1,000,000")
        _check(m.n_embd <= 65536 and m.n_layer <= 1024, "--model.n_embd or --model.n_layer is absurd for one model")
        _check(0.0 <= m.dropout < 1.0, f"--model.dropout must be in [0, 1), not {m.dropout}")
        _check(0.0 < d.val_fraction < 1.0, f"--data.val_fraction must be between 0 and 1, not {d.val_fraction}")
        _check(d.separator != "", "--separator (--data.separator) must not be empty; leave it out to keep each file "
               "one document")
        _check(0 <= d.vocab_size <= 2**24,
               f"--vocab-size (--data.vocab_size) must be 0 (the default) up to 16,777,216, not {d.vocab_size}")
        _check(d.vocab_size == 0 or d.tokenizer != "char", "--vocab-size (--data.vocab_size) does not apply to the "
               "char tokenizer (its vocabulary is every character); leave it out")
        _check(t.batch_size >= 1, f"--train.batch_size must be at least 1, not {t.batch_size}")
        _check(t.max_steps >= 1, f"--train.max_steps must be at least 1, not {t.max_steps}")
        _check(t.max_seconds >= 0, f"--train.max_seconds must be 0 (no limit) or positive, not {t.max_seconds}")
        _check(0.0 < t.lr < 10.0, f"--train.lr must be positive and below 10, not {t.lr}")
        _check(0.0 <= t.min_lr <= t.lr, f"--train.min_lr ({t.min_lr}) must be between 0 and --train.lr ({t.lr})")
        _check(t.warmup_steps >= 0, f"--train.warmup_steps must be 0 or more, not {t.warmup_steps}")
        _check(t.decay_steps >= 0, f"--train.decay_steps must be 0 (= max_steps) or more, not {t.decay_steps}")
        _check(t.weight_decay >= 0, f"--train.weight_decay must be 0 or more, not {t.weight_decay}")
        _check(0 <= t.beta1 < 1 and 0 <= t.beta2 < 1, "--train.beta1 and --train.beta2 must be in [0, 1)")
        _check(t.grad_clip >= 0, f"--train.grad_clip must be 0 (off) or positive, not {t.grad_clip}")
        for name in ("eval_interval", "eval_batch_size", "eval_train_tokens", "log_interval"):
            _check(getattr(t, name) >= 1, f"--train.{name} must be at least 1, not {getattr(t, name)}")
        _check(t.eval_tokens >= 0, f"--train.eval_tokens must be 0 (the whole val split) or positive, not {t.eval_tokens}")
        _check(t.device.split(":")[0] in DEVICES, f"--train.device must be one of {', '.join(DEVICES)}, not '{t.device}'")
        _check(t.dtype in DTYPES, f"--train.dtype must be one of {', '.join(DTYPES)}, not '{t.dtype}'")
        _check_training_extras(t)
        _check(s.max_new_tokens >= 0, f"--sample.max_new_tokens must be 0 or more, not {s.max_new_tokens}")
        _check(s.temperature >= 0, f"--sample.temperature must be 0 (greedy) or positive, not {s.temperature}")
        _check(s.top_k >= 0, f"--sample.top_k must be 0 (off) or positive, not {s.top_k}")
        _check(0 < s.top_p <= 1, f"--sample.top_p must be in (0, 1], not {s.top_p}")
        return self

    # ----------------------------------------------------------------- saving

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


def _check_training_extras(t: TrainConfig) -> None:
    """Checks of the schedule, optimizer, stability, checkpoint and scale-out keys."""
    t.compile = str(t.compile).lower()  # YAML may give a bool
    _check(t.grad_accum >= 1, f"--train.grad_accum must be at least 1, not {t.grad_accum}")
    _check(t.batch_size % t.grad_accum == 0,
           f"--train.batch_size ({t.batch_size}) must be divisible by --train.grad_accum ({t.grad_accum})")
    _check(t.schedule in SCHEDULES, f"--train.schedule must be one of {', '.join(SCHEDULES)}, not '{t.schedule}'")
    _check(0.0 <= t.decay_fraction <= 1.0, f"--train.decay_fraction must be in [0, 1], not {t.decay_fraction}")
    _check(t.optimizer in OPTIMIZERS, f"--train.optimizer must be one of {', '.join(OPTIMIZERS)}, not '{t.optimizer}'")
    _check(0.0 < t.muon_lr < 10.0, f"--train.muon_lr must be positive and below 10, not {t.muon_lr}")
    _check(0.0 <= t.muon_momentum < 1.0, f"--train.muon_momentum must be in [0, 1), not {t.muon_momentum}")
    _check(t.max_bad_steps >= 1, f"--train.max_bad_steps must be at least 1, not {t.max_bad_steps}")
    _check(t.patience >= 0, f"--train.patience must be 0 (off) or positive, not {t.patience}")
    _check(t.checkpoint_interval >= 0,
           f"--train.checkpoint_interval must be 0 (at every eval) or positive, not {t.checkpoint_interval}")
    _check(t.keep_checkpoints >= 1, f"--train.keep_checkpoints must be at least 1, not {t.keep_checkpoints}")
    _check(t.compile in COMPILE, f"--train.compile must be one of {', '.join(COMPILE)}, not '{t.compile}'")
    _check(t.parallel in PARALLEL, f"--train.parallel must be one of {', '.join(PARALLEL)}, not '{t.parallel}'")
    _check(not (t.parallel == "fsdp" and t.optimizer == "muon"),
           "--train.optimizer muon needs whole matrices, which --train.parallel fsdp shards; use one of them")
    _check(t.peak_flops >= 0, f"--train.peak_flops must be 0 (from the GPU table) or positive, not {t.peak_flops}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise LmforgeError(message)


def all_keys() -> list[str]:
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def _coerce(value: Any, hint: Any, dotted: str, source: str) -> Any:
    """Convert `value` (often a string from the command line) to the field's type."""
    args = typing.get_args(hint)
    optional = (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))):
        return None
    bad = LmforgeError(f"{source}: {dotted} expects {base.__name__}, got {value!r}")
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        raise bad
    if base is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.replace("_", ""))
            except ValueError:
                raise bad from None
            if number.is_integer():
                return int(number)
        raise bad
    if base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(str(value))
        except ValueError:
            raise bad from None
    if base is str:
        return str(value)
    raise bad


# --------------------------------------------------------------------- presets


def preset_names() -> list[str]:
    folder = resources.files("lmforge") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_summary(name: str) -> str:
    """The first sentence of a preset file's opening comment: what the preset is for."""
    text = (resources.files("lmforge") / "presets" / f"{name}.yaml").read_text(encoding="utf-8")
    lines = []
    for line in text.splitlines():
        if not line.startswith("#") or not line.strip("# "):
            break
        lines.append(line.lstrip("# ").strip())
    summary = " ".join(lines)
    end = summary.find(". ")
    return (summary[:end] if end >= 0 else summary).rstrip(".")


def load_preset(name: str) -> dict[str, Any]:
    names = preset_names()
    if name not in names:
        raise LmforgeError(f"unknown preset '{name}'{did_you_mean(name, names)}; presets are {', '.join(names)}")
    text = (resources.files("lmforge") / "presets" / f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"config file '{path}' does not exist; pass --config with the path to a YAML file")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LmforgeError(f"config file '{path}' is not valid YAML ({first}); fix the file") from None
    return values or {}
