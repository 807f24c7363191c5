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
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


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
