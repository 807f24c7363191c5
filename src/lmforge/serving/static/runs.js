// The Runs tab: each served run with its size, config, loss curves (metrics.jsonl) and report, and a button that
// makes it the model the other tabs use.
import { lineChart } from "./charts.js";
import { errorText, headers, showError, state } from "./common.js";

function row(name, value) {
  const tr = document.createElement("tr");
  tr.append(Object.assign(document.createElement("td"), { textContent: name }),
            Object.assign(document.createElement("td"), { textContent: value }));
  return tr;
}

// The report is behind the API key when the server has one, so it is fetched with the key and shown from a blob.
async function openReport(url) {
  const res = await fetch(url, { headers: headers() });
  if (!res.ok) throw new Error(await errorText(res));
  window.open(URL.createObjectURL(new Blob([await res.text()], { type: "text/html" })), "_blank");
}

export function render(pick) {
  const list = document.getElementById("run-list");
  list.replaceChildren();
  for (const run of state.runs) {
    const card = document.createElement("article");
    card.className = "run" + (run === state.run ? " current" : "");
    card.dataset.name = run.name;
    const title = document.createElement("h2");
    title.textContent = run.name;
    const use = Object.assign(document.createElement("button"), { textContent: run === state.run ? "in use" : "use this model" });
    use.disabled = run === state.run;
    use.addEventListener("click", () => pick(run.name));
    title.append(use);
    const table = document.createElement("table");
    const att = run.attention ? `${run.attention.layers} layers × ${run.attention.heads} heads` : "none";
    table.append(row("model", run.description), row("parameters", run.params.toLocaleString()),
                 row("tokenizer", `${run.tokenizer}, ${run.vocab_size.toLocaleString()} tokens`),
                 row("context", run.context ? `${run.context} tokens` : "unbounded"), row("attention", att),
                 row("path", run.path));
    const canvas = document.createElement("canvas");
    const config = document.createElement("details");
    config.innerHTML = "<summary>config</summary><pre></pre>";
    config.querySelector("pre").textContent = JSON.stringify(run.config, null, 2);
    const report = document.createElement("p");
    if (run.report) {
      const link = Object.assign(document.createElement("a"), { href: run.report, textContent: "open the report" });
      link.addEventListener("click", (e) => { e.preventDefault(); openReport(run.report).catch(showError); });
      report.append(link);
    } else {
      report.className = "note";
      report.textContent = `no report yet: lmforge report ${run.path}`;
    }
    card.append(title, table, canvas, config, report);
    list.append(card);  // attached first, so the canvas has its CSS size when drawn
    lineChart(canvas, [
      { name: "train loss", colour: "#2f5fd0", points: run.curves.train_loss },
      { name: "val loss", colour: "#e07b24", points: run.curves.val_loss },
    ]);
  }
}
