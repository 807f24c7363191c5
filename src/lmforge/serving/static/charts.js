// The playground's three drawings, by hand (no chart library, so the page works offline):
// a bar chart in SVG, a loss curve and an attention heat map on a <canvas>.

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Paired bars per token: `before` (the model's probability) and `after` (the distribution sampled from).
// Each bar carries its value in data-p, so what is drawn can be read back (the browser test does).
export function barChart(svg, items) {
  const width = svg.clientWidth || 600, height = svg.clientHeight || 240;
  const bottom = 56, top = 14, left = 4;
  const max = Math.max(1e-9, ...items.flatMap((d) => [d.before, d.after]));
  const slot = (width - left) / Math.max(1, items.length), bar = Math.max(1, slot * 0.38);
  const y = (p) => (height - bottom) - (p / max) * (height - bottom - top);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.append(el("line", { class: "axis", x1: 0, x2: width, y1: height - bottom, y2: height - bottom }));
  items.forEach((d, i) => {
    const x = left + i * slot;
    for (const [kind, p, dx] of [["before", d.before, 0], ["after", d.after, bar]]) {
      const rect = el("rect", { class: kind, x: x + dx, y: y(p), width: bar, height: (height - bottom) - y(p),
                                "data-p": p.toFixed(6) });
      rect.append(el("title", {}, `${JSON.stringify(d.text)} ${kind}: ${(100 * p).toFixed(2)}%`));
      svg.append(rect);
    }
    const label = el("text", { x: x + bar, y: height - bottom + 10, transform: `rotate(60 ${x + bar} ${height - bottom + 10})` },
                     JSON.stringify(d.text).slice(0, 10));
    svg.append(label);
  });
  svg.append(el("rect", { class: "before", x: width - 220, y: 2, width: 10, height: 10 }),
             el("text", { x: width - 206, y: 11 }, "model"),
             el("rect", { class: "after", x: width - 150, y: 2, width: 10, height: 10 }),
             el("text", { x: width - 136, y: 11 }, "after the settings"));
}

// A canvas sized to its CSS box at the screen's pixel ratio, and its 2-D context in CSS pixels.
function fitted(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  return [ctx, w, h];
}

// Loss curves: `series` is [{name, colour, points: [[step, value], ...]}, ...], drawn on shared axes.
export function lineChart(canvas, series) {
  const [ctx, w, h] = fitted(canvas);
  const pad = { l: 42, r: 8, t: 16, b: 20 };
  const all = series.flatMap((s) => s.points);
  ctx.font = "11px system-ui, sans-serif";
  if (!all.length) { ctx.fillStyle = "#5d6677"; ctx.fillText("no metrics.jsonl points", pad.l, h / 2); return; }
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const X = (v) => pad.l + ((v - x0) / ((x1 - x0) || 1)) * (w - pad.l - pad.r);
  const Y = (v) => h - pad.b - ((v - y0) / ((y1 - y0) || 1)) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#d5dae3"; ctx.fillStyle = "#5d6677";
  ctx.strokeRect(pad.l, pad.t, w - pad.l - pad.r, h - pad.t - pad.b);
  ctx.fillText(y1.toFixed(2), 2, pad.t + 8); ctx.fillText(y0.toFixed(2), 2, h - pad.b);
  ctx.fillText(`step ${x0}`, pad.l, h - 5); ctx.textAlign = "right"; ctx.fillText(`${x1}`, w - pad.r, h - 5);
  ctx.textAlign = "left";
  let legend = pad.l + 6;
  for (const s of series) {
    ctx.strokeStyle = ctx.fillStyle = s.colour; ctx.lineWidth = 1.5; ctx.beginPath();
    s.points.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
    ctx.stroke();
    if (s.points.length === 1) ctx.fillRect(X(s.points[0][0]) - 2, Y(s.points[0][1]) - 2, 4, 4);
    ctx.fillText(s.name, legend, pad.t - 4); legend += ctx.measureText(s.name).width + 14;
  }
}

// Attention weights (T×T, row i over columns j ≤ i) as a heat map; row `chosen` is outlined.
export function heatMap(canvas, weights, chosen) {
  const n = weights.length, cell = Math.max(2, Math.floor(360 / n));
  canvas.width = canvas.height = n * cell;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, n * cell, n * cell);
  weights.forEach((row, i) => row.forEach((w, j) => {
    if (j > i) return;
    ctx.fillStyle = `rgba(47, 95, 208, ${Math.sqrt(w)})`;  // sqrt: small weights stay visible
    ctx.fillRect(j * cell, i * cell, cell, cell);
  }));
  ctx.strokeStyle = "#d9463b"; ctx.lineWidth = 2;
  ctx.strokeRect(1, chosen * cell + 1, n * cell - 2, cell - 2);
}
