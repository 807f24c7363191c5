"""A trained run, loaded from its directory: model, tokenizer and config together."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lmforge.config import Config, DecodeConfig
from lmforge.config_files import read_yaml
from lmforge.device import resolve_device
from lmforge.errors import LmforgeError
from lmforge.generation.beam import beam_search
from lmforge.generation.decode import Step, decode
from lmforge.generation.quantize import quantize_model
from lmforge.generation.text import Continuation
from lmforge.models import LanguageModel, build_model
from lmforge.tokenizers import Tokenizer, load_tokenizer
from lmforge.training.run_dir import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, check_run_dir, load_weights


@dataclass
class TokenInfo:
    """One generated token, as `lmforge sample --json` reports it."""

    id: int
    text: str
    logprob: float  # log-probability under the model, before any processor
    top: list[tuple[int, str, float]]  # the model's most likely tokens here: (id, text, logprob)


@dataclass
class Sample:
    """One continuation of a prompt."""

    text: str  # the continuation, without the prompt
    finish_reason: str  # "length", "eos" or "stop"
    tokens: list[TokenInfo] = field(default_factory=list)  # filled when log-probabilities were asked for
    score: float | None = None  # beam search: sum of log-probabilities / length ** length_penalty


@dataclass
class Run:
    path: Path
    config: Config
    tokenizer: Tokenizer
    model: LanguageModel
    device: torch.device

    def decode_config(self, max_new_tokens: int = 200, *, ban: str | Sequence[str] = (), **options) -> DecodeConfig:
        """A checked `DecodeConfig`; `ban` is text whose every token is banned (added to `banned_ids`)."""
        banned = list(options.pop("banned_ids", ()))
        for text in [ban] if isinstance(ban, str) else ban:
            banned += self.tokenizer.encode(text)
        options.setdefault("eos_id", getattr(self.tokenizer, "eos_id", None))
        cfg = DecodeConfig.checked(max_new_tokens=max_new_tokens, banned_ids=tuple(banned), **options)
        return cfg.validate(self.tokenizer.vocab_size)

    def stream(self, prompt: str, max_new_tokens: int = 200, **options) -> Iterator[str]:
        """Yield the continuation of `prompt` piece by piece, as each token is chosen.

        Options: greedy, temperature, top_k, top_p, min_p, repetition_penalty, presence_penalty,
        frequency_penalty, ban (text), stop (strings), seed, mode (see `DecodeConfig`).
        """
        cfg = self.decode_config(max_new_tokens, **options)
        if cfg.num_beams > 1:
            raise LmforgeError("beam search finds whole sequences before it can show any; use Run.sample, "
                               "or --beams without --stream")
        row = Continuation(self.tokenizer, cfg.stop)
        # text held back (half a character, a possible stop string) shows up later
        yield from filter(None, self._decode(self._encode(prompt), cfg, [row]))

    def generate(self, prompt: str, max_new_tokens: int = 200, **kwargs) -> str:
        """The prompt followed by its sampled continuation (see `stream` for the options)."""
        return prompt + "".join(self.stream(prompt, max_new_tokens, **kwargs))

    def sample(self, prompt: str, max_new_tokens: int = 200, num_samples: int = 1, top_logprobs: int | None = None,
               **options) -> list[Sample]:
        """`num_samples` continuations of `prompt`, decoded as one batch.

        Sample i uses a generator seeded with `seed + i`, so it is the same whether drawn alone
        or among others. With `num_beams` > 1 they are the best beams instead. `top_logprobs`:
        None for no per-token details; n for each token's log-probability and the n most likely.
        """
        cfg = self.decode_config(max_new_tokens, **options)
        if num_samples < 1:
            raise LmforgeError(f"--num-samples must be at least 1, not {num_samples}")
        ids, rows = self._encode(prompt), [Continuation(self.tokenizer, cfg.stop) for _ in range(num_samples)]
        if cfg.num_beams > 1:
            return self._beams(ids, cfg, rows, top_logprobs)
        infos: list[list[TokenInfo]] = [[] for _ in rows]
        for _ in self._decode(ids, cfg, rows, infos if top_logprobs is not None else None, top_logprobs):
            pass
        return [Sample(row.text, row.finish_reason, info) for row, info in zip(rows, infos)]

    def _decode(self, ids: list[int], cfg: DecodeConfig, rows: list[Continuation],
                infos: list[list[TokenInfo]] | None = None, top_logprobs: int | None = None) -> Iterator[str]:
        """Decode `ids` once per row, as one batch, into `rows`; yield each piece of text as it becomes final."""
        for step in decode(self.model, [ids] * len(rows), cfg, generators=self._generators(cfg.seed, len(rows)),
                           logprobs=top_logprobs):
            for r, row in enumerate(rows):
                token = int(step.ids[r])
                if row.finish_reason is not None or not bool(step.alive[r]):
                    continue
                yield row.finish("eos") if token == cfg.eos_id else row.add(token)
                if infos is not None and token != cfg.eos_id:
                    infos[r].append(self.token_info(step, r))
            if all(row.finish_reason is not None for row in rows):
                return
        for row in rows:
            yield row.finish("length")

    def _beams(self, ids: list[int], cfg: DecodeConfig, rows: list[Continuation],
               top_logprobs: int | None) -> list[Sample]:
        if len(rows) > cfg.num_beams:
            raise LmforgeError(f"--num-samples {len(rows)} is more than --beams {cfg.num_beams}; "
                               "beam search returns at most one sample per beam")
        samples = []
        for beam, row in zip(beam_search(self.model, ids, cfg, len(rows), top_logprobs or 0), rows):
            for token in beam.ids:
                row.add(token)
            row.finish("eos" if beam.ended_by_eos else "length")
            tokens = [] if top_logprobs is None else [self._info(t, lp, zip(a, b)) for t, lp, a, b in
                                                      zip(beam.ids, beam.logprobs, beam.top_ids, beam.top_logprobs)]
            samples.append(Sample(row.text, row.finish_reason, tokens, beam.score))
        return samples

    def token_info(self, step: Step, r: int) -> TokenInfo:
        """Row `r`'s token of a decoding step, with its log-probability and top alternatives (the server's too)."""
        alternatives = () if step.top_ids is None else zip(step.top_ids[r], step.top_logprobs[r])
        return self._info(int(step.ids[r]), step.logprobs[r], alternatives)

    def _info(self, token: int, logprob: float, alternatives: Iterable) -> TokenInfo:
        """A token's details; `alternatives` are (id, logprob) pairs, as tensors or numbers."""
        text = self.tokenizer.decode
        return TokenInfo(token, text([token]), float(logprob), [(int(a), text([int(a)]), float(b)) for a, b in alternatives])

    def _encode(self, prompt: str) -> list[int]:
        ids = self.tokenizer.encode(prompt)
        if not ids:
            raise LmforgeError("the prompt is empty; give at least one character, e.g. --prompt 'The '")
        return ids

    def _generators(self, seed: int | None, n: int) -> list[torch.Generator]:
        """One generator per sample, seeded seed, seed+1, ... (a fresh random seed when None)."""
        if seed is None:
            seed = torch.Generator().seed() % 2**62  # fresh entropy, not torch's fixed default seed
        return [torch.Generator(device=self.device).manual_seed(seed + i) for i in range(n)]


def load(path: str | Path, device: str = "auto", quantize: str = "none") -> Run:
    """Load a run directory written by `lmforge train`; `quantize="int8"` decodes with int8 weights on a CPU
    (generation/quantize.py)."""
    path = Path(path)
    check_run_dir(path)
    values = read_yaml(path / CONFIG_FILE)
    if not values:  # the defaults would build another model, and the weights would be blamed
        raise LmforgeError(f"'{path / CONFIG_FILE}' is empty, so the model's shape is unknown; restore the run's "
                           "config.yaml (a copy of the same run has it)")
    config = Config.from_dict(values, source=str(path / CONFIG_FILE))
    tokenizer = load_tokenizer(path / TOKENIZER_FILE)
    dev = resolve_device(device, "--device")
    model = build_model(config.model, tokenizer.vocab_size)
    load_weights(model, path / MODEL_FILE)
    model.to(dev).eval()
    return Run(path, config, tokenizer, quantize_model(model, quantize), dev)
