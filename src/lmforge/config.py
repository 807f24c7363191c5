"""Typed configuration: one declared pydantic model per section, named presets, YAML and overrides.

A run's `Config` is resolved in layers, each over the one before: the defaults, a preset
(`presets/NAME.yaml`), a user's YAML file, then dotted command-line overrides (`--train.max_steps 2000`),
validated once after the merge (strings convert in lax mode: "2000" → 2000, "true" → True); a complaint
becomes one line naming the flag to change. A validated config is frozen (`Config.updated` makes a new
one), and what training derives (the model's vocabulary is the tokenizer's) is passed apart. No torch
here: configs are plain data, saved as `config.yaml` so that a run can be reproduced.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from lmforge.config_files import load_preset, read_yaml
from lmforge.errors import LmforgeError, did_you_mean

Family = Literal["transformer", "rnn", "ngram"]
RnnCell = Literal["elman", "lstm", "gru"]
FAMILIES = get_args(Family)
HINTS = {("model.family", cell): " (a recurrent cell is chosen with --model.family rnn --model.rnn_cell NAME)"
         for cell in get_args(RnnCell)}  # extra words for a likely mistake: (key, value) → hint
# keys that old runs' config.yaml may hold: ignored there, refused on the command line with the reason
RETIRED = {"model.vocab_size": "the model's vocabulary is the tokenizer's; its size is --data.vocab_size"}
SHORT_FLAGS = {"data.tokenizer": "--tokenizer", "data.vocab_size": "--vocab-size", "data.text_field": "--text-field",
               "data.separator": "--separator"}  # `lmforge train`'s own flags for these keys, named in messages


def _none(value: Any) -> Any:
    """'none' or 'null' (from the command line) means None, as YAML's null does."""
    return None if isinstance(value, str) and value.lower() in ("none", "null") else value


def _device(value: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise ValueError("must be one of auto, cpu, cuda, cuda:N, mps")
    return value


def _across(message: str) -> None:
    """A check across fields failed: its message names every flag involved, so it is shown as it is."""
    raise PydanticCustomError("across", message)


Text = Annotated[str, Field(min_length=1)]
Maybe = Annotated[Text | None, BeforeValidator(_none)]  # a non-empty string, or None ('none' on the command line)
Temperature = Annotated[float, Field(ge=0)]  # 0: greedy
SEED_RANGE = {"ge": -(2**63), "le": 2**63 - 1}  # torch's generators take 64 bits, and seed + i must fit
Names = Annotated[list[Text], Field(min_length=1), BeforeValidator(lambda v: v.split(",") if isinstance(v, str) else v)]


class Section(BaseModel):
    """Unknown keys are errors, floats are finite, and a validated section is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @classmethod
    def checked(cls, **values: Any):
        """Made from user input: pydantic's first complaint becomes a one-line `LmforgeError`."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise LmforgeError(cls.explain(exc)) from None

    @classmethod
    def key(cls, loc: tuple) -> str:
        """The dotted key an error's location in a `Config` names: ('train', 'lr') is 'train.lr'."""
        return ".".join(loc[:2])

    @classmethod
    def flag(cls, loc: tuple) -> str:
        key = cls.key(loc)
        return f"{SHORT_FLAGS[key]} (--{key})" if key in SHORT_FLAGS else f"--{key}"

    @classmethod
    def unknown(cls, loc: tuple) -> str:
        if len(loc) == 1:
            return f"unknown config section '{loc[0]}'{did_you_mean(loc[0], SECTIONS)}; sections are " \
                   f"{', '.join(SECTIONS)}"
        return f"unknown config key '{cls.key(loc)}'{did_you_mean(cls.key(loc), all_keys())}"

    @classmethod
    def explain(cls, exc: ValidationError) -> str:
        """pydantic's first complaint as one line that names the flag to change."""
        error = exc.errors()[0]
        loc, kind, value = tuple(map(str, error["loc"])), error["type"], error.get("input")
        if kind == "across":
            return error["msg"]
        if kind == "extra_forbidden":
            return cls.unknown(loc)
        if kind == "literal_error":
            rule = "must be one of " + error["ctx"]["expected"].replace("'", "").replace(" or ", ", ")
        elif kind == "value_error":
            rule = error["msg"].removeprefix("Value error, ")
        else:  # "Input should be a valid integer, unable to parse string as an integer"
            rule = re.sub(r"^(Input|String|Value) should", "must", error["msg"].split(", ")[0])
        return f"{cls.flag(loc)} {rule}, not {value!r}{HINTS.get((cls.key(loc), value), '')}"


class ModelConfig(Section):
    family: Family = "transformer"
    n_layer: int = Field(4, ge=1, le=1024)
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(128, ge=1, le=65536)  # transformer width; rnn embedding and hidden size
    block_size: int = Field(128, ge=1, le=1_000_000)  # context length in tokens (rnn: the truncated-BPTT window)
    dropout: float = Field(0.0, ge=0, lt=1)
    bias: bool = False  # biases in Linear layers and norms; off is faster and as good
    tie_weights: bool = True  # output head shares the token embedding matrix (transformer, rnn)
    # transformer options
    positions: Literal["learned", "rope", "none"] = "learned"
    rope_base: float = Field(10000.0, gt=1)  # rope: the rotation of pair i turns by base^(-2i/hs) per position
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    mlp: Literal["gelu", "swiglu", "relu2"] = "gelu"
    qk_norm: bool = False  # normalize queries and keys per head before attention
    attention: Literal["fused", "explicit"] = "fused"  # fused (scaled_dot_product_attention) | explicit (for reading)
    # rnn options
    rnn_cell: RnnCell = "lstm"
    # ngram options
    ngram_order: int = Field(4, ge=1, le=16)  # n: each token is predicted from the n-1 before it
    ngram_smoothing: Literal["modified_kn", "kn"] = "modified_kn"  # modified_kn: three discounts per order; kn: one
    # LoRA adapters (`lmforge finetune --lora-rank`): only they train; 0: none (adapt/lora.py)
    lora_rank: int = Field(0, ge=0, le=4096)
    lora_alpha: float = Field(16.0, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_targets: Names = ["qkv", "proj", "fc"]  # the linear layers whose names end so ('qkv,fc' on the command line)

    @model_validator(mode="after")
    def _heads_split_the_width(self) -> ModelConfig:
        if self.family == "transformer" and self.n_embd % self.n_head:  # other families have no heads
            _across(f"--model.n_embd ({self.n_embd}) must be divisible by --model.n_head ({self.n_head})")
        if self.family == "transformer" and self.positions == "rope" and (self.n_embd // self.n_head) % 2:
            _across(f"--model.positions rope rotates pairs of channels, so the head size --model.n_embd / "
                    f"--model.n_head ({self.n_embd // self.n_head}) must be even")
        return self


class DataConfig(Section):
    path: Maybe = None  # a text file, folder, glob or JSONL (prepared into RUN_DIR/data), or a `lmforge prepare`
    #                     directory; None: the built-in corpus
    tokenizer: Literal["char", "word", "bpe"] = "char"  # a prepared directory brings its own
    val_fraction: float = Field(0.1, gt=0, lt=1)  # one text: its last fraction is val; documents: each one's chance
    text_field: Maybe = None  # JSONL: the field holding the text (.jsonl files: "text"; given: any file is JSONL)
    separator: Maybe = None  # cut plain text files into documents here; None: a file is one document
    vocab_size: int = Field(0, ge=0, le=2**24)  # word and bpe tokenizers' size; 0: 8192. A model's is its tokenizer's
    batches: Literal["windows", "documents"] = "windows"  # random windows | whole documents, padded (prepared data)

    @model_validator(mode="after")
    def _char_has_no_size(self) -> DataConfig:
        if self.vocab_size and self.tokenizer == "char":
            _across("--vocab-size (--data.vocab_size) does not apply to the char tokenizer (its vocabulary is every "
                    "character); leave it out")
        return self


class TrainConfig(Section):
    seed: int = 1337
    batch_size: int = Field(32, ge=1)
    max_steps: int = Field(1000, ge=1)
    max_seconds: float = Field(0.0, ge=0)  # stop after this much training time; 0: no limit
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimizer step; batch_size is split over them (and ranks)
    lr: float = Field(1e-3, gt=0, lt=10)
    min_lr: float = Field(1e-4, ge=0)  # at most lr
    schedule: Literal["constant", "cosine", "linear", "wsd"] = "cosine"  # wsd: warmup, stable, decay
    warmup_steps: int = Field(100, ge=0)
    decay_steps: int = Field(0, ge=0)  # the decay ends here; 0: at max_steps
    decay_fraction: float = Field(0.2, ge=0, le=1)  # wsd only: the last fraction of the steps before decay_steps decays
    optimizer: Literal["adamw", "muon"] = "adamw"  # muon: Muon for hidden matrices, AdamW for the rest
    muon_lr: float = Field(0.02, gt=0, lt=10)  # peak lr of the Muon matrices (follows the same schedule shape)
    muon_momentum: float = Field(0.95, ge=0, lt=1)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)  # max global gradient norm; 0: no clipping
    max_bad_steps: int = Field(5, ge=1)  # non-finite losses in a row that stop the run
    patience: int = Field(0, ge=0)  # evals without a new best val loss before stopping early; 0: never
    eval_interval: int = Field(250, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    eval_tokens: int = Field(0, ge=0)  # val tokens scored at each eval, spread over the split; 0: the whole val split
    eval_train_tokens: int = Field(65536, ge=1)  # train loss at eval is measured on this many tokens
    log_interval: int = Field(10, ge=1)
    checkpoint_interval: int = Field(0, ge=0)  # steps between resumable checkpoints; 0: at every eval
    keep_checkpoints: int = Field(3, ge=1)  # the newest K checkpoints are kept, plus the one of the best step
    device: Annotated[str, AfterValidator(_device)] = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # float16 adds a gradient scaler
    tf32: bool = True  # TensorFloat-32 matmuls on CUDA GPUs that have them; no effect elsewhere
    # auto: torch.compile on CUDA only; YAML may give a bool
    compile: Annotated[Literal["auto", "true", "false"], BeforeValidator(lambda v: str(v).lower())] = "auto"
    parallel: Literal["ddp", "fsdp"] = "ddp"  # how several processes (torchrun) share the model
    tensorboard: bool = True  # TensorBoard event files in RUN_DIR/tensorboard
    peak_flops: float = Field(0.0, ge=0)  # peak FLOP/s of one device for MFU; 0: from the built-in GPU table
    progress: bool = True  # show a progress bar on stderr

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.min_lr > self.lr:
            _across(f"--train.min_lr ({self.min_lr}) must be between 0 and --train.lr ({self.lr})")
        if self.batch_size % self.grad_accum:
            _across(f"--train.batch_size ({self.batch_size}) must be divisible by --train.grad_accum "
                    f"({self.grad_accum})")
        if self.parallel == "fsdp" and self.optimizer == "muon":
            _across("--train.optimizer muon needs whole matrices, which --train.parallel fsdp shards; use one of them")
        return self


class Sampling(Section):
    """The settings a run's `sample` section and `lmforge sample` share, each declared once. A description is the
    help of its `lmforge sample` flag, whose value is N (an int), X (a float) or TEXT."""

    max_new_tokens: int = Field(200, ge=0, description="tokens to generate")
    temperature: Temperature = Field(1.0, description="below 1 sharpens, above 1 flattens (0: greedy)")
    top_k: int = Field(0, ge=0, description="sample among the N most likely tokens (0: all)")
    top_p: float = Field(1.0, gt=0, le=1, description="sample from the smallest set with probability ≥ X (1: all)")


class SampleConfig(Sampling):
    """How text is sampled at each eval and at the end of training."""

    prompt: str = "\n"
    temperature: Temperature = 0.8  # a little sharper than the model's distribution: samples read better


class DecodeConfig(Sampling):
    """How `lmforge sample` and `Run.generate` choose tokens. Not a section of `Config`: a run's `sample` section
    seeds the defaults and the command line overrides them. The processors run in the order documented in
    `generation/processors.py`; each value's "off" setting leaves logits untouched."""

    FLAGS: ClassVar[dict[str, str]] = {"num_beams": "--beams", "mode": "--decode", "banned_ids": "--ban"}

    greedy: bool = Field(False, description="always take the most likely token (temperature 0 means the same)")
    min_p: float = Field(0.0, ge=0, le=1, description="drop tokens less likely than X × the most likely one (0: off)")
    repetition_penalty: float = Field(1.0, gt=0, description="above 1 discourages tokens already in the prompt or "
                                                             "output (1: off)")
    presence_penalty: float = Field(0.0, description="subtract X once from every token the output already holds")
    frequency_penalty: float = Field(0.0, description="subtract X per earlier occurrence in the output")
    banned_ids: tuple[int, ...] = ()  # token ids that are never produced (`lmforge sample --ban TEXT`)
    num_beams: int = Field(1, ge=1, description="beam search with N beams (deterministic)")
    length_penalty: float = Field(1.0, description="beam score = sum of log-probabilities / length**X; above 0 "
                                                   "favours longer outputs")
    stop: Annotated[tuple[Text, ...], BeforeValidator(lambda v: (v,) if isinstance(v, str) else v)] = Field(
        (), description="end a sample before TEXT (repeatable; \\n and \\t mean newline and tab)")
    eos_id: int | None = None  # a sample ends at this token (not part of the text): the tokenizer's end of text
    seed: int | None = Field(None, **SEED_RANGE,
                             description="make sampling reproducible (sample i uses N+i; default: fresh)")
    mode: Literal["auto", "eager", "static", "compiled"] = Field(
        "auto", description="auto | eager | static | compiled: compiled (static shapes, CUDA graphs) is auto's "
                            "choice on CUDA, eager elsewhere")

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0

    @classmethod
    def key(cls, loc: tuple) -> str:
        return loc[0]

    @classmethod
    def flag(cls, loc: tuple) -> str:
        return cls.FLAGS.get(loc[0], "--" + loc[0].replace("_", "-"))

    @classmethod
    def unknown(cls, loc: tuple) -> str:
        return f"unknown option '{loc[0]}'{did_you_mean(loc[0], cls.model_fields)}; options are the fields of " \
               "lmforge.config.DecodeConfig"

    def validate(self, vocab_size: int) -> DecodeConfig:
        """Check the token ids against the vocabulary (the other values were checked when it was made)."""
        bad = [i for i in self.banned_ids if not 0 <= i < vocab_size]
        if bad:
            raise LmforgeError(f"--ban: token ids {bad} are outside the vocabulary of {vocab_size}")
        if len(set(self.banned_ids)) >= vocab_size:
            raise LmforgeError("--ban covers the whole vocabulary; leave at least one token")
        if self.eos_id is not None and not 0 <= self.eos_id < vocab_size:
            raise LmforgeError(f"eos id {self.eos_id} is outside the vocabulary of {vocab_size}")
        return self


class Config(Section):
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    sample: SampleConfig = SampleConfig()

    @model_validator(mode="after")
    def _documents_need_a_transformer(self) -> Config:
        if self.data.batches == "documents" and self.model.family != "transformer":
            _across(f"--data.batches documents trains a transformer; a {self.model.family} model reads windows, "
                    "so leave it out")
        return self

    @classmethod
    def from_layers(cls, *layers: tuple[str | None, dict[str, Any]]) -> Config:
        """Merge `(source, values)` layers, each over the ones before, and validate the result once.

        `values` maps sections to {key: value} (YAML), or dotted keys to values ({"train.max_steps": "2000"}).
        A complaint about a value names the layer that gave it, unless that is the command line.
        """
        merged: dict[str, dict[str, Any]] = {}
        origin: dict[str, str | None] = {}
        for source, values in layers:
            if not isinstance(values, dict):
                raise LmforgeError(f"{source}: expected a mapping of sections, got {type(values).__name__}")
            for name, entries in values.items():
                if "." in name:  # a dotted key
                    if name in RETIRED:
                        raise LmforgeError(f"--{name} is no longer a setting: {RETIRED[name]}")
                    if name not in all_keys():
                        raise LmforgeError(f"unknown config key '{name}'{did_you_mean(name, all_keys())}; keys look "
                                           "like section.key, e.g. train.max_steps")
                    name, entries = name.split(".")[0], {name.split(".")[1]: entries}
                if not isinstance(entries, dict):
                    raise LmforgeError(f"{source}: section '{name}' must be a mapping of key: value")
                origin[name] = source
                for key, value in entries.items():
                    if f"{name}.{key}" not in RETIRED:
                        merged.setdefault(name, {})[key] = value
                        origin[f"{name}.{key}"] = source
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            error = exc.errors()[0]  # a check across fields has no one source
            where = None if error["type"] == "across" else origin.get(cls.key(tuple(map(str, error["loc"]))))
            prefix = f"{where}: " if where and where != COMMAND_LINE else ""
            raise LmforgeError(prefix + cls.explain(exc)) from None

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> Config:
        return cls.from_layers((source, values))

    @classmethod
    def from_preset(cls, name: str) -> Config:
        return cls.from_dict(load_preset(name), source=f"preset '{name}'")

    @classmethod
    def from_file(cls, path: str | Path) -> Config:
        return cls.from_dict(read_yaml(path), source=str(path))

    def updated(self, values: dict[str, Any], source: str = "command line") -> Config:
        """A new config: `values` (by section or by dotted key) over this one's, validated."""
        return Config.from_layers((None, self.to_dict()), (source, values))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return self.model_dump()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


COMMAND_LINE = "command line"
SECTIONS = {name: field.annotation for name, field in Config.model_fields.items()}


def all_keys() -> list[str]:
    return [f"{s}.{key}" for s, section in SECTIONS.items() for key in section.model_fields]
