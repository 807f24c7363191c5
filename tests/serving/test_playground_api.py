"""The playground's endpoints against lmforge's own computations: `eval`'s bits per byte, the sampler's
processors, the decoder's log-probabilities, and attention that is a causal softmax."""

import math
import shutil

import pytest
import torch

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import lmforge  # noqa: E402
from lmforge.evaluation.perplexity import evaluate_run  # noqa: E402
from lmforge.serving.app import create_app  # noqa: E402
from lmforge.serving.inspection import record_attention  # noqa: E402

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


@pytest.fixture(scope="module")
def served(tiny_run):
    run = lmforge.load(tiny_run, device="cpu")
    return run, TestClient(create_app({"tiny": run}))


def test_bits_per_byte_is_what_lmforge_eval_reports(served, tmp_path):
    run, client = served
    reply = client.post("/v1/playground/inspect", json={"text": TEXT * 3}).json()
    data = tmp_path / "text.txt"
    data.write_text(TEXT * 3, encoding="utf-8")
    assert reply["bits_per_byte"] == pytest.approx(evaluate_run(run, data)["bits_per_byte"], rel=1e-9)
    tokens = reply["tokens"]
    assert "".join(t["text"] for t in tokens) == TEXT * 3 and tokens[0]["bits"] is None
    # the shaded surprisals are the same numbers: their sum over the bytes scored is the bits per byte
    total = sum(t["bits"] for t in tokens[1:])
    assert total / reply["eval"]["bytes"] == pytest.approx(reply["bits_per_byte"], rel=1e-6)
    assert reply["attention"] == {"layers": run.config.model.n_layer, "heads": run.config.model.n_head}


def test_attention_rows_are_causal_distributions(served):
    run, client = served
    text = TEXT[:20]
    reply = client.post("/v1/playground/attention", json={"text": text, "layer": 0, "head": 1}).json()
    weights = torch.tensor(reply["weights"])
    n = len(run.tokenizer.encode(text))
    assert weights.shape == (n, n) and reply["tokens"] == [run.tokenizer.decode([i]) for i in run.tokenizer.encode(text)]
    assert torch.allclose(weights.sum(-1), torch.ones(n), atol=1e-5)
    below = torch.ones(n, n, dtype=torch.bool).tril()
    assert torch.all(weights[~below] == 0) and torch.all(weights[below] > 0)  # each token sees itself and before
    heads = [torch.tensor(client.post("/v1/playground/attention", json={"text": text, "head": h}).json()["weights"])
             for h in range(run.config.model.n_head)]
    assert not torch.allclose(heads[0], heads[1])  # the head asked for, not always the first


def test_a_long_text_shows_the_window_that_ends_at_the_token(served):
    run, client = served
    context = run.model.context_size
    text = TEXT * 2
    reply = client.post("/v1/playground/attention", json={"text": text, "position": context + 5}).json()
    assert reply["start"] == 6 and reply["position"] == context + 5 and len(reply["weights"]) == context
    assert reply["tokens"][-1] == text[context + 5]


def test_recording_attention_changes_nothing_and_puts_the_model_back(served):
    run, _ = served
    x = torch.tensor([run.tokenizer.encode(TEXT[:30])])
    originals = [block.attn.attend for block in run.model.blocks]
    with torch.inference_mode():
        plain = run.model(x)
        with record_attention(run.model) as kept:
            recorded = run.model(x)
    assert torch.allclose(plain, recorded, atol=1e-5) and len(kept) == len(run.model.blocks)
    assert [block.attn.attend for block in run.model.blocks] == originals


def distribution(client, **body):
    reply = client.post("/v1/playground/distribution", json={"prompt": "All:", "top": 200, **body})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_top_k_keeps_exactly_k_tokens_and_before_is_the_model(served):
    run, client = served
    reply = distribution(client, top_k=5, temperature=0.7)
    after = [t["after"] for t in reply["tokens"]]
    assert reply["kept"] == 5 and sum(a > 0 for a in after) == 5 and sum(after) == pytest.approx(1, abs=1e-5)
    assert len(reply["tokens"]) == run.tokenizer.vocab_size
    before = [t["before"] for t in reply["tokens"]]
    assert before == sorted(before, reverse=True) and sum(before) == pytest.approx(1, abs=1e-5)
    # the 5 kept are the 5 most likely, and lower temperature sharpened them
    assert all(a > 0 for a in after[:5]) and after[0] / after[1] > before[0] / before[1]


def test_before_is_the_probability_the_decoder_reports_at_each_position(served):
    run, client = served
    sample = run.sample("All:", 6, top_logprobs=1, seed=0, temperature=1.0)[0]
    text = ""
    for token in sample.tokens:
        reply = distribution(client, completion=text)
        probs = {t["id"]: t["before"] for t in reply["tokens"]}
        assert probs[token.id] == pytest.approx(math.exp(token.logprob), rel=1e-4)
        text += token.text


def test_filters_and_penalties_shape_the_sampled_distribution(served):
    _, client = served
    plain = distribution(client)
    assert plain["kept"] == plain["vocab_size"]  # no setting: the model's distribution is sampled from
    assert all(t["after"] == pytest.approx(t["before"], abs=1e-6) for t in plain["tokens"])
    greedy = distribution(client, temperature=0)
    assert greedy["kept"] == 1 and greedy["tokens"][0]["after"] == 1.0
    nucleus = distribution(client, top_p=0.5)
    kept = [t for t in nucleus["tokens"] if t["after"] > 0]
    assert sum(t["before"] for t in kept) >= 0.5 > sum(t["before"] for t in kept[:-1])
    top = plain["tokens"][0]
    min_p = distribution(client, min_p=0.5)
    assert all((t["after"] > 0) == (t["before"] >= 0.5 * top["before"]) for t in min_p["tokens"])
    said = distribution(client, completion=top["text"] * 3, frequency_penalty=2.0)
    unsaid = distribution(client, completion=top["text"] * 3)
    prob = lambda reply: next(t["after"] for t in reply["tokens"] if t["id"] == top["id"])  # noqa: E731
    assert prob(said) < prob(unsaid)


def test_bad_input_gets_an_openai_error(served):
    _, client = served
    cases = [
        ("/v1/playground/distribution", {"prompt": "All:", "top_p": 2}, 400, "top_p"),
        ("/v1/playground/distribution", {"prompt": ""}, 400, "empty"),
        ("/v1/playground/distribution", {"prompt": "All:", "model": "nope"}, 404, "not served"),
        ("/v1/playground/inspect", {"text": "A"}, 400, "two tokens"),
        ("/v1/playground/inspect", {}, 400, "text"),
        ("/v1/playground/attention", {"text": "All:", "layer": 9}, 400, "layer"),
        ("/v1/playground/attention", {"text": "All:", "position": 4}, 400, "position"),
    ]
    for path, body, status, words in cases:
        reply = client.post(path, json=body)
        assert reply.status_code == status and words in reply.json()["error"]["message"], (body, reply.text)
    assert client.post("/v1/playground/inspect", content=b"{oops", headers={"content-type": "application/json"}
                       ).status_code == 400
    for path, key in (("/v1/playground/inspect", "text"), ("/v1/playground/distribution", "prompt"),
                      ("/v1/playground/attention", "text")):
        reply = client.post(path, content=b'{"%s": "All\\udfff:"}' % key.encode(),
                            headers={"content-type": "application/json"})
        assert reply.status_code == 400 and "lone surrogate" in reply.json()["error"]["message"], reply.text


def test_runs_list_config_curves_and_report(tiny_run, tmp_path):
    copy = tmp_path / "tiny"
    shutil.copytree(tiny_run, copy)
    client = TestClient(create_app({"tiny": lmforge.load(copy, device="cpu")}))
    (listed,) = client.get("/v1/playground/runs").json()["runs"]
    assert listed["name"] == "tiny" and listed["config"]["model"]["n_layer"] == 1 and listed["report"] is None
    steps = [s for s, _ in listed["curves"]["val_loss"]]
    assert steps and steps == sorted(steps) and listed["curves"]["train_loss"]
    assert client.get("/v1/playground/runs/tiny/report").status_code == 404
    (copy / "report.html").write_text("<h1>the report</h1>", encoding="utf-8")
    listed = client.get("/v1/playground/runs").json()["runs"][0]
    assert "the report" in client.get(listed["report"]).text


def test_the_api_key_guards_the_playground_data_but_not_the_page(served):
    run, _ = served
    client = TestClient(create_app({"tiny": run}, api_key="secret"))
    assert client.get("/").status_code == 200
    assert client.get("/v1/playground/runs").status_code == 401
    assert client.get("/v1/playground/runs", headers={"Authorization": "Bearer secret"}).status_code == 200


def test_a_model_without_attention_says_so(family_runs):
    run = lmforge.load(family_runs["rnn"], device="cpu")
    client = TestClient(create_app({"rnn": run}))
    assert client.post("/v1/playground/inspect", json={"text": TEXT}).json()["attention"] is None
    reply = client.post("/v1/playground/attention", json={"text": TEXT})
    assert reply.status_code == 400 and "no attention" in reply.json()["error"]["message"]


def test_the_page_and_every_file_it_loads_are_served_from_the_package(served):
    """No build step and no CDN: every file the page names is in serving/static and served from this server."""
    import re

    from lmforge.serving.playground import STATIC

    _, client = served
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    pending, seen = re.findall(r'(?:src|href)="(/playground/[^"]+)"', page.text), set()
    assert pending
    while pending:  # the page's files, then the modules each imports
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        reply = client.get(path)
        assert reply.status_code == 200, path
        pending += ["/playground/" + name for name in re.findall(r'from "\./([\w.]+)"', reply.text)]
    assert {p.rsplit("/", 1)[1] for p in seen} == {p.name for p in STATIC.iterdir()} - {"index.html"}
    for path in STATIC.iterdir():  # offline: no address elsewhere (the SVG namespace is a name, never fetched)
        urls = re.findall(r'["\'`(]\s*((?:https?:)?//[^"\'`)\s]*)', path.read_text(encoding="utf-8"))
        assert set(urls) <= {"http://www.w3.org/2000/svg"}, path
    assert client.get("/playground/..%2Fapp.py").status_code == 404
    assert client.get("/playground/secrets.txt").status_code == 404


def test_curves_are_the_train_and_eval_points_of_metrics_jsonl_and_a_long_one_is_thinned(tiny_run, tmp_path):
    from lmforge.serving.playground import curves, thin

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"event": "train", "step": 1, "loss": 2.5}\n{"event": "eval", "step": 2, "val_loss": 2.25}\n'
                    '{"event": "train", "ste\n{"event": "train", "step": 3, "loss": 2.0}\n', encoding="utf-8")
    assert curves(path) == {"train_loss": [[1, 2.5], [3, 2.0]], "val_loss": [[2, 2.25]]}
    points = list(range(1000))
    # 399 evenly spaced from the first (every 1000/399 = 2.506...), then the last
    assert thin(points, 400) == [int(i * 1000 / 399) for i in range(399)] + [999]
    assert thin(points[:400], 400) == points[:400]


def test_the_playground_reads_exactly_its_token_limit_and_at_most_200_bars(served):
    from lmforge.serving.app import MAX_PROMPT_TOKENS

    run, client = served
    text = ("All: " * MAX_PROMPT_TOKENS)[:MAX_PROMPT_TOKENS]
    assert len(run.tokenizer.encode(text)) == MAX_PROMPT_TOKENS  # a char tokenizer
    distribution(client, prompt=text, top=1)
    reply = client.post("/v1/playground/distribution", json={"prompt": text + "A", "top": 1})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "context_length_exceeded"
    reply = client.post("/v1/playground/distribution", json={"prompt": "All:", "top": 201})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "top"
