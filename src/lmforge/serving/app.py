"""The HTTP API: `GET /health`, `GET /v1/models`, `POST /v1/completions` and, for runs fine-tuned with a chat
template, `POST /v1/chat/completions` (chat.py); both stream with `"stream": true`.

Every served run is a model, named by its folder. Concurrent requests are decoded together:
one thread per run owns the model (batcher.py), and every choice of every request is a row
that joins the running batch at its next step and leaves it when it ends, or when its client
goes away. Rows are decoded by the code `lmforge sample` uses, each with its own settings
and generator, so a request with a `seed` gives the text `lmforge sample --seed S` gives with
the same settings; choice i of a request uses seed S+i, as sample i of `--num-samples` does.
A prompt longer than the model's context is continued from its last context's worth of
tokens (the window slides, as `lmforge sample` does); prompts over `MAX_PROMPT_TOKENS` are
refused. With a `request_timeout`, a request still decoding after that many seconds is ended
with a 504 (or, once a stream has begun, an error event).

Errors use OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) with a 4xx
status, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.datastructures import Headers

from lmforge.errors import LmforgeError
from lmforge.run import Run, Sample
from lmforge.serving.batcher import Batcher, Event, Job
from lmforge.serving.schema import MAX_BODY_BYTES, CompletionRequest, Decoding, error_body

MAX_PROMPT_TOKENS = 8192


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.body = status, error_body(message, kind, param, code)


def create_app(runs: dict[str, Run], api_key: str | None = None, request_timeout: float | None = None) -> FastAPI:
    """An app serving `runs` (name → loaded run); with `api_key`, every /v1 request must carry it as a bearer;
    with `request_timeout`, a request may decode for that many seconds."""
    batchers = {name: Batcher(run, name) for name, run in runs.items()}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        for batcher in batchers.values():
            batcher.close()

    app = FastAPI(title="lmforge", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.batchers = batchers
    app.add_middleware(Guard, api_key=api_key)
    created = int(time.time())

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(LmforgeError)
    async def bad_input(_: Request, exc: LmforgeError) -> JSONResponse:  # e.g. a lone surrogate in a prompt
        return JSONResponse(error_body(str(exc)), status_code=400)

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

    from lmforge.serving.chat import router as chat  # these import this module: not at the top
    from lmforge.serving.playground import router as playground

    app.include_router(playground(runs))
    app.include_router(chat(runs, batchers, request_timeout))

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(runs)}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "lmforge"}
                                           for name in runs]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        name = pick_model(runs, req.model)
        run = runs[name]
        prompts = req.prompts()
        ids = encode_prompts(run, prompts)
        head = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": name}
        render = Completion(head, req, prompts)
        job = submit(run, batchers[name], req, ids, req.max_tokens, req.logprobs)
        if req.stream:
            return await streamed(batchers[name], job, request_timeout, render.chunk)
        await finished(batchers[name], job, request, request_timeout, render.take)
        prompt_tokens = sum(len(p) for p in ids)
        return {**head, "choices": render.choices(), "usage": usage(prompt_tokens, job)}

    return app


class Guard:
    """Checks made before a request is read: the body's size, and the API key on /v1 paths (plain ASGI, so
    a streamed response passes through untouched)."""

    def __init__(self, app, api_key: str | None):
        self.app, self.api_key = app, api_key

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            size = headers.get("content-length")
            refusal = None
            if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
                refusal = JSONResponse(error_body(f"the body is over {MAX_BODY_BYTES:,} bytes; send a shorter prompt"),
                                       status_code=413)
            elif self.api_key and scope["path"].startswith("/v1/") and \
                    headers.get("authorization") != f"Bearer {self.api_key}":
                refusal = JSONResponse(error_body("missing or wrong API key; send the header 'Authorization: Bearer "
                                                  "KEY'", "authentication_error", code="invalid_api_key"),
                                       status_code=401)
            if refusal is not None:
                return await refusal(scope, receive, send)
        await self.app(scope, receive, send)


def pick_model(runs: dict[str, Run], model: str | None) -> str:
    if model is None and len(runs) == 1:
        return next(iter(runs))
    if model not in runs:
        names = ", ".join(runs)
        raise ApiError(404, f"the model '{model}' is not served; models: {names}", param="model",
                       code="model_not_found")
    return model


def encode_prompts(run: Run, prompts: list[str]) -> list[list[int]]:
    """Each prompt's token ids; an empty or over-long prompt is refused."""
    if not prompts:
        raise ApiError(400, "'prompt' is an empty list; send a string or a list of strings", param="prompt")
    out = [run.tokenizer.encode(prompt) for prompt in prompts]
    for ids in out:
        if not ids:
            raise ApiError(400, "'prompt' is empty; send at least one character", param="prompt")
        check_length(run, len(ids), "prompt")
    return out


def check_length(run: Run, n: int, param: str) -> None:
    if n > MAX_PROMPT_TOKENS:
        raise ApiError(400, f"the {param} is {n:,} tokens; at most {MAX_PROMPT_TOKENS:,} are served (the model "
                       f"reads the last {run.model.context_size or run.config.model.block_size} of them)",
                       param=param, code="context_length_exceeded")


def decode(run: Run, fn, *args, **kwargs):
    """Run a decoding call, turning a bad setting (an `LmforgeError`) into a 400."""
    try:
        return fn(*args, **kwargs)
    except LmforgeError as exc:
        raise ApiError(400, str(exc)) from None


def submit(run: Run, batcher: Batcher, req: Decoding, ids: list[list[int]], max_tokens: int,
           logprobs: int | None) -> Job:
    """Check the request's settings (a 400 before anything decodes), then queue its rows."""
    cfg = decode(run, run.decode_config, max_tokens, **req.decoding())
    return batcher.submit(ids, cfg, req.n, req.seed, logprobs, req.stream)


def usage(prompt_tokens: int, job: Job) -> dict[str, int]:
    completion_tokens = sum(job.tokens)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def deadline_of(timeout: float | None) -> float | None:
    return None if timeout is None else asyncio.get_running_loop().time() + timeout


def timed_out(timeout: float | None) -> ApiError:
    return ApiError(504, f"the request was still decoding after {timeout:g} s (the server's --request-timeout); "
                    "ask for fewer tokens or choices", kind="timeout", code="timeout")


def failed(event: Event) -> ApiError:
    return ApiError(500, event.error or "decoding failed", kind="server_error")


async def finished(batcher: Batcher, job: Job, request: Request, timeout: float | None,
                   take: Callable[[Event], None]) -> None:
    """Hand every event of `job` to `take` until all its choices end. Past the time limit: 504. If the client
    goes away first, its rows are freed at once."""

    async def collect() -> None:
        async for event in job.events():
            if event.error is not None:
                raise failed(event)
            take(event)

    work = asyncio.ensure_future(collect())
    gone = asyncio.ensure_future(disconnected(request))
    try:
        done, _ = await asyncio.wait({work, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if work in done:
            work.result()  # a decoding error is raised here
            return
        raise timed_out(timeout) if not done else ApiError(499, "the client closed the connection")
    finally:
        work.cancel()
        gone.cancel()
        if job.open:
            batcher.cancel(job)


async def disconnected(request: Request) -> None:
    """Return when the client closes the connection (the body has been read: all that is left to receive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def streamed(batcher: Batcher, job: Job, timeout: float | None,
                   chunks: Callable[[Event], list[dict[str, Any]]]) -> StreamingResponse:
    """A Server-Sent Events response of `job`'s events, as `chunks` renders them. The response starts once the
    first event is there, so a request that runs out of time before any token still gets a 504; later, the
    time limit ends the stream with an error event. A client that goes away frees its rows at once (the
    stream is cancelled or closed: see `events`)."""
    deadline = deadline_of(timeout)
    source = job.events(deadline)
    try:
        first = await anext(source)
    except TimeoutError:
        batcher.cancel(job)
        raise timed_out(timeout) from None
    except BaseException:
        batcher.cancel(job)  # the client left while waiting (cancelled)
        raise
    return StreamingResponse(sse(batcher, job, first, source, chunks, timeout), media_type="text/event-stream")


async def sse(batcher: Batcher, job: Job, first: Event, source: AsyncIterator[Event],
              chunks: Callable[[Event], list[dict[str, Any]]], timeout: float | None) -> AsyncIterator[str]:
    """Server-Sent Events as OpenAI sends them: `data: {json}` per chunk, then `data: [DONE]`; an error met
    after the stream began is sent as an error event, since the status line is gone."""
    try:
        event: Event | None = first
        while event is not None:
            if event.error is not None:
                yield data(failed(event).body)
            else:
                for item in chunks(event):
                    yield data(item)
            event = await anext(source, None)
    except TimeoutError:
        yield data(timed_out(timeout).body)
    finally:  # also when the client went away: the stream is cancelled (or closed) here
        if job.open:
            batcher.cancel(job)
    yield "data: [DONE]\n\n"


def data(item: dict[str, Any]) -> str:
    return f"data: {json.dumps(item, ensure_ascii=False)}\n\n"


def finish_reason(event: Event) -> str | None:
    """OpenAI's reasons: "length", or "stop" (EOS or a stop string)."""
    return None if event.finish_reason is None else "length" if event.finish_reason == "length" else "stop"


class Completion:
    """The choices of a `/v1/completions` request, built from its events: whole, or chunk by chunk."""

    def __init__(self, head: dict[str, Any], req: CompletionRequest, prompts: list[str]):
        self.head, self.req, self.prompts = head, req, prompts
        n = len(prompts) * req.n
        self.samples = [Sample("", "length") for _ in range(n)]
        self.echoed = [False] * n

    def take(self, event: Event) -> Sample:
        sample = self.samples[event.index]
        sample.text += event.text
        sample.tokens += event.tokens
        sample.finish_reason = finish_reason(event) or sample.finish_reason
        return sample

    def choices(self) -> list[dict[str, Any]]:
        return [{"index": i, "text": self._echo(i, sample.text),
                 "logprobs": logprobs(sample) if self.req.logprobs is not None else None,
                 "finish_reason": sample.finish_reason} for i, sample in enumerate(self.samples)]

    def chunk(self, event: Event) -> list[dict[str, Any]]:
        before = len(self.samples[event.index].text)
        self.take(event)
        info = None
        if self.req.logprobs is not None:
            info = logprobs(Sample(event.text, "", event.tokens), start=before)
        text = self._echo(event.index, event.text)
        return [{**self.head, "choices": [{"index": event.index, "text": text, "logprobs": info,
                                           "finish_reason": finish_reason(event)}]}]

    def _echo(self, index: int, text: str) -> str:
        """The prompt before a choice's first text, when `echo` asks for it."""
        if not self.req.echo or self.echoed[index]:
            return text
        self.echoed[index] = True
        return self.prompts[index // self.req.n] + text


def logprobs(sample: Sample, start: int = 0) -> dict[str, list]:
    """OpenAI's completion log-probabilities: each token, its log-probability, its top alternatives, its offset
    (from `start`: where the text of a streamed chunk begins in its choice)."""
    offsets, at = [], start
    for token in sample.tokens:
        offsets.append(at)
        at += len(token.text)
    return {"tokens": [t.text for t in sample.tokens], "token_logprobs": [t.logprob for t in sample.tokens],
            "top_logprobs": [{text: lp for _, text, lp in t.top} for t in sample.tokens], "text_offset": offsets}
