// The Inspect tab: any text scored token by token (/v1/playground/inspect: surprisal in bits, bits per byte as
// `lmforge eval` computes it), and for a transformer one layer and head's attention of a clicked token over the
// tokens before it (/v1/playground/attention).
import { heatMap } from "./charts.js";
import { api, clearError, current, fmt, ICE, mix, RED, showError, state, tokenSpan } from "./common.js";

const $ = (id) => document.getElementById(id);
let text = "", chosen = null;

export function setUp() {
  $("inspect-button").addEventListener("click", () => inspect().catch(showError));
  for (const id of ["layer", "head"]) $(id).addEventListener("change", () => chosen !== null && attend(chosen).catch(showError));
}

function options(select, n) {
  select.replaceChildren(...Array.from({ length: n }, (_, i) => new Option(String(i), String(i))));
}

export function modelChanged(run) {
  $("attention-controls").hidden = !run.attention;
  if (run.attention) { options($("layer"), run.attention.layers); options($("head"), run.attention.heads); }
  $("inspect-tokens").replaceChildren();
  $("inspect-summary").textContent = "";
  $("attention").hidden = true;
  chosen = null;
}

async function inspect() {
  clearError();
  text = $("inspect-text").value;
  const reply = await api("/v1/playground/inspect", { model: current().name, text });
  const scale = Math.log2(state.run.vocab_size);  // a uniform guess: the most a fair model should be surprised
  const box = $("inspect-tokens");
  box.replaceChildren(...reply.tokens.map((t, i) => {
    const span = tokenSpan(t.text);
    span.dataset.index = String(i);
    span.title = t.bits == null ? "the first token: nothing before it predicts it" : fmt.bits(t.bits);
    if (t.bits != null) span.style.background = mix(ICE, RED, t.bits / scale);
    if (state.run.attention) span.addEventListener("click", () => attend(i).catch(showError));
    return span;
  }));
  const ev = reply.eval;
  $("inspect-summary").textContent = `${reply.tokens.length.toLocaleString()} tokens, `
    + `${reply.bits_per_byte.toFixed(3)} bits per byte (as \`lmforge eval\` scores it; loss ${ev.loss.toFixed(3)} nats/token)`;
  $("attention").hidden = true;
  chosen = null;
}

async function attend(position) {
  chosen = position;
  document.querySelectorAll("#inspect-tokens .tok").forEach((s) => s.classList.toggle("selected", s.dataset.index === String(position)));
  const layer = Number($("layer").value), head = Number($("head").value);
  const reply = await api("/v1/playground/attention", { model: state.run.name, text, layer, head, position });
  const row = reply.weights[reply.weights.length - 1];
  $("attention").hidden = false;
  $("attention-token").textContent = fmt.shown(reply.tokens[reply.tokens.length - 1]);
  $("attention-layer").textContent = String(layer);
  $("attention-head").textContent = String(head);
  const before = reply.start > 0 ? [tokenSpan(`… ${reply.start} tokens outside the context window … `, "prompt")] : [];
  $("attention-tokens").replaceChildren(...before, ...reply.tokens.map((t, j) => {
    const span = tokenSpan(t);
    span.style.background = `rgba(47, 95, 208, ${Math.sqrt(row[j])})`;
    span.title = `weight ${row[j].toFixed(3)}`;
    return span;
  }));
  const canvas = $("attention-map");
  heatMap(canvas, reply.weights, reply.weights.length - 1);
  Object.assign(canvas.dataset, { layer, head, position, size: reply.weights.length });
}
