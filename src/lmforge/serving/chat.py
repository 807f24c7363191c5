"""`POST /v1/chat/completions`: a conversation, answered by a run fine-tuned with a chat template.

`lmforge finetune` stores the template the run was trained with (`chat_template.json`,
adapt/instructions.py). The conversation is rendered and tokenized by the code that made
the training examples (`encode_example`: each turn alone, an EOS after every earlier
answer), so the model sees a conversation exactly as it learned them; the last turn is the
user's, whose template ends with the cue to answer, and the model stops at EOS. The
answer is decoded like any completion (the shared batch, the same fields, `stream` as
OpenAI's chat chunks with a `delta`). A run without a template was never taught to
answer turns: it gets a 400 that says how to make one that was.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from lmforge.adapt.instructions import TEMPLATE_FILE, ChatTemplate, encode_example
from lmforge.run import TokenInfo
from lmforge.serving.app import (ApiError, check_length, decode, finish_reason, finished, pick_model, streamed,
                                 submit, usage)
from lmforge.serving.schema import ChatRequest

if TYPE_CHECKING:
    from lmforge.run import Run
    from lmforge.serving.batcher import Batcher, Event


def router(runs: dict[str, Run], batchers: dict[str, Batcher], timeout: float | None) -> APIRouter:
    templates = {name: ChatTemplate.load(run.path) for name, run in runs.items()}
    api = APIRouter()

    @api.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest, request: Request):
        name = pick_model(runs, req.model)
        run, template = runs[name], templates[name]
        if template is None:
            raise ApiError(400, f"the model '{name}' has no chat template ({TEMPLATE_FILE}), so it was never taught to "
                           f"answer; fine-tune it with `lmforge finetune {run.path} --data FILE.jsonl --out NEW_RUN` "
                           "and serve NEW_RUN, or use /v1/completions", param="model", code="no_chat_template")
        messages = req.conversation()
        if messages[-1]["role"] != "user":
            raise ApiError(400, f"the last message is the {messages[-1]['role']}'s; end 'messages' with a user turn "
                           "for the model to answer", param="messages")
        ids = decode(run, encode_example, run.tokenizer, messages, template)[0].tolist()
        check_length(run, len(ids), "messages")
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
                "model": name}
        render = ChatAnswer(head, req.n, req.logprobs)
        job = submit(run, batchers[name], req, [ids], req.token_limit(), req.top())
        if req.stream:
            return await streamed(batchers[name], job, timeout, render.chunks)
        await finished(batchers[name], job, request, timeout, render.take)
        return {**head, "choices": render.choices(), "usage": usage(len(ids), job)}

    return api


class ChatAnswer:
    """The choices of a chat request, built from its events: whole, or as OpenAI's chat chunks."""

    def __init__(self, head: dict[str, Any], n: int, with_logprobs: bool):
        self.head, self.with_logprobs = head, with_logprobs
        self.texts = [""] * n
        self.tokens: list[list[TokenInfo]] = [[] for _ in range(n)]
        self.reasons: list[str | None] = [None] * n
        self.started = [False] * n

    def take(self, event: Event) -> None:
        self.texts[event.index] += event.text
        self.tokens[event.index] += event.tokens
        self.reasons[event.index] = finish_reason(event) or self.reasons[event.index]

    def choices(self) -> list[dict[str, Any]]:
        return [{"index": i, "message": {"role": "assistant", "content": text},
                 "logprobs": self._logprobs(tokens), "finish_reason": reason or "length"}
                for i, (text, tokens, reason) in enumerate(zip(self.texts, self.tokens, self.reasons))]

    def chunks(self, event: Event) -> list[dict[str, Any]]:
        """A choice opens with the assistant's role, then its text piece by piece, then a chunk with its reason."""
        self.take(event)
        out = []
        if not self.started[event.index]:
            self.started[event.index] = True
            out.append(self._chunk(event.index, {"role": "assistant", "content": ""}))
        if event.text or event.tokens:
            out.append(self._chunk(event.index, {"content": event.text}, logprobs=self._logprobs(event.tokens)))
        if event.finish_reason is not None:
            out.append(self._chunk(event.index, {}, finish_reason(event)))
        return out

    def _chunk(self, index: int, delta: dict[str, str], reason: str | None = None,
               logprobs: dict | None = None) -> dict[str, Any]:
        return {**self.head, "object": "chat.completion.chunk",
                "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": reason}]}

    def _logprobs(self, tokens: list[TokenInfo]) -> dict[str, list] | None:
        """OpenAI's chat log-probabilities: each token with its bytes and its top alternatives."""
        if not self.with_logprobs:
            return None

        def entry(text: str, logprob: float) -> dict[str, Any]:
            return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

        return {"content": [{**entry(t.text, t.logprob), "top_logprobs": [entry(text, lp) for _, text, lp in t.top]}
                            for t in tokens]}
