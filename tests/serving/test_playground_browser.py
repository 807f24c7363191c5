"""The playground page in a real headless Chromium (Debian's `chromium`, driven by Playwright from PyPI through
`executable_path`; no browser is downloaded) against a real uvicorn server over a tiny trained run.

What the page shows is checked against the API it reads: the streamed text is the seeded completion, the bars
are the distribution endpoint's numbers for the slider's temperature, the attention strip is the endpoint's row.
Screenshots are saved under tmp/artifacts/playground/ (or $LMFORGE_ARTIFACTS/playground/); the path is printed.
$LMFORGE_PLAYGROUND_RUN serves another run instead of the tiny one: README's docs/images/playground.png is
`generate.png` from `-k temperature` over a run of the shakespeare-char-cpu preset.
Without Chromium or Playwright the tests skip, which `scripts/test.sh --all` (CI) counts as a failure;
`scripts/setup.sh` installs both.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed; run scripts/setup.sh (it installs the dev extras)")

import lmforge  # noqa: E402
from lmforge.serving.app import create_app  # noqa: E402

CHROMIUM = Path(os.environ.get("LMFORGE_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("LMFORGE_ARTIFACTS", ROOT / "tmp" / "artifacts")) / "playground"
KEY = "secret"
PROMPT = "First Citizen:\n"
TEXT = "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"


@pytest.fixture(scope="module")
def served(tiny_run, family_runs, tmp_path_factory) -> dict[str, Path]:
    """The runs served: a copy of the tiny transformer given a report.html, and an RNN, which has no attention
    ($LMFORGE_PLAYGROUND_RUN alone instead, when set)."""
    if os.environ.get("LMFORGE_PLAYGROUND_RUN"):
        path = Path(os.environ["LMFORGE_PLAYGROUND_RUN"])
        return {path.name: path}
    copy = tmp_path_factory.mktemp("served") / "tiny"
    shutil.copytree(tiny_run, copy)
    (copy / "report.html").write_text("<h1>the tiny run's report</h1>", encoding="utf-8")
    return {"tiny": copy, "rnn": family_runs["rnn"]}


@pytest.fixture(scope="module")
def server(served):
    """A uvicorn server on a free 127.0.0.1 port, in a thread, started with --api-key; `model`: the first run,
    which the page picks."""
    app = create_app({name: lmforge.load(path, device="cpu") for name, path in served.items()}, api_key=KEY)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield SimpleNamespace(url=f"http://127.0.0.1:{sock.getsockname()[1]}", model=next(iter(served)))
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}; run scripts/setup.sh (it runs apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox refuses to start as root (containers, CI)
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """The page, opened with the API key entered (as a user of a server with --api-key does)."""
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(server.url)
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    page.wait_for_selector("body[data-ready=true]")
    yield page
    page.close()


def call(server, path: str, body: dict) -> dict:
    request = urllib.request.Request(server.url + path, data=json.dumps({"model": server.model, **body}).encode(),
                                     method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.loads(reply.read())


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def bars(page) -> list[float]:
    return [float(x) for x in page.eval_on_selector_all("#distribution rect.after[data-p]",
                                                       "rects => rects.map(r => r.dataset.p)")]


def test_without_the_key_the_page_says_to_enter_it(browser, server):
    page = browser.new_page()
    page.goto(server.url)
    page.wait_for_selector("#status:not([hidden])")
    assert "--api-key" in page.text_content("#status")
    page.click("#generate-button")
    page.wait_for_function("document.getElementById('status').textContent.includes('no model loaded')")
    assert page.is_enabled("#generate-button")
    page.close()


def test_generate_streams_shaded_tokens_and_the_chart_follows_the_temperature(page, server):
    page.fill("#prompt", PROMPT)
    page.fill("#max-tokens", "24")
    page.fill("#seed", "3")
    page.click("#generate-button")
    page.wait_for_selector("#output[data-state=done]", timeout=60_000)
    streamed = "".join(page.eval_on_selector_all("#output .tok", "spans => spans.map(s => s.textContent)"))
    assert int(page.get_attribute("#output", "data-chunks")) > 1  # it came piece by piece
    expected = call(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": 24, "seed": 3})["choices"][0]["text"]
    assert streamed == expected and expected
    shades = page.eval_on_selector_all("#output .tok", "spans => spans.map(s => s.style.background)")
    assert len(set(shades)) > 1  # shaded by probability, not one colour

    page.click("#output .tok >> nth=2")
    page.wait_for_selector("#distribution[data-draws='1']")
    assert page.locator("#alternatives li").count() >= 1
    assert page.text_content("#detail-prob").startswith("p = ")
    at_one = bars(page)
    page.fill("#set-temperature", "0.3")  # a range input: fill sets it and fires `input`, as a drag does
    page.wait_for_selector("#distribution[data-draws='2']")
    at_low = bars(page)
    assert at_low != at_one and max(at_low) > max(at_one)  # colder: the mass gathers on the likeliest
    # the bars are the distribution endpoint's own numbers at that position and temperature
    texts = page.eval_on_selector_all("#output .tok", "spans => spans.map(s => s.textContent)")
    reply = call(server, "/v1/playground/distribution",
                 {"prompt": PROMPT, "completion": "".join(texts[:2]), "top": 20, "temperature": 0.3})
    assert at_low == pytest.approx([t["after"] for t in reply["tokens"]], abs=1e-6)
    screenshot(page, "generate")


def test_inspect_shades_surprisal_and_shows_a_token_s_attention(page, server):
    page.click("nav [data-tab=inspect]")
    page.fill("#inspect-text", TEXT)
    page.click("#inspect-button")
    page.wait_for_selector("#inspect-tokens .tok")
    reply = call(server, "/v1/playground/inspect", {"text": TEXT})
    assert page.locator("#inspect-tokens .tok").count() == len(reply["tokens"])
    assert f"{reply['bits_per_byte']:.3f} bits per byte" in page.text_content("#inspect-summary")
    assert page.get_attribute("#inspect-tokens .tok >> nth=5", "title") == f"{reply['tokens'][5]['bits']:.2f} bits"

    page.select_option("#head", "1")
    page.click("#inspect-tokens .tok >> nth=12")
    page.wait_for_selector("#attention-map[data-position='12']")
    assert page.get_attribute("#attention-map", "data-head") == "1"
    weights = call(server, "/v1/playground/attention", {"text": TEXT, "head": 1, "position": 12})["weights"][-1]
    shown = page.eval_on_selector_all("#attention-tokens .tok", "spans => spans.map(s => s.title)")
    assert shown == [f"weight {w:.3f}" for w in weights]
    # the heat map is drawn: the chosen row's first cell is coloured, the cell above the diagonal is blank
    filled, blank = page.evaluate("""() => {
        const c = document.getElementById('attention-map'), n = Number(c.dataset.size), cell = c.width / n;
        const ctx = c.getContext('2d'), at = (i, j) => [...ctx.getImageData(j * cell + cell / 2, i * cell + cell / 2, 1, 1).data];
        return [at(n - 1, 0), at(0, 1)];
    }""")
    assert filled[:3] != [255, 255, 255] and blank[:3] == [255, 255, 255]
    screenshot(page, "inspect")


def test_runs_lists_the_run_with_its_curve_config_and_report(page, served):
    page.click("nav [data-tab=runs]")
    card = page.locator(".run[data-name=tiny]")
    assert "in use" in card.locator("h2").text_content()
    assert str(served["tiny"]) in card.text_content()
    drawn = page.evaluate("""() => {
        const c = document.querySelector('.run canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n;
    }""")
    assert drawn > 500  # the loss curve, its frame and labels
    card.locator("summary").click()
    assert '"n_layer": 1' in card.locator("pre").text_content()
    screenshot(page, "runs")
    with page.expect_popup() as popup:  # the report is behind the key: fetched with it, shown from a blob
        card.get_by_text("open the report").click()
    popup.value.wait_for_load_state()
    assert "the tiny run's report" in popup.value.text_content("h1")


def test_the_model_picker_switches_the_tabs_to_another_run(page, server):
    page.select_option("#model", "rnn")
    page.click("nav [data-tab=inspect]")
    assert page.locator("#attention-controls").is_hidden()  # an RNN has no attention to show
    page.fill("#inspect-text", TEXT)
    page.click("#inspect-button")
    page.wait_for_selector("#inspect-tokens .tok")
    bits = call(SimpleNamespace(url=server.url, model="rnn"), "/v1/playground/inspect", {"text": TEXT})["bits_per_byte"]
    assert f"{bits:.3f} bits per byte" in page.text_content("#inspect-summary")
    page.click("nav [data-tab=runs]")
    assert "in use" in page.locator(".run[data-name=rnn] h2").text_content()
    page.locator(".run[data-name=tiny]").get_by_text("use this model").click()
    assert page.input_value("#model") == "tiny"
    assert page.get_attribute("#attention-controls", "hidden") is None  # the transformer's layers and heads again


def test_streamed_log_probabilities_are_used_as_they_come(page, server):
    """A server whose stream carries OpenAI's per-chunk `logprobs` (as OpenAI's does) is shaded from them, with no
    second request; the stream here is the server's own seeded completion, cut into one chunk per token."""
    whole = call(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": 12, "seed": 5, "logprobs": 5})
    lp = whole["choices"][0]["logprobs"]
    chunks = [{"choices": [{"index": 0, "text": t, "finish_reason": None, "logprobs": {
        "tokens": [t], "token_logprobs": [p], "top_logprobs": [top], "text_offset": [at]}}]}
        for t, p, top, at in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], lp["text_offset"])]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    page.route("**/v1/completions", lambda route: route.fulfill(status=200, body=body,
                                                                headers={"content-type": "text/event-stream"}))
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    page.fill("#prompt", PROMPT)
    page.click("#generate-button")
    page.wait_for_selector("#output[data-state=done]")
    assert page.eval_on_selector_all("#output .tok", "spans => spans.map(s => s.textContent)") == lp["tokens"]
    assert not [url for url in asked if "/inspect" in url]
    page.click("#output .tok >> nth=1")
    page.wait_for_selector("#distribution[data-draws='1']")
    shown = page.eval_on_selector_all("#alternatives li", "items => items.map(li => li.textContent)")
    assert [s.rsplit("  ", 1)[0] for s in shown] == [json.dumps(t, ensure_ascii=False) for t in lp["top_logprobs"][1]]
