// What the tabs share: the API (the key sent as a bearer), the chosen run, errors, and token spans.

export const state = { runs: [], run: null };  // run: the picked entry of /v1/playground/runs

const keyField = () => document.getElementById("api-key");

export function headers() {
  const h = { "Content-Type": "application/json" };
  const key = keyField().value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

// POST `body` (or GET without one) and return the JSON reply; a 4xx or 5xx throws with the server's message.
export async function api(path, body, signal) {
  const res = await fetch(path, {
    method: body === undefined ? "GET" : "POST", headers: headers(), signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(await errorText(res));
  return res.json();
}

export async function errorText(res) {
  let message = `${res.status} ${res.statusText}`;
  try { message = (await res.json()).error?.message || message; } catch { /* not JSON */ }
  if (res.status === 401) message += " (enter the server's --api-key above)";
  return message;
}

export function showError(err) {
  const box = document.getElementById("status");
  if (err?.name === "AbortError") return;
  box.textContent = String(err?.message ?? err);
  box.hidden = false;
}

// The picked run; before any loaded (a server with --api-key, no key entered yet) a button says why it cannot act.
export function current() {
  if (!state.run) throw new Error("no model loaded yet: the server's runs did not load (an API key needed?)");
  return state.run;
}

export function clearError() { document.getElementById("status").hidden = true; }

// Run `fn` at most once per `ms` of quiet: a slider dragged fires many input events.
export function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// A colour between `low` and `high` ([r, g, b]) at x in [0, 1].
export function mix(low, high, x) {
  const t = Math.min(1, Math.max(0, x));
  return `rgb(${low.map((v, i) => Math.round(v + (high[i] - v) * t)).join(",")})`;
}

// A token's shade by its probability p among `vocab` tokens, on a log scale (probabilities span orders of
// magnitude): p = 1 is pale, p at or below a uniform guess (1 / vocab) is the strong colour.
export function probabilityShade(p, vocab) {
  return mix(ORANGE, PALE, 1 + Math.log(Math.max(p, 1e-12)) / Math.log(vocab));
}

export const PALE = [253, 243, 234], ORANGE = [243, 178, 122], ICE = [238, 243, 251], RED = [217, 70, 59];

// A span showing one token's text; a newline is marked so that it can be seen and clicked.
export function tokenSpan(text, className = "tok") {
  const span = document.createElement("span");
  span.className = className + (className === "tok" && text.includes("\n") ? " newline" : "");
  span.textContent = text;
  return span;
}

export const fmt = {
  pct: (p) => (p >= 0.001 ? `${(100 * p).toFixed(1)}%` : p > 0 ? `${(100 * p).toExponential(1)}%` : "0"),
  bits: (b) => (b == null ? "—" : `${b.toFixed(2)} bits`),
  shown: (text) => JSON.stringify(text),  // quotes, and \n for a newline
};
