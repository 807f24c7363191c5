"""The HTTP API: `GET /health`, `GET /v1/models`, `POST /v1/completions` (streamed with `"stream": true`).

Every served run is a model, named by its folder. A completion is decoded by the same
code as `lmforge sample` (`Run.sample`, `Run.stream`), so a request with a `seed` gives
the text `lmforge sample --seed S` gives with the same settings; choice i of a request
uses seed S+i, as sample i of `--num-samples` does. A prompt longer than the model's
context is continued from its last context's worth of tokens (the window slides, as
`lmforge sample` does); prompts over `MAX_PROMPT_TOKENS` are refused.

In this first version a run decodes one request at a time (a lock per run); requests
wait their turn. Errors use OpenAI's shape (`{"error": {"message", "type", "param",
"code"}}`) with a 4xx status, and the server keeps serving.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from lmforge.errors import LmforgeError
from lmforge.run import Run, Sample
from lmforge.serving.schema import MAX_BODY_BYTES, CompletionRequest, error_body

MAX_PROMPT_TOKENS = 8192


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.body = status, error_body(message, kind, param, code)


def create_app(runs: dict[str, Run], api_key: str | None = None) -> FastAPI:
    """An app serving `runs` (name → loaded run); with `api_key`, every /v1 request must carry it as a bearer."""
    app = FastAPI(title="lmforge", docs_url=None, redoc_url=None)
    locks = {name: threading.Lock() for name in runs}
    created = int(time.time())

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(where) or None
        message = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            message = "the body is not valid JSON; send one JSON object"
        elif param:
            message = f"'{param}': {message}"
        return JSONResponse(error_body(message, param=param), status_code=400)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
            return JSONResponse(error_body(f"the body is over {MAX_BODY_BYTES:,} bytes; send a shorter prompt"),
                                status_code=413)
        if api_key and request.url.path.startswith("/v1/") and \
                request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse(error_body("missing or wrong API key; send the header 'Authorization: Bearer KEY'",
                                           "authentication_error", code="invalid_api_key"), status_code=401)
        return await call_next(request)

    from lmforge.serving.playground import router as playground  # imports this module: not at the top

    app.include_router(playground(runs))

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(runs)}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "lmforge"}
                                           for name in runs]}

    @app.post("/v1/completions")
    def completions(req: CompletionRequest):
        name = pick_model(runs, req.model)
        run = runs[name]
        prompts = req.prompts()
        prompt_tokens = count_prompt_tokens(run, prompts)
        decode(run, run.decode_config, req.max_tokens, **req.decoding())  # every setting checked before decoding
        head = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": name}
        if req.stream:
            return StreamingResponse(sse(stream_choices(run, locks[name], req, prompts, head)),
                                     media_type="text/event-stream")
        with locks[name]:
            choices, usage = complete(run, req, prompts, prompt_tokens)
        return {**head, "choices": choices, "usage": usage}

    return app


def pick_model(runs: dict[str, Run], model: str | None) -> str:
    if model is None and len(runs) == 1:
        return next(iter(runs))
    if model not in runs:
        names = ", ".join(runs)
        raise ApiError(404, f"the model '{model}' is not served; models: {names}", param="model",
                       code="model_not_found")
    return model


def count_prompt_tokens(run: Run, prompts: list[str]) -> int:
    """The prompts' tokens in all, for `usage`; an empty or over-long prompt is refused."""
    if not prompts:
        raise ApiError(400, "'prompt' is an empty list; send a string or a list of strings", param="prompt")
    total = 0
    for prompt in prompts:
        n = len(run.tokenizer.encode(prompt))
        total += n
        if n == 0:
            raise ApiError(400, "'prompt' is empty; send at least one character", param="prompt")
        if n > MAX_PROMPT_TOKENS:
            raise ApiError(400, f"the prompt is {n:,} tokens; at most {MAX_PROMPT_TOKENS:,} are served (the model "
                           f"reads the last {run.model.context_size or run.config.model.block_size} of them)",
                           param="prompt", code="context_length_exceeded")
    return total


def decode(run: Run, fn, *args, **kwargs):
    """Run a decoding call, turning a bad setting (an `LmforgeError`) into a 400."""
    try:
        return fn(*args, **kwargs)
    except LmforgeError as exc:
        raise ApiError(400, str(exc)) from None


def complete(run: Run, req: CompletionRequest, prompts: list[str], prompt_tokens: int) -> tuple[list[dict], dict]:
    """Every choice of every prompt, and the token counts."""
    choices, completion_tokens = [], 0
    for prompt in prompts:
        samples = decode(run, run.sample, prompt, req.max_tokens, req.n, top_logprobs=req.logprobs or 0,
                         seed=req.seed, **req.decoding())
        for sample in samples:
            completion_tokens += len(sample.tokens)
            choices.append({"index": len(choices), "text": (prompt if req.echo else "") + sample.text,
                            "logprobs": logprobs(sample) if req.logprobs is not None else None,
                            "finish_reason": "length" if sample.finish_reason == "length" else "stop"})
    return choices, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}


def logprobs(sample: Sample) -> dict[str, list]:
    """OpenAI's completion log-probabilities: each token, its log-probability, its top alternatives, its offset."""
    offsets, at = [], 0
    for token in sample.tokens:
        offsets.append(at)
        at += len(token.text)
    return {"tokens": [t.text for t in sample.tokens], "token_logprobs": [t.logprob for t in sample.tokens],
            "top_logprobs": [{text: lp for _, text, lp in t.top} for t in sample.tokens], "text_offset": offsets}


def stream_choices(run: Run, lock: threading.Lock, req: CompletionRequest, prompts: list[str],
                   head: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The chunks of a streamed completion: choice after choice, piece by piece, each ending with its reason.
    The lock is held while decoding and let go when the client goes away (the generator is closed)."""
    with lock:
        index = 0
        for prompt in prompts:
            for i in range(req.n):
                seed = None if req.seed is None else req.seed + i
                text = ""
                pieces = decode(run, run.stream, prompt, req.max_tokens, seed=seed, **req.decoding())
                if req.echo:
                    yield chunk(head, index, prompt)
                for piece in pieces:
                    text += piece
                    yield chunk(head, index, piece)
                length = len(run.tokenizer.encode(text)) >= req.max_tokens if text else req.max_tokens == 0
                yield chunk(head, index, "", "length" if length else "stop")
                index += 1


def chunk(head: dict[str, Any], index: int, text: str, finish_reason: str | None = None) -> dict[str, Any]:
    return {**head, "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}]}


def sse(chunks: Iterator[dict[str, Any]]) -> Iterator[str]:
    """Server-Sent Events as OpenAI sends them: `data: {json}` per chunk, then `data: [DONE]`; an error met
    after the stream began is sent as an error event, since the status line is gone."""
    try:
        for item in chunks:
            yield f"data: {json.dumps(item, ensure_ascii=False)}\n\n"
    except (ApiError, LmforgeError) as exc:
        body = exc.body if isinstance(exc, ApiError) else error_body(str(exc))
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"
