// atento's page: plain JavaScript over the JSON API (no build step, no network beyond this server).
"use strict";

const $ = (id) => document.getElementById(id);
const WIDTHS = [1, 2, 3, 5, 10];
let models = [];
let last = null; // the last translated sentence (or sampled prompt)
const shown = (piece) => piece.replace(/ /g, "\u2423"); // a visible space

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) {
    const e = data.error || {};
    throw new Error(`${response.status}: ${e.message || "error"}${e.item ? ` (${e.item})` : ""}`);
  }
  return data;
}

function fillSelect(select, values, labels, chosen) {
  select.replaceChildren(...values.map((v, i) => {
    const o = document.createElement("option");
    o.value = String(v);
    o.textContent = labels ? labels[i] : String(v);
    if (String(v) === String(chosen)) o.selected = true;
    return o;
  }));
}

function currentModel() {
  return models.find((m) => m.name === $("model").value) || models[0];
}

function setupMode() {
  // translation runs get the sentence form, language-model runs the prompt form
  const m = currentModel() || {};
  const lm = m.task === "lm";
  if (m.search) {  // the run's own search settings are the form's defaults
    $("beam").value = m.search.beam;
    $("alpha").value = m.search.alpha;
    if (WIDTHS.includes(m.search.beam)) $("tree-beam").value = String(m.search.beam);
  }
  $("input-panel").querySelector("form").hidden = lm;
  $("sample-panel").hidden = !lm;
  for (const id of ["result", "attention-panel", "tree-section"]) $(id).hidden = true;
  last = null;
}

function setupViewPickers() {
  const m = currentModel();
  const transformer = m && m.layers && m.heads;
  $("view-pickers").hidden = !transformer;
  if (!transformer) return;
  const layers = [...Array(m.layers).keys()];
  fillSelect($("layer"), layers, layers.map((l) => `${l}${l === m.layers - 1 ? " (last)" : ""}`), m.layers - 1);
  const heads = ["", ...Array(m.heads).keys()];
  fillSelect($("head"), heads, heads.map((h) => (h === "" ? "mean" : String(h))), "");
}

async function init() {
  fillSelect($("tree-beam"), WIDTHS, null, 3);
  fillSelect($("compare-beam"), WIDTHS, null, 1);
  try {
    models = (await api("/v1/models")).models;
    fillSelect($("model"), models.map((m) => m.name), models.map((m) => `${m.name} (${m.arch}, step ${m.step})`));
    setupViewPickers();
    setupMode();
    setStatus(`ready: ${models.length} model(s)`);
  } catch (e) {
    setStatus(`could not list the models: ${e.message}`, true);
  }
}

function number(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function request(text, extra) {
  const body = { text, model: $("model").value, alpha: number("alpha"), ...extra };
  if (!$("view-pickers").hidden) {
    body.layer = Number($("layer").value);
    if ($("head").value !== "") body.head = Number($("head").value);
  }
  return body;
}

async function translate(event) {
  if (event) event.preventDefault();
  const text = $("source").value;
  if (!text.trim()) return;
  const beam = number("beam");
  const nbest = Math.min(number("nbest") || 1, beam || 1);
  setStatus("translating...");
  try {
    const data = await api("/v1/translate", request(text, { beam, nbest, attention: true }));
    last = text;
    showTranslation(data.translations[0]);
    setStatus(`beam ${data.beam}, alpha ${data.alpha}`);
    $("tree-beam").value = String(WIDTHS.includes(data.beam) ? data.beam : 3);
    if (!$("tree-panel").hidden) await drawTrees();
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function sampleText(event) {
  if (event) event.preventDefault();
  const prompt = $("prompt").value;
  setStatus("sampling...");
  try {
    const data = await api("/v1/sample", {
      prompt, model: $("model").value, max_new: number("max-new") || 200,
      temperature: number("temperature") ?? 1, top_k: number("top-k") || 0, seed: number("seed") ?? 1,
    });
    $("sample-prompt").textContent = prompt;
    $("sample-text").textContent = data.samples[0];
    last = prompt;
    await drawSelfAttention();
    setStatus(`sampled ${number("max-new")} tokens, seed ${number("seed")}`);
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function drawSelfAttention() {
  // the prompt's causal self-attention: each position (row) over the ones it may see
  if (last === null || !last.trim()) { $("attention-panel").hidden = true; return; }
  const body = { text: last, model: $("model").value };
  if (!$("view-pickers").hidden) {
    body.layer = Number($("layer").value);
    if ($("head").value !== "") body.head = Number($("head").value);
  }
  const data = await api("/v1/attention", body);
  $("attention-panel").hidden = false;
  drawHeatmap(data.cols, data.rows, data.weights);
}

function redraw() {
  if (last === null) return;
  if ((currentModel() || {}).task === "lm") drawSelfAttention().catch((e) => setStatus(e.message, true));
  else translate();
}

function showTranslation(t) {
  $("result").hidden = false;
  $("translation").textContent = t.text;
  const rows = t.nbest.map((o, i) => {
    const tr = document.createElement("tr");
    for (const v of [i + 1, o.score.toFixed(3), o.log_prob.toFixed(3), o.text]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.append(td);
    }
    return tr;
  });
  $("nbest-list").tBodies[0].replaceChildren(...rows);
  const best = t.nbest[0];
  $("attention-panel").hidden = !best.attention;
  $("tree-section").hidden = false;
  if (best.attention) drawHeatmap(t.source_pieces, best.attention_rows, best.attention);
}

function colour(w) {
  // white -> deep blue, perceptually monotone enough for weights in [0, 1]
  const a = [247, 251, 255], b = [8, 48, 107];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * Math.min(1, Math.max(0, w))));
  return `rgb(${c.join(",")})`;
}

function drawHeatmap(cols, rows, weights) {
  const grid = $("heatmap");
  grid.style.gridTemplateColumns = `auto repeat(${cols.length}, 26px)`;
  const cells = [document.createElement("div")];
  for (const c of cols) {
    const d = document.createElement("div");
    d.className = "col-label";
    d.textContent = shown(c);
    cells.push(d);
  }
  rows.forEach((r, i) => {
    const label = document.createElement("div");
    label.className = "row-label";
    label.textContent = shown(r);
    cells.push(label);
    cols.forEach((c, j) => {
      const d = document.createElement("div");
      d.className = "cell";
      d.dataset.source = shown(c);
      d.dataset.target = shown(r);
      d.dataset.weight = String(weights[i][j]);
      d.style.background = colour(weights[i][j]);
      cells.push(d);
    });
  });
  grid.replaceChildren(...cells);
}

function showTooltip(event) {
  const cell = event.target.closest(".cell");
  const tip = $("tooltip");
  if (!cell) { tip.hidden = true; return; }
  const w = Number(cell.dataset.weight);
  tip.textContent = `${cell.dataset.source} \u2192 ${cell.dataset.target}: ${w.toFixed(3)}`;
  tip.style.left = `${event.clientX + 12}px`;
  tip.style.top = `${event.clientY + 12}px`;
  tip.hidden = false;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.append(e);
  return e;
}

function drawTree(box, trace, beam) {
  const colW = 130, rowH = 24, nodeW = 116, nodeH = 20, top = 8;
  const steps = trace.steps;
  const height = top + rowH * Math.max(1, ...steps.map((s) => s.candidates.length)) + 8;
  const root = svg("svg", { width: colW * (steps.length + 1) + 10, height, class: "beam-tree" });
  const y = (i) => top + i * rowH;
  const kept = [[{ y: y(0) }]]; // kept[t][slot] = node position; step -1 is <s>
  const start = svg("g", { class: "kept" }, root);
  svg("rect", { x: 4, y: y(0), width: nodeW, height: nodeH, rx: 4 }, start);
  svg("text", { x: 10, y: y(0) + 14 }, start).textContent = "<s>";
  steps.forEach((step, t) => {
    const x = 4 + colW * (t + 1);
    const slots = [];
    step.candidates.forEach((c, i) => {
      const parent = kept[t][c.parent] || kept[t][0];
      svg("path", {
        d: `M ${x - colW + nodeW} ${parent.y + nodeH / 2} C ${x - 8} ${parent.y + nodeH / 2}, ${x - 8} ${y(i) + nodeH / 2}, ${x} ${y(i) + nodeH / 2}`,
        class: c.status === "pruned" ? "" : "live",
      }, root);
      const g = svg("g", { class: `node ${c.status}`, "data-step": t, "data-status": c.status }, root);
      svg("rect", { x, y: y(i), width: nodeW, height: nodeH, rx: 4 }, g);
      const full = shown(c.piece);
      const piece = full.length > 9 ? `${full.slice(0, 8)}\u2026` : full;
      svg("text", { x: x + 5, y: y(i) + 14 }, g).textContent = `${piece}  ${c.score.toFixed(2)}`;
      svg("title", {}, g).textContent =
        `step ${t + 1}: ${full} (${c.status})\nlog P = ${c.log_prob.toFixed(3)}\nscore (length-normalised) = ${c.score.toFixed(3)}`;
      if (c.status === "kept") slots[c.slot] = { y: y(i) };
    });
    kept.push(slots);
  });
  const title = document.createElement("h3");
  const best = trace.nbest[0];
  title.textContent = `beam width ${beam}: ${best ? `${best.text} (score ${best.score.toFixed(3)})` : ""}`;
  box.replaceChildren(title, root);
}

async function drawTrees() {
  if (last === null) return;
  const widths = [Number($("tree-beam").value)];
  if ($("compare").checked) widths.push(Number($("compare-beam").value));
  $("tree-b").hidden = widths.length < 2;
  try {
    const traces = await Promise.all(widths.map((beam) =>
      api("/v1/translate", request(last, { beam, nbest: 1, trace: true }))));
    traces.forEach((data, i) => drawTree($(i ? "tree-b" : "tree-a"), data.trace, widths[i]));
  } catch (e) {
    setStatus(e.message, true);
  }
}

function toggleTree() {
  const open = $("tree-panel").hidden;
  $("tree-panel").hidden = !open;
  $("open-tree").setAttribute("aria-expanded", String(open));
  if (open) drawTrees();
}

$("form").addEventListener("submit", translate);
$("sample-form").addEventListener("submit", sampleText);
$("model").addEventListener("change", () => { setupViewPickers(); setupMode(); });
$("layer").addEventListener("change", redraw);
$("head").addEventListener("change", redraw);
$("heatmap").addEventListener("mousemove", showTooltip);
$("heatmap").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
$("open-tree").addEventListener("click", toggleTree);
for (const id of ["tree-beam", "compare", "compare-beam"]) $(id).addEventListener("change", drawTrees);
init();
