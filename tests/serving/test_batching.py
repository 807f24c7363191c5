"""The server's batch, through a real server on 127.0.0.1: requests decoded together still give what `lmforge
sample` gives, a short request overtakes a long one, a client that leaves mid-stream frees its row at once,
and a request past the time limit gets a 504 and frees its rows."""

import asyncio
import json
import threading
import time
from contextlib import contextmanager

import pytest

uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

import lmforge  # noqa: E402
from lmforge.serving.app import create_app  # noqa: E402


@contextmanager
def live(app):
    """`app` served by uvicorn on a free port of 127.0.0.1 in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.time() + seconds
    while not condition():
        if time.time() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture(scope="module")
def run(tiny_run):
    return lmforge.load(tiny_run, device="cpu")


def idle(batcher) -> bool:
    return batcher.rows_in_use == 0 and not batcher.batch.groups and not batcher.batch.waiting


def test_concurrent_requests_are_decoded_together_and_equal_lmforge_sample(run):
    app = create_app({"tiny": run})
    batcher = app.state.batchers["tiny"]
    bodies = [{"prompt": p, "max_tokens": m, "temperature": 0.9, "top_k": 8, "seed": s, "n": n}
              for p, m, s, n in (("All:", 400, 1, 1), ("First Citizen:", 30, 2, 2), ("Speak", 20, 3, 1))]
    peak = []

    async def main(base):
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            long = asyncio.ensure_future(client.post("/v1/completions", json=bodies[0]))
            assert await asyncio.to_thread(wait_until, lambda: batcher.rows_in_use == 1)
            short = await asyncio.gather(*(client.post("/v1/completions", json=b) for b in bodies[1:]))
            peak.append(long.done())  # the short ones joined the long one's batch and ended first
            return [(await long).json()] + [r.json() for r in short]

    with live(app) as base:
        replies = asyncio.run(main(base))
    assert peak == [False], "the short requests waited for the long one"
    for body, reply in zip(bodies, replies):
        expected = run.sample(body["prompt"], body["max_tokens"], body["n"], seed=body["seed"], temperature=0.9,
                              top_k=8)
        assert [c["text"] for c in reply["choices"]] == [s.text for s in expected]
    assert idle(batcher)  # every row left and the caches with them


def test_a_client_that_leaves_mid_stream_frees_its_row_and_the_next_request_succeeds(run):
    app = create_app({"tiny": run})
    batcher = app.state.batchers["tiny"]
    with live(app) as base, httpx.Client(base_url=base, timeout=60) as client:
        body = {"prompt": "All:", "max_tokens": 2000, "stream": True}  # past the context: about a second or more
        with client.stream("POST", "/v1/completions", json=body) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ") and batcher.rows_in_use == 1
        # the connection is closed: the row leaves the batch long before its 2,000 tokens
        assert wait_until(lambda: idle(batcher), 5), f"{batcher.rows_in_use} rows still decoding"
        # a client that gives up on a whole (not streamed) answer frees its rows too
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v1/completions", json={**body, "stream": False, "n": 3}, timeout=0.5)
        assert wait_until(lambda: idle(batcher), 5), f"{batcher.rows_in_use} rows still decoding"
        reply = client.post("/v1/completions", json={"prompt": "All:", "max_tokens": 5, "seed": 0})
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 5


def test_a_request_over_the_time_limit_gets_a_504_and_frees_its_rows(run):
    app = create_app({"tiny": run}, request_timeout=0.05)
    batcher = app.state.batchers["tiny"]
    with live(app) as base, httpx.Client(base_url=base, timeout=60) as client:
        body = {"prompt": "All:", "max_tokens": 2000, "n": 4}
        reply = client.post("/v1/completions", json=body)
        assert reply.status_code == 504, reply.text
        error = reply.json()["error"]
        assert "--request-timeout" in error["message"] and error["code"] == "timeout"
        assert wait_until(lambda: idle(batcher), 5)
        with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
            text = response.read().decode()
        if response.status_code == 200:  # the first token came in time: the stream ends with an error event
            events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
            assert events[-1]["error"]["code"] == "timeout" and text.rstrip().endswith("data: [DONE]")
        else:
            assert response.status_code == 504
        assert wait_until(lambda: idle(batcher), 5)
        assert client.post("/v1/completions", json={"prompt": "All:", "max_tokens": 1}).status_code == 200


def test_a_failure_while_making_a_token_into_text_fails_that_request_and_the_server_keeps_serving(run, monkeypatch):
    """A fault after the model step (turning a token into text and log-probabilities) must end the request
    with an error, not kill the decoding thread and leave every later request waiting forever."""
    def boom(*_):
        raise RuntimeError("boom")

    app = create_app({"tiny": run})
    with live(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        with monkeypatch.context() as patch:
            patch.setattr(type(run), "token_info", boom)
            reply = client.post("/v1/completions", json={"prompt": "All:", "max_tokens": 5, "logprobs": 1})
        assert reply.status_code == 500 and "boom" in reply.json()["error"]["message"]
        again = client.post("/v1/completions", json={"prompt": "All:", "max_tokens": 5, "logprobs": 1})
        assert again.status_code == 200 and len(again.json()["choices"][0]["logprobs"]["tokens"]) == 5
