"""One thread per served run owns its model and decodes every request's rows in one running batch.

    batcher = Batcher(run)
    job = batcher.submit([prompt_ids], cfg, n=2, seed=7, logprobs=None)   # from a request handler
    async for event in job.events(deadline):                              # its choices' text, step by step
        ...
    batcher.cancel(job)                        # the client went away or ran out of time: its rows end now

Requests reach the server one at a time, while others are half-way through. Each choice
of a request becomes a row of a `ContinuousBatch` (generation/continuous.py), which joins
the running batch at the next step and leaves it as soon as it ends, so a short request
never waits for a long one and one model call steps every request in flight. A row
keeps its own settings and its own generator (seed S+i for choice i, as `Run.sample`
seeds sample i), so a seeded request gives the tokens `lmforge sample` gives.

Only this thread touches the model and the batch: handlers talk to it through a queue
(`submit`, `cancel`), and it hands each job's events back to the handler's event loop
(`call_soon_threadsafe`). Text is made here, token by token, as `Run.sample` makes it
(`Continuation`: EOS ends a choice, a stop string ends it early and frees its row).
When no row is left the batch drops its caches, so an idle server holds no decoding
memory.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import queue
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import torch

from lmforge.config import DecodeConfig
from lmforge.generation.continuous import ContinuousBatch, Row
from lmforge.generation.decode import Step
from lmforge.generation.text import Continuation
from lmforge.run import Run, TokenInfo

IDLE_TRIM_S = 0.5  # idle this long after the last row ended, the thread trims the heap


@dataclass
class Event:
    """What one step did to one choice: text that became final, the tokens chosen (when log-probabilities
    were asked for), and why the choice ended, once it has."""

    index: int  # the choice: prompt p's choice i is p * n + i
    text: str = ""
    tokens: list[TokenInfo] = field(default_factory=list)
    finish_reason: str | None = None  # "length", "eos" or "stop"
    error: str | None = None  # decoding failed: the choice ends with this message


@dataclass(eq=False)
class _Choice:
    """A row's owner and its text so far; the row's `tag`."""

    job: Job
    index: int
    text: Continuation
    produced: int = 0  # tokens of the text (EOS not counted), for `usage`
    tokens: list[TokenInfo] = field(default_factory=list)  # a whole answer's, when log-probabilities are asked


class Job:
    """One request's rows, and the queue their events arrive on, in the event loop of the handler that
    submitted it. `rows` and `tokens` are written by the batcher thread (a choice's count before its last
    event is sent); `open` is the handler's."""

    def __init__(self, choices: int, loop: asyncio.AbstractEventLoop, streaming: bool):
        self.choices = choices
        self.loop = loop
        self.streaming = streaming
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.rows: list[Row] = []  # the batcher thread's
        self.open = choices  # choices not yet finished (the handler's count)
        self.tokens = [0] * choices  # completion tokens per choice, final once the choice ends

    def put(self, event: Event) -> None:
        send({self.loop: [(self, event)]})

    async def events(self, deadline: float | None = None) -> AsyncIterator[Event]:
        """Every event of every choice, until all have ended; TimeoutError once the loop's clock passes
        `deadline`."""
        while self.open:
            timeout = None if deadline is None else max(0.0, deadline - self.loop.time())
            event = await asyncio.wait_for(self.queue.get(), timeout)
            if event.finish_reason is not None or event.error is not None:
                self.open -= 1
            yield event


class Batcher:
    """The decoding thread of one run (see the module docstring)."""

    def __init__(self, run: Run, name: str = "run"):
        self.run = run
        self.batch = ContinuousBatch(run.model)
        self.rows_in_use = 0  # rows decoding after the last step; written by the thread, read by anyone
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._freed = False  # caches were let go since the heap was last trimmed
        self._thread = threading.Thread(target=self._loop, name=f"lmforge-batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, prompts: Sequence[Sequence[int]], cfg: DecodeConfig, n: int, seed: int | None,
               logprobs: int | None, streaming: bool = True) -> Job:
        """Queue `n` choices of every prompt (prompt p's choice i decodes with seed + i); they join the
        running batch at its next step. Call from a coroutine: events go back to its event loop, step by
        step when `streaming`, else one per choice when it ends."""
        job = Job(len(prompts) * n, asyncio.get_running_loop(), streaming)
        if seed is None:
            seed = torch.Generator().seed() % 2**62  # fresh entropy, as `Run.sample` draws it
        self._inbox.put(("add", job, [list(p) for p in prompts], cfg, n, seed, logprobs))
        return job

    def cancel(self, job: Job) -> None:
        """End `job`'s rows at the next step (their place in the batch is freed then)."""
        self._inbox.put(("cancel", job))

    def close(self) -> None:
        self._closed = True
        self._inbox.put(("close",))
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ the thread

    def _loop(self) -> None:
        while not self._closed:
            try:
                idle = not self.rows_in_use
                if not self._take(block=idle) and idle and self._freed:
                    _trim_heap()  # idle for a while after a burst: now is a good time
                    self._freed = False
                if self.rows_in_use:
                    self._step()
            except Exception as exc:  # noqa: BLE001 - whatever failed, the thread must live on
                self._fail_all(exc)

    def _fail_all(self, exc: Exception) -> None:
        """End every row in flight with an error event and start a fresh batch; later requests are served."""
        for row in self.batch.rows:
            row.ended = True
            row.tag.job.put(Event(row.tag.index, error=f"decoding failed: {exc}"))
        self.batch = ContinuousBatch(self.run.model)
        self._settle()

    def _take(self, block: bool) -> bool:
        """Handle every message waiting (after waiting a little for one when the batch is idle); whether
        there was any."""
        message = None
        try:
            message = self._inbox.get(block=block, timeout=IDLE_TRIM_S if block else None)
            while True:
                kind, *args = message
                if kind == "add":
                    self._add(*args)
                elif kind == "cancel":
                    for row in args[0].rows:
                        self.batch.remove(row)
                self._settle()
                message = self._inbox.get_nowait()
        except queue.Empty:
            return message is not None

    def _add(self, job: Job, prompts: list[list[int]], cfg: DecodeConfig, n: int, seed: int,
             logprobs: int | None) -> None:
        device = self.run.device
        for p, prompt in enumerate(prompts):
            choices = [_Choice(job, p * n + i, Continuation(self.run.tokenizer, cfg.stop)) for i in range(n)]
            try:  # a generator too: a seed torch refuses must end this request, not leave it waiting
                generators = [torch.Generator(device=device).manual_seed(seed + i) for i in range(n)]
                rows = self.batch.add(prompt, cfg, generators, logprobs, tags=choices)
            except Exception as exc:  # noqa: BLE001 - a failed request must not stop the thread
                for choice in choices:
                    job.put(Event(choice.index, error=f"decoding failed: {exc}"))
                continue
            job.rows += rows
            for row in rows:
                if row.ended:  # max_tokens 0: done before the first step
                    job.put(Event(row.tag.index, finish_reason="length"))

    def _step(self) -> None:
        outbox: dict[asyncio.AbstractEventLoop, list[tuple[Job, Event]]] = {}
        for row, step in self.batch.step():  # a failure here fails the rows in flight (`_loop`)
            event = self._advance(row, step)
            if event is not None:
                job = row.tag.job
                outbox.setdefault(job.loop, []).append((job, event))
        send(outbox)
        self._settle()

    def _advance(self, row: Row, step: Step) -> Event | None:
        """The row's token made into text, as `Run.sample` makes it; a stop string ends the row. A streamed
        choice gets an event when text became final; a whole answer gets one event, when it ends (one
        wake-up of the handler per choice instead of one per token)."""
        choice: _Choice = row.tag
        text, tokens = "", []
        if row.token == row.cfg.eos_id:
            text = choice.text.finish("eos")
        else:
            text = choice.text.add(row.token)
            choice.produced += 1
            if row.logprobs is not None:
                tokens.append(self.run.token_info(step, 0))
        if choice.text.finish_reason is None and row.ended:
            text += choice.text.finish("length")
        reason = choice.text.finish_reason
        if reason is not None:
            self.batch.remove(row)  # a stop string: the row may still have steps to go
            choice.job.tokens[choice.index] = choice.produced
        if not choice.job.streaming:
            choice.tokens += tokens
            return None if reason is None else Event(choice.index, choice.text.text, choice.tokens, reason)
        return Event(choice.index, text, tokens, reason) if text or tokens or reason else None

    def _settle(self) -> None:
        """Count the rows left; when none is, let go of the batch's caches (the heap is trimmed once idle)."""
        self.rows_in_use = len(self.batch.rows)
        if not self.rows_in_use and (self.batch.groups or self.batch.waiting):
            self.batch.drop_ended()
            self._freed = True


def send(outbox: dict[asyncio.AbstractEventLoop, list[tuple[Job, Event]]]) -> None:
    """Queue each event for its job, one call per event loop: a step's events wake a handler's loop once,
    however many streams it serves."""
    for loop, items in outbox.items():
        try:
            loop.call_soon_threadsafe(_put_all, items)
        except RuntimeError:  # the handlers' loop has closed: nobody is listening
            pass


def _put_all(items: list[tuple[Job, Event]]) -> None:
    for job, event in items:
        job.queue.put_nowait(event)


def _trim_heap() -> None:
    """Hand freed heap pages back to the system (glibc keeps them otherwise, and the server's resident
    memory would stay at its peak after a burst of requests). A no-op where there is no glibc."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()
