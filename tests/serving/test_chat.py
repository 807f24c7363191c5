"""`/v1/chat/completions` for a run made by `lmforge finetune`: the official openai client, whole and streamed,
gets the answer `lmforge sample` writes after the conversation rendered by the run's chat template; a run
without a template is told how to get one."""

import json

import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import lmforge  # noqa: E402
from lmforge.adapt.instructions import ChatTemplate  # noqa: E402
from lmforge.cli import main  # noqa: E402
from lmforge.serving.app import create_app  # noqa: E402

PAIRS = [{"prompt": f"Q: {a} plus {b}?\nA: ", "completion": str(a + b)} for a in range(4) for b in range(4)]
MESSAGES = [{"role": "system", "content": "Add."}, {"role": "user", "content": "1 plus 2?"},
            {"role": "assistant", "content": "3"}, {"role": "user", "content": "2 plus 2?"}]
ONE_TURN = [MESSAGES[0], MESSAGES[3]]  # no earlier answer, so no EOS inside: the rendered text is the whole prompt


@pytest.fixture(scope="module")
def served(tiny_run, tmp_path_factory):
    data = tmp_path_factory.mktemp("chat") / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    out = data.parent / "chat"
    assert main(["finetune", str(tiny_run), "--data", str(data), "--out", str(out), "--train.max_steps", "4",
                 "--train.eval_interval", "2"]) == 0
    tuned, base = lmforge.load(out, device="cpu"), lmforge.load(tiny_run, device="cpu")
    return tuned, TestClient(create_app({"chat": tuned, "base": base}))


def test_the_openai_client_chats_whole_and_streamed_as_lmforge_sample_answers(served):
    openai = pytest.importorskip("openai")
    tuned, client = served
    api = openai.OpenAI(api_key="unused", base_url="http://testserver/v1", http_client=client)
    done = api.chat.completions.create(model="chat", messages=ONE_TURN, max_tokens=12, temperature=0.9, seed=4, n=2)
    # a char tokenizer encodes the turns one by one as it encodes their text joined: the rendered prompt
    prompt = ChatTemplate.load(tuned.path).prompt(ONE_TURN)
    expected = tuned.sample(prompt, 12, 2, seed=4, temperature=0.9)
    assert [c.message.content for c in done.choices] == [s.text for s in expected]
    assert all(c.message.role == "assistant" for c in done.choices)
    assert done.object == "chat.completion" and done.usage.prompt_tokens == len(tuned.tokenizer.encode(prompt))
    stream = api.chat.completions.create(model="chat", messages=ONE_TURN, max_tokens=12, temperature=0.9, seed=4,
                                         stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].object == "chat.completion.chunk"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected[0].text
    assert chunks[-1].choices[0].finish_reason == done.choices[0].finish_reason == \
        ("length" if expected[0].finish_reason == "length" else "stop")


def test_chat_streams_end_with_done_and_carry_logprobs_when_asked(served):
    _, client = served
    body = {"model": "chat", "messages": MESSAGES, "max_tokens": 4, "temperature": 0, "stream": True,
            "logprobs": True, "top_logprobs": 2}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    content = [entry for c in chunks if c["choices"][0]["logprobs"] for entry in c["choices"][0]["logprobs"]["content"]]
    assert content and all(len(e["top_logprobs"]) == 2 and e["logprob"] <= 0 for e in content)
    whole = client.post("/v1/chat/completions", json={**body, "stream": False}).json()
    assert "".join(e["token"] for e in content) == whole["choices"][0]["message"]["content"]
    # the turns are tokenized as in training: an EOS closes the earlier answer
    rendered = ChatTemplate.load(served[0].path).prompt(MESSAGES)
    assert whole["usage"]["prompt_tokens"] == len(served[0].tokenizer.encode(rendered)) + 1


@pytest.mark.parametrize("body, fragment", [
    ({"model": "base", "messages": MESSAGES}, "lmforge finetune"),
    ({"model": "chat", "messages": MESSAGES[:3]}, "end 'messages' with a user turn"),
    ({"model": "chat", "messages": []}, "messages"),
    ({"model": "chat", "messages": [{"role": "robot", "content": "hi"}]}, "role"),
    ({"model": "chat", "messages": MESSAGES, "top_p": 0}, "top_p"),
])
def test_bad_chat_requests_get_a_400_that_says_what_to_do(served, body, fragment):
    _, client = served
    reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 400 and fragment in reply.json()["error"]["message"], reply.text


def chat(client, **body) -> dict:
    reply = client.post("/v1/chat/completions", json={"model": "chat", "messages": ONE_TURN, "temperature": 0.9,
                                                       "seed": 4, **body})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_answer_length_is_max_completion_tokens_then_max_tokens_then_256(served):
    tuned, client = served
    prompt = ChatTemplate.load(tuned.path).prompt(ONE_TURN)
    for body, limit in (({"max_tokens": 3, "max_completion_tokens": 5}, 5), ({"max_tokens": 3}, 3), ({}, 256)):
        expected = tuned.sample(prompt, limit, 2, seed=4, temperature=0.9)  # choice 1 answers in over 16 tokens
        choices = chat(client, n=2, **body)["choices"]
        assert [c["message"]["content"] for c in choices] == [s.text for s in expected], body
        assert [c["finish_reason"] for c in choices] == ["length" if s.finish_reason == "length" else "stop"
                                                         for s in expected]


def test_usage_counts_the_answer_tokens_without_eos(served):
    """The fine-tuned run answers and stops at EOS: the usage counts the answer's characters, not the EOS."""
    tuned, client = served
    reply = chat(client, max_tokens=256, n=4)
    texts = [c["message"]["content"] for c in reply["choices"]]
    assert len(tuned.tokenizer.encode("".join(texts))) == len("".join(texts))  # a char tokenizer
    assert "stop" in [c["finish_reason"] for c in reply["choices"]]  # at least one answer ended at EOS
    assert reply["usage"]["completion_tokens"] == sum(len(t) for t in texts)


def test_logprobs_alone_give_each_token_without_alternatives_and_top_logprobs_alone_give_none(served):
    _, client = served
    reply = chat(client, max_tokens=5, logprobs=True)
    content = reply["choices"][0]["logprobs"]["content"]
    assert "".join(e["token"] for e in content) == reply["choices"][0]["message"]["content"] and len(content) == 5
    assert all(e["top_logprobs"] == [] and e["bytes"] == list(e["token"].encode()) for e in content)
    assert chat(client, max_tokens=5, top_logprobs=3)["choices"][0]["logprobs"] is None


def test_a_streamed_choice_opens_with_the_role_once_and_closes_with_its_reason_once(served):
    _, client = served
    body = {"model": "chat", "messages": ONE_TURN, "max_tokens": 6, "temperature": 0.9, "seed": 4, "n": 2,
            "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    whole = chat(client, max_tokens=6, n=2)["choices"]
    sent = [json.loads(line[6:])["choices"][0] for line in lines[:-1]]
    for i in range(2):
        mine = [c for c in sent if c["index"] == i]
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        assert [c for c in mine if "role" in c["delta"]] == mine[:1]
        assert [c["finish_reason"] for c in mine] == [None] * (len(mine) - 1) + [whole[i]["finish_reason"]]
        assert "".join(c["delta"].get("content", "") for c in mine) == whole[i]["message"]["content"]


def test_a_conversation_of_the_token_limit_is_served_and_one_token_more_is_a_400(served):
    tuned, client = served
    text = "All: " * 2000
    prompt = ChatTemplate.load(tuned.path).prompt([{"role": "user", "content": text}])
    assert len(tuned.tokenizer.encode(prompt)) == len(prompt)  # a char tokenizer
    over = len(prompt) - len(text)  # the template's own characters
    for length, status in ((8192, 200), (8193, 400)):
        messages = [{"role": "user", "content": text[: length - over]}]
        reply = client.post("/v1/chat/completions", json={"model": "chat", "messages": messages, "max_tokens": 1})
        assert reply.status_code == status, reply.text
    assert reply.json()["error"]["param"] == "messages" and reply.json()["error"]["code"] == "context_length_exceeded"
