// The playground page: tabs, the model picker and the API key; each tab lives in its own module.
import { api, clearError, showError, state } from "./common.js";
import * as generate from "./generate.js";
import * as inspect from "./inspect.js";
import * as runs from "./runs.js";

const $ = (id) => document.getElementById(id);
const KEY = "lmforge.apiKey";  // kept in this browser only, so a reload does not ask again

function showTab(name) {
  document.querySelectorAll("nav [role=tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
  document.querySelectorAll("main [role=tabpanel]").forEach((s) => { s.hidden = s.id !== name; });
  if (name === "runs") runs.render(pick);  // canvases need their laid-out size
}

function pick(name) {
  state.run = state.runs.find((r) => r.name === name) ?? state.runs[0];
  $("model").value = state.run.name;
  generate.modelChanged(state.run);
  inspect.modelChanged(state.run);
  if (!$("runs").hidden) runs.render(pick);
}

async function loadRuns() {
  clearError();
  const before = state.run?.name;
  state.runs = (await api("/v1/playground/runs")).runs;
  $("model").replaceChildren(...state.runs.map((r) => new Option(`${r.name} (${r.family})`, r.name)));
  if (state.runs.length) pick(before);
  document.body.dataset.ready = "true";
}

function start() {
  const key = $("api-key");
  key.value = localStorage.getItem(KEY) ?? "";
  key.addEventListener("change", () => { localStorage.setItem(KEY, key.value); loadRuns().catch(showError); });
  $("model").addEventListener("change", (e) => pick(e.target.value));
  document.querySelectorAll("nav [role=tab]").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  generate.setUp();
  inspect.setUp();
  loadRuns().catch(showError);
}

start();
