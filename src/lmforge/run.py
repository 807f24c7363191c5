"""A trained run, loaded from its directory: model, tokenizer and config together."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from lmforge.config import Config
from lmforge.device import resolve_device
from lmforge.errors import LmforgeError
from lmforge.generation.decode import generate_ids
from lmforge.models import LanguageModel, build_model
from lmforge.tokenizers import Tokenizer, load_tokenizer
from lmforge.training.run_dir import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, check_run_dir, load_weights


@dataclass
class Run:
    path: Path
    config: Config
    tokenizer: Tokenizer
    model: LanguageModel
    device: torch.device

    def stream(
        self,
        prompt: str,
        max_new_tokens: int = 200,
        *,
        greedy: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Yield the continuation of `prompt` piece by piece, as each token is chosen."""
        ids = self.tokenizer.encode(prompt)
        if not ids:
            raise LmforgeError("the prompt is empty; give at least one character, e.g. --prompt 'The '")
        generator = torch.Generator(device=self.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        prompt_ids = torch.tensor([ids], device=self.device)
        new_ids: list[int] = []
        text = ""
        for next_ids in generate_ids(self.model, prompt_ids, max_new_tokens, greedy=greedy, temperature=temperature,
                                     top_k=top_k, top_p=top_p, generator=generator):
            new_ids.append(int(next_ids[0]))
            # decode the whole continuation, not the last token alone: a token may end mid-character,
            # and then the text waits (a trailing U+FFFD) until the character's other bytes arrive
            now = self.tokenizer.decode(new_ids)
            if now.endswith("\ufffd") and len(new_ids) < max_new_tokens:
                continue
            yield now[len(text):]
            text = now

    def generate(self, prompt: str, max_new_tokens: int = 200, **kwargs) -> str:
        """The prompt followed by its sampled continuation (see `stream` for the options)."""
        return prompt + "".join(self.stream(prompt, max_new_tokens, **kwargs))


def load(path: str | Path, device: str = "auto") -> Run:
    """Load a run directory written by `lmforge train`."""
    path = Path(path)
    check_run_dir(path)
    config = Config.from_file(path / CONFIG_FILE).validate()
    tokenizer = load_tokenizer(path / TOKENIZER_FILE)
    if config.model.vocab_size != tokenizer.vocab_size:
        raise LmforgeError(f"'{path}': config.yaml says vocab_size {config.model.vocab_size} but tokenizer.json has "
                           f"{tokenizer.vocab_size}; the two files come from different runs")
    dev = resolve_device(device)
    model = build_model(config.model)
    load_weights(model, path / MODEL_FILE)
    model.to(dev).eval()
    return Run(path, config, tokenizer, model, dev)
