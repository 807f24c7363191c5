"""The HTTP API against the decoder it wraps: the official openai client, streaming, and every bad request."""

import json
import time

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
    assert len(chunks) > 2 and chunks[-1]["choices"][0]["finish_reason"] == "length"  # 15 tokens, no EOS


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


def chars(run, text: str) -> list[int]:
    """The tiny run's tokenizer is a char one: one token per character (what the counts below rely on)."""
    ids = run.tokenizer.encode(text)
    assert len(ids) == len(text)
    return ids


def streamed_choices(client, body: dict) -> dict[int, list[dict]]:
    """Each choice's streamed chunks (its `choices[0]`), by index."""
    with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
        chunks = events(response)
    out: dict[int, list[dict]] = {}
    for chunk in chunks:
        (choice,) = chunk["choices"]
        out.setdefault(choice["index"], []).append(choice)
    return out


@pytest.mark.parametrize("stop", ["er", ["zzz", "e"]])  # "er": a string, not its characters ("r" comes first)
def test_a_stop_string_ends_the_text_just_before_it_whole_and_streamed(served, stop):
    run, client = served
    full = run.sample("All:", 40, seed=3, temperature=0.9)[0].text
    chars(run, full)
    cut, hit = min((full.find(s), s) for s in ([stop] if isinstance(stop, str) else stop) if s in full)  # the first
    assert 0 < cut < 39 and full.index("r") < cut
    body = {"prompt": "All:", "max_tokens": 2000, "temperature": 0.9, "seed": 3, "stop": stop}
    reply = client.post("/v1/completions", json=body).json()
    batcher = client.app.state.batchers["tiny"]  # the row left at the stop string, not 2,000 tokens later
    deadline = time.monotonic() + 0.5
    while batcher.rows_in_use and time.monotonic() < deadline:
        time.sleep(0.005)
    assert batcher.rows_in_use == 0
    assert reply["choices"][0]["text"] == full[:cut] and reply["choices"][0]["finish_reason"] == "stop"
    # the tokens decoded: the text's, and the stop string's; then the row ended
    used = cut + len(hit)
    assert reply["usage"] == {"prompt_tokens": 4, "completion_tokens": used, "total_tokens": 4 + used}
    (pieces,) = streamed_choices(client, body).values()
    assert "".join(p["text"] for p in pieces) == full[:cut]
    assert [p["finish_reason"] for p in pieces] == [None] * (len(pieces) - 1) + ["stop"]


def test_a_choice_that_runs_out_of_tokens_ends_with_length_whole_and_streamed(served):
    _, client = served
    body = {"prompt": "All:", "max_tokens": 5, "temperature": 0.9, "seed": 1}
    reply = client.post("/v1/completions", json=body).json()
    assert reply["choices"][0]["finish_reason"] == "length" and reply["usage"]["completion_tokens"] == 5
    (pieces,) = streamed_choices(client, body).values()
    assert [p["finish_reason"] for p in pieces] == [None] * (len(pieces) - 1) + ["length"]


def test_several_prompts_with_several_choices_each_are_in_prompt_order_and_echo_their_own_prompt(served):
    run, client = served
    body = {"prompt": ["All:", "Speak"], "n": 2, "max_tokens": 6, "temperature": 0.9, "seed": 5, "echo": True}
    # prompt p's choice i is choice p * n + i, decoded with seed + i
    expected = [p + s.text for p in body["prompt"] for s in run.sample(p, 6, 2, seed=5, temperature=0.9)]
    reply = client.post("/v1/completions", json=body).json()
    assert [c["text"] for c in reply["choices"]] == expected and [c["index"] for c in reply["choices"]] == [0, 1, 2, 3]
    assert reply["usage"] == {"prompt_tokens": 4 + 5, "completion_tokens": 4 * 6, "total_tokens": 9 + 24}
    chunks = streamed_choices(client, body)  # the prompt is echoed once, before the choice's first piece
    assert ["".join(p["text"] for p in chunks[i]) for i in range(4)] == expected


def test_logprobs_offsets_count_from_the_choice_start_whole_and_streamed_and_zero_asks_for_no_alternatives(served):
    run, client = served
    body = {"prompt": "All:", "max_tokens": 6, "temperature": 0, "logprobs": 0}
    whole = client.post("/v1/completions", json=body).json()["choices"][0]
    text = whole["text"]
    chars(run, text)
    expected = run.sample("All:", 6, top_logprobs=0, greedy=True)[0]
    assert whole["logprobs"] == {"tokens": list(text), "token_logprobs": [t.logprob for t in expected.tokens],
                                 "top_logprobs": [{}] * 6, "text_offset": [0, 1, 2, 3, 4, 5]}
    (pieces,) = streamed_choices(client, {**body, "logprobs": 1}).values()
    assert [o for p in pieces for o in p["logprobs"]["text_offset"]] == [0, 1, 2, 3, 4, 5]
    assert [t for p in pieces for t in p["logprobs"]["tokens"]] == list(text)


def test_a_prompt_of_exactly_the_token_limit_is_served(served):
    from lmforge.serving.app import MAX_PROMPT_TOKENS

    run, client = served
    prompt = ("All: " * MAX_PROMPT_TOKENS)[:MAX_PROMPT_TOKENS]
    chars(run, prompt)
    reply = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 0})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["text"] == "" and reply.json()["choices"][0]["finish_reason"] == "length"
    assert reply.json()["usage"] == {"prompt_tokens": 8192, "completion_tokens": 0, "total_tokens": 8192}
    reply = client.post("/v1/completions", json={"prompt": prompt + "A", "max_tokens": 0})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "context_length_exceeded"


def test_every_setting_at_its_bound_is_accepted(served):
    _, client = served
    body = {"prompt": "All:", "max_tokens": 1, "n": 16, "logprobs": 20, "presence_penalty": -2,
            "frequency_penalty": 2, "min_p": 1, "top_p": 1, "temperature": 0}
    reply = client.post("/v1/completions", json=body)
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["choices"]) == 16


@pytest.mark.parametrize("field, value", [("max_tokens", 2049), ("n", 0), ("n", 17), ("logprobs", 21),
                                          ("logprobs", -1), ("presence_penalty", -2.1), ("frequency_penalty", 2.1),
                                          ("min_p", 1.1), ("temperature", -0.1)])
def test_a_setting_just_past_its_bound_is_a_400_that_names_it(served, field, value):
    _, client = served
    reply = client.post("/v1/completions", json={"prompt": "All:", "max_tokens": 1, field: value})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == field, reply.text


@pytest.mark.parametrize("field", ["temperature", "repetition_penalty", "top_p"])
def test_infinity_or_nan_is_a_400_that_names_the_field(served, field):
    """Python's JSON reads Infinity and NaN; the request's own check names the field, not a command-line flag."""
    _, client = served
    for value in ("Infinity", "NaN"):
        body = f'{{"prompt": "All:", "max_tokens": 1, "{field}": {value}}}'
        reply = client.post("/v1/completions", content=body, headers={"content-type": "application/json"})
        error = reply.json()["error"]
        assert reply.status_code == 400 and error["param"] == field and "finite" in error["message"], reply.text


def test_a_body_of_exactly_the_size_limit_is_read(served):
    from lmforge.serving.schema import MAX_BODY_BYTES

    _, client = served
    head, tail = b'{"prompt": "All:", "max_tokens": 1, "unused": "', b'"}'
    body = head + b"x" * (MAX_BODY_BYTES - len(head) - len(tail)) + tail
    sent = dict(headers={"content-type": "application/json"})
    assert client.post("/v1/completions", content=body, **sent).status_code == 200
    assert client.post("/v1/completions", content=body + b" ", **sent).status_code == 413


def test_without_a_model_name_a_server_of_several_runs_asks_for_one(served):
    run, _ = served
    client = TestClient(create_app({"a": run, "b": run}))
    reply = client.post("/v1/completions", json={"prompt": "All:", "max_tokens": 1})
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "model_not_found"
    assert client.post("/v1/completions", json={"model": "b", "prompt": "All:", "max_tokens": 1}).status_code == 200


def test_requests_without_a_seed_draw_fresh_ones(served):
    _, client = served
    body = {"prompt": "All:", "max_tokens": 20, "temperature": 1.0}
    texts = [client.post("/v1/completions", json=body).json()["choices"][0]["text"] for _ in range(2)]
    assert texts[0] != texts[1]  # 20 draws from a barely trained char model: equal by chance about never
