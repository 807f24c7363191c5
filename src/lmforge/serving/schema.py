"""What a completion or chat completion request may hold, declared: each field's type and range beside it (pydantic).

The fields are OpenAI's `/v1/completions` ones that lmforge's decoder has, plus `top_k`,
`min_p` and `repetition_penalty`; fields a client sends that lmforge has no use for
(`user`, `best_of`, ...) are ignored, as OpenAI-compatible servers do. Limits keep one
request from holding the server: `max_tokens` and `n` are capped, and the body size is
checked before it is read (`app.py`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmforge.config import SEED_RANGE

MAX_TOKENS = 2048  # per choice
MAX_N = 16  # choices per request
MAX_LOGPROBS = 20  # alternatives per token
MAX_BODY_BYTES = 1 << 20  # 1 MiB
CHAT_TOKENS = 256  # a chat answer's limit when the request sets none (a fine-tuned model stops by itself at EOS)


class Decoding(BaseModel):
    """The decoding fields that completions and chat completions share."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # Python's JSON reads Infinity and NaN

    model: str | None = None  # None: the only served run
    max_tokens: int = Field(16, ge=0, le=MAX_TOKENS)
    temperature: float = Field(1.0, ge=0)  # 0: greedy
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    min_p: float = Field(0.0, ge=0, le=1)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    repetition_penalty: float = Field(1.0, gt=0)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, **SEED_RANGE)
    n: int = Field(1, ge=1, le=MAX_N)
    stream: bool = False

    def decoding(self) -> dict[str, Any]:
        """The `Run.sample` / `Run.stream` options, named as `DecodeConfig` names them."""
        stop = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return dict(temperature=self.temperature, greedy=self.temperature == 0, top_k=self.top_k, top_p=self.top_p,
                    min_p=self.min_p, presence_penalty=self.presence_penalty,
                    frequency_penalty=self.frequency_penalty, repetition_penalty=self.repetition_penalty,
                    stop=tuple(stop))


class CompletionRequest(Decoding):
    prompt: str | list[str] = ""
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    echo: bool = False

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(Decoding):
    """OpenAI's `/v1/chat/completions` fields that lmforge has; `max_completion_tokens` is the newer
    name of `max_tokens`."""

    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS)  # None: up to CHAT_TOKENS
    max_completion_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)

    def conversation(self) -> list[dict[str, str]]:
        """The messages as the chat template renders them."""
        return [{"role": m.role, "content": m.text()} for m in self.messages]

    def token_limit(self) -> int:
        given = [t for t in (self.max_completion_tokens, self.max_tokens) if t is not None]
        return given[0] if given else CHAT_TOKENS

    def top(self) -> int | None:
        """Alternatives per token for the decoder: None when log-probabilities are not asked for."""
        return (self.top_logprobs or 0) if self.logprobs else None


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, which clients parse."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
