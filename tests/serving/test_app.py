"""The HTTP API against the decoder it wraps: the official openai client, streaming, and every bad request."""

import json

import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import lmforge  # noqa: E402
from lmforge.serving.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def served(tiny_run):
    run = lmforge.load(tiny_run, device="cpu")
    return run, TestClient(create_app({"tiny": run}))


def events(response) -> list:
    lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_a_seeded_completion_is_what_lmforge_sample_writes(served):
    run, client = served
    body = {"model": "tiny", "prompt": "All:", "max_tokens": 20, "temperature": 0.9, "top_k": 5, "seed": 3, "n": 2}
    reply = client.post("/v1/completions", json=body).json()
    expected = run.sample("All:", 20, 2, seed=3, temperature=0.9, top_k=5)
    assert [c["text"] for c in reply["choices"]] == [s.text for s in expected]
    assert reply["usage"]["prompt_tokens"] == len(run.tokenizer.encode("All:"))
    assert reply["usage"]["completion_tokens"] == sum(len(run.tokenizer.encode(s.text)) for s in expected)


def test_streaming_sends_the_same_text_piece_by_piece_and_ends_with_done(served):
    _, client = served
    body = {"prompt": "All:", "max_tokens": 15, "temperature": 0.8, "seed": 1}
    whole = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        chunks = events(response)
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole
    assert len(chunks) > 2 and chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")


def test_echo_and_logprobs(served):
    run, client = served
    reply = client.post("/v1/completions", json={"prompt": "All:", "max_tokens": 5, "temperature": 0, "echo": True,
                                                 "logprobs": 2}).json()
    choice = reply["choices"][0]
    assert choice["text"].startswith("All:")
    assert len(choice["logprobs"]["tokens"]) == 5 and all(len(t) == 2 for t in choice["logprobs"]["top_logprobs"])
    assert "".join(choice["logprobs"]["tokens"]) == choice["text"][len("All:"):]


def test_the_official_openai_client_lists_completes_and_streams(served):
    openai = pytest.importorskip("openai")
    run, client = served
    api = openai.OpenAI(api_key="unused", base_url="http://testserver/v1", http_client=client)
    assert [m.id for m in api.models.list()] == ["tiny"]
    done = api.completions.create(model="tiny", prompt="All:", max_tokens=10, temperature=0.7, seed=5)
    assert done.choices[0].text == run.sample("All:", 10, seed=5, temperature=0.7)[0].text
    streamed = "".join(c.choices[0].text for c in api.completions.create(model="tiny", prompt="All:", max_tokens=10,
                                                                          temperature=0.7, seed=5, stream=True))
    assert streamed == done.choices[0].text


@pytest.mark.parametrize("body, status, fragment", [
    (b"{not json", 400, "not valid JSON"),
    ({"prompt": "All:", "max_tokens": -1}, 400, "max_tokens"),
    ({"prompt": "All:", "max_tokens": 10**9}, 400, "max_tokens"),
    ({"prompt": "All:", "top_p": 1.5}, 400, "top_p"),
    ({"prompt": "All:", "top_p": 0}, 400, "top_p"),
    ({"prompt": "All:", "model": "nope"}, 404, "not served"),
    ({"prompt": "All:", "seed": 10**30}, 400, "seed"),  # more than torch's 64 bits: the request hung
    ({"prompt": ""}, 400, "empty"),
    ({"prompt": "All: " * 5000}, 400, "tokens"),
    (b'{"prompt": "All:\\ud800"}', 400, "lone surrogate"),  # valid JSON, not valid Unicode
])
def test_bad_requests_get_a_4xx_in_openai_shape_and_the_server_keeps_serving(served, body, status, fragment):
    _, client = served
    sent = dict(content=body, headers={"content-type": "application/json"}) if isinstance(body, bytes) else dict(json=body)
    reply = client.post("/v1/completions", **sent)
    assert reply.status_code == status, reply.text
    assert fragment in reply.json()["error"]["message"] and reply.json()["error"]["type"]
    assert client.post("/v1/completions", json={"prompt": "All:", "max_tokens": 3}).status_code == 200


def test_an_api_key_is_required_when_set(served):
    run, _ = served
    client = TestClient(create_app({"tiny": run}, api_key="s3cret"))
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).json()["data"][0]["id"] == "tiny"
    assert client.get("/health").status_code == 200  # health needs no key


def test_a_body_over_the_limit_is_refused_before_it_is_read(served):
    _, client = served
    reply = client.post("/v1/completions", content=b"x" * (2 << 20), headers={"content-type": "application/json"})
    assert reply.status_code == 413 and "bytes" in reply.json()["error"]["message"]
