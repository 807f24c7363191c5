// The Generate tab: decoding settings, a completion streamed from /v1/completions with each token shaded by its
// probability, and for a clicked token its alternatives and the next-token distribution before and after the
// settings (/v1/playground/distribution), redrawn as the sliders move.
import { barChart } from "./charts.js";
import { api, clearError, current, debounce, errorText, fmt, headers, probabilityShade, showError, state, tokenSpan } from "./common.js";

// name, label, min, max, step, default; the names are /v1/completions fields.
const SLIDERS = [
  ["temperature", "temperature", 0, 2, 0.05, 1],
  ["top_k", "top-k (0: off)", 0, 256, 1, 0],
  ["top_p", "top-p", 0.01, 1, 0.01, 1],
  ["min_p", "min-p", 0, 1, 0.01, 0],
  ["presence_penalty", "presence penalty", -2, 2, 0.1, 0],
  ["frequency_penalty", "frequency penalty", -2, 2, 0.1, 0],
  ["repetition_penalty", "repetition penalty", 0.5, 2, 0.05, 1],
];
const TOP = 20;  // bars in the chart

const $ = (id) => document.getElementById(id);
let prompt = "", completion = "", tokens = [], selected = null, controller = null, drawn = 0;

export function settings() {
  return Object.fromEntries(SLIDERS.map(([name]) => [name, Number($(`set-${name}`).value)]));
}

export function setUp() {
  for (const [name, label, min, max, step, value] of SLIDERS) {
    const row = document.createElement("label");
    row.className = "setting";
    row.innerHTML = `<span>${label}</span><input type="range" id="set-${name}" name="${name}"
      min="${min}" max="${max}" step="${step}" value="${value}"><output for="set-${name}">${value}</output>`;
    const input = row.querySelector("input"), output = row.querySelector("output");
    input.addEventListener("input", () => { output.textContent = input.value; redraw(); });
    $("settings").append(row);
  }
  $("generate-button").addEventListener("click", () => generate().catch(showError).finally(done));
  $("stop-button").addEventListener("click", () => controller?.abort());
}

// A new model: the top-k slider reaches its vocabulary, and the old output goes.
export function modelChanged(run) {
  $("set-top_k").max = Math.min(run.vocab_size, 1000);
  $("output").replaceChildren();
  $("token-detail").hidden = true;
  tokens = []; selected = null;
}

function done() {  // after the stream, its shading, a stop or an error
  $("output").dataset.state = "done";
  $("generate-button").disabled = false;
  $("stop-button").disabled = true;
  controller = null;
}

// Server-Sent Events from a fetch body: each `data:` payload parsed, until `[DONE]`.
async function* events(res) {
  const reader = res.body.getReader(), decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done: finished } = await reader.read();
    if (finished) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        if (line === "data: [DONE]") return;
        yield JSON.parse(line.slice(6));
      }
    }
  }
}

async function generate() {
  clearError();
  const model = current().name;
  prompt = $("prompt").value;
  const seedText = $("seed").value.trim();
  const seed = seedText === "" ? Math.floor(Math.random() * 2 ** 31) : Number(seedText);
  $("seed-used").textContent = `seed ${seed}: the same seed and settings give the same text`;
  completion = ""; tokens = []; selected = null;
  const out = $("output");
  out.replaceChildren(tokenSpan(prompt, "prompt"));
  out.dataset.chunks = "0";
  out.dataset.state = "streaming";
  $("token-detail").hidden = true;
  $("generate-button").disabled = true;
  $("stop-button").disabled = false;
  controller = new AbortController();
  const body = { model, prompt, max_tokens: Number($("max-tokens").value), seed,
                 stream: true, logprobs: 5, ...settings() };
  const res = await fetch("/v1/completions", { method: "POST", headers: headers(), body: JSON.stringify(body),
                                                signal: controller.signal });
  if (!res.ok) throw new Error(await errorText(res));
  let streamedLogprobs = false;
  try {
    for await (const chunk of events(res)) {
      if (chunk.error) throw new Error(chunk.error.message);
      const choice = chunk.choices[0];
      out.dataset.chunks = String(Number(out.dataset.chunks) + 1);
      if (choice.logprobs?.tokens?.length) {
        streamedLogprobs = true;
        const lp = choice.logprobs;
        lp.tokens.forEach((text, i) => addToken({
          text, offset: tokens.reduce((n, t) => n + t.text.length, 0), p: Math.exp(lp.token_logprobs[i]),
          top: Object.entries(lp.top_logprobs?.[i] ?? {}).map(([t, v]) => ({ text: t, p: Math.exp(v) })),
        }));
      } else if (choice.text) {
        out.append(tokenSpan(choice.text, "pending"));
      }
      completion += choice.text;
    }
  } catch (err) {
    if (err.name !== "AbortError") throw err;
  }
  // Streamed chunks without per-token log-probabilities: score the text once it is complete
  // (/v1/playground/inspect gives each token's probability under the model, as logprobs does).
  if (!streamedLogprobs && completion) await shadeAfterwards();
}

function addToken(token) {
  const index = tokens.length;
  tokens.push(token);
  const span = tokenSpan(token.text);
  span.style.background = probabilityShade(token.p, state.run.vocab_size);
  span.title = `p = ${fmt.pct(token.p)}`;
  span.dataset.index = String(index);
  span.addEventListener("click", () => select(index));
  $("output").append(span);
}

async function shadeAfterwards() {
  const full = prompt + completion;
  const reply = await api("/v1/playground/inspect", { model: state.run.name, text: full });
  $("output").querySelectorAll(".pending").forEach((span) => span.remove());
  let at = 0;
  for (const t of reply.tokens) {
    const start = at, end = at + t.text.length;
    at = end;
    if (end <= prompt.length || t.bits == null) continue;  // a prompt token
    const offset = Math.max(0, start - prompt.length);  // a token across the prompt's end: its completion part
    addToken({ text: full.slice(prompt.length + offset, end), offset, p: 2 ** -t.bits, top: null });
  }
}

function select(index) {
  selected = index;
  document.querySelectorAll("#output .tok").forEach((s) => s.classList.toggle("selected", s.dataset.index === String(index)));
  const token = tokens[index];
  $("token-detail").hidden = false;
  $("detail-token").textContent = fmt.shown(token.text);
  $("detail-prob").textContent = `p = ${fmt.pct(token.p)} under the model`;
  $("alternatives").replaceChildren();
  if (token.top?.length) showAlternatives(token.top, token.text);
  refresh().catch(showError);
}

function showAlternatives(top, chosen) {
  const list = $("alternatives");
  list.replaceChildren(...top.map(({ text, p }) => {
    const li = document.createElement("li");
    li.textContent = `${fmt.shown(text)}  ${fmt.pct(p)}`;
    if (text === chosen) li.className = "chosen";
    return li;
  }));
}

// The distribution at the selected token's position under the current settings.
async function refresh() {
  if (selected === null) return;
  const token = tokens[selected], ask = ++drawn;
  const reply = await api("/v1/playground/distribution", {
    model: state.run.name, prompt, completion: completion.slice(0, token.offset), top: TOP, ...settings(),
  });
  if (ask !== drawn) return;  // a newer request (the slider moved on) draws instead
  if (!token.top?.length) showAlternatives(reply.tokens.slice(0, 10).map((t) => ({ text: t.text, p: t.before })), token.text);
  const svg = $("distribution");
  barChart(svg, reply.tokens);
  svg.dataset.draws = String(Number(svg.dataset.draws || 0) + 1);
  const e = reply.entropy_bits;
  $("distribution-note").textContent = `the settings keep ${reply.kept.toLocaleString()} of ${reply.vocab_size.toLocaleString()} `
    + `tokens; entropy ${e.before.toFixed(2)} → ${e.after.toFixed(2)} bits. Grey: the model; blue: sampled from.`;
}

const redraw = debounce(() => refresh().catch(showError), 120);
