"""Instruction data: prompt/completion pairs or chat `messages`, rendered by a chat template, with a loss mask.

Fine-tuning teaches a model to answer, not to write prompts, so only the answer's tokens are
targets: prompt tokens (and padding) take the ignore index and add nothing to the loss. An EOS
follows every answer and is a target too, so the model learns to stop.

A chat template is three format strings (system, user, assistant turns), stored in the run as
`chat_template.json`, so `lmforge serve` renders a conversation the way the model was trained
on. A prompt/completion pair is used as written (the prompt is the whole context).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.paths import utf8_lines

TEMPLATE_FILE = "chat_template.json"
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatTemplate:
    system: str = "System: {content}\n"
    user: str = "User: {content}\nAssistant: "
    assistant: str = "{content}"  # the trained part; EOS follows it

    def segments(self, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
        """(text, trained) pieces of a conversation: assistant turns are trained, the rest is context."""
        return [(getattr(self, m["role"]).format(content=m["content"]), m["role"] == "assistant") for m in messages]

    def prompt(self, messages: list[dict[str, str]]) -> str:
        """The text a model continues to answer `messages` (which end with a user turn)."""
        return "".join(text for text, _ in self.segments(messages))

    @classmethod
    def for_examples(cls, examples: list) -> ChatTemplate:
        """The default template when any example is a conversation; for prompt/completion pairs only, the
        template that renders a one-question chat exactly as the pairs were trained (the prompt as written)."""
        if any(isinstance(example[0], dict) for example in examples):
            return cls()
        return cls(system="{content}\n", user="{content}", assistant="{content}")

    def save(self, run_dir: Path) -> None:
        (run_dir / TEMPLATE_FILE).write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, run_dir: Path) -> ChatTemplate | None:
        path = Path(run_dir) / TEMPLATE_FILE
        return cls(**json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def read_instructions(path: str | Path, flag: str = "--data") -> list[list[tuple[str, bool]] | list[dict[str, str]]]:
    """Each line of a JSONL file: {"prompt", "completion"} → [(prompt, False), (completion, True)], or
    {"messages": [{"role", "content"}, ...]} with at least one assistant turn (kept as messages). `flag` gave the
    path, for the messages."""
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"{flag} '{path}' does not exist; pass a JSONL file of prompt/completion pairs or messages")
    rows: list = []
    for n, line in enumerate(utf8_lines(path, flag), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
            rows.append([(row["prompt"], False), (row["completion"], True)])
        elif isinstance(row, dict) and isinstance(row.get("messages"), list) and _valid_messages(row["messages"]):
            rows.append(row["messages"])
        else:
            raise LmforgeError(f"'{path}' line {n} is neither {{\"prompt\", \"completion\"}} nor {{\"messages\": [{{\"role\", "
                               f"\"content\"}}, ...]}} with an assistant turn (roles: {', '.join(ROLES)}); fix that line")
    if not rows:
        raise LmforgeError(f"'{path}' holds no examples; add lines of prompt/completion pairs or messages")
    return rows


def _valid_messages(messages: list) -> bool:
    return (all(isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in messages)
            and any(m["role"] == "assistant" for m in messages))


def encode_example(tokenizer, example, template: ChatTemplate) -> tuple[np.ndarray, np.ndarray]:
    """Ids of one example and which of them are targets (True: the loss counts predicting this token)."""
    segments = template.segments(example) if isinstance(example[0], dict) else example
    eos = tokenizer.eos_id
    if eos is None:
        raise LmforgeError("the base run's tokenizer has no EOS token, so the model could not learn to stop; "
                           "fine-tune a run whose tokenizer has one (bpe, word, or char trained on documents)")
    ids: list[int] = []
    trained: list[bool] = []
    for text, is_answer in segments:
        piece = tokenizer.encode(text) + ([eos] if is_answer else [])
        ids += piece
        trained += [is_answer] * len(piece)
    return np.array(ids, dtype=np.int64), np.array(trained, dtype=bool)


def completion_text(example, template: ChatTemplate) -> str:
    """The trained text of an example (what bits per byte counts the bytes of)."""
    segments = template.segments(example) if isinstance(example[0], dict) else example
    return "".join(text for text, is_answer in segments if is_answer)
