// The Inferwatch console's script (a plain ES module, no build step): charts from the page's JSON,
// live updates, the SQL forms and the Silence button. Every value from the server is put into the
// page with textContent (never innerHTML of data): model names and segment values are users' text.

const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000"];
const DASHES = [[], [6, 3], [2, 3], [8, 3, 2, 3], [4, 4], [1, 2], [10, 4]];
const csrf = document.querySelector('meta[name="inferwatch-csrf"]')?.content || "";
const body = document.body;
const jsonUrl = body.dataset.json;
const pollS = Math.max(2, Number(body.dataset.pollS) || 5);
const status = document.getElementById("live-status");

let uPlot = null;
try {
  uPlot = (await import("./vendor/uPlot.esm.js")).default;
} catch (err) {
  // the tables carry every number; say why the charts are missing
  if (status) status.textContent = "charts unavailable (chart library not installed)";
}

async function api(url, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (options.method && options.method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-Inferwatch-CSRF"] = csrf;
  }
  const res = await fetch(url, { credentials: "same-origin", ...options, headers });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  if (res.status === 401) {
    location.assign(`/console/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  if (!res.ok) {
    const detail = data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : res.statusText;
    throw new Error(`${res.status}: ${detail}`);
  }
  return data;
}

// ---- charts ---------------------------------------------------------------------------------------

const charts = [];

function clearCharts() {
  while (charts.length) charts.pop().destroy();
}

function width(el) {
  return Math.max(240, Math.min(960, el.clientWidth || el.parentElement.clientWidth || 720));
}

function lineOpts(el, names, extra = {}) {
  return {
    width: width(el), height: 240,
    series: [{}, ...names.map((name, i) => ({
      label: name, stroke: PALETTE[i % PALETTE.length], width: 2, dash: DASHES[i % DASHES.length], spanGaps: true,
    }))],
    axes: [{}, { size: 60 }],
    ...extra,
  };
}

function drawSeries(el, d) {
  const s = d.series;
  if (!s || !s.t.length) return;
  const names = ["whole version", ...s.segments.map((x) => `${x.key}=${x.value}`)];
  const data = [s.t, s.whole, ...s.segments.map((x) => x.values), s.reference_hi, s.reference_lo];
  const opts = lineOpts(el, names);
  const band = "rgba(0, 0, 0, 0.12)";
  opts.series.push({ label: "reference (high)", stroke: "#777", width: 1, dash: [2, 2], spanGaps: true });
  opts.series.push({ label: "reference (low)", stroke: "#777", width: 1, dash: [2, 2], spanGaps: true });
  const hi = data.length - 2;
  opts.bands = [{ series: [hi, hi + 1], fill: band }];
  charts.push(new uPlot(opts, data, el));
}

function drawSignals(el, d) {
  const m = d.signals;
  const names = Object.keys(m.metrics || {});
  if (!names.length) return;
  charts.push(new uPlot(lineOpts(el, names), [m.t, ...names.map((n) => m.metrics[n])], el));
}

function drawHist(el, d) {
  const x = d.drifted_inputs?.[Number(el.dataset.index)];
  if (!x || !x.histogram.bins.length) return;
  const h = x.histogram;
  const label = (t) => (h.bins[t] === undefined ? "" : h.kind === "numeric" ? Number(h.bins[t]).toPrecision(3) : String(h.bins[t]));
  const xs = h.before.map((_, i) => i);
  const bars = uPlot.paths.bars({ size: [0.4, 40], align: 0 });
  const opts = {
    width: width(el), height: 200,
    scales: { x: { time: false } },
    axes: [{ values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? label(t) : "")) }, { size: 60 }],
    series: [{ label: x.feature },
      { label: "before", stroke: PALETTE[0], fill: "rgba(0,114,178,0.45)", paths: bars },
      { label: "after", stroke: PALETTE[1], fill: "rgba(230,159,0,0.45)", paths: uPlot.paths.bars({ size: [0.4, 40], align: 1 }) }],
  };
  charts.push(new uPlot(opts, [xs, h.before, h.after], el));
}

function drawSparks(d) {
  for (const el of document.querySelectorAll(".spark")) {
    const row = el.closest("tr");
    const m = (d.models || []).find((x) => x.model === row?.dataset.model && x.model_version === row?.dataset.version);
    if (!m || m.spark_t.length < 2) continue;
    charts.push(new uPlot({
      width: 120, height: 32, cursor: { show: false }, legend: { show: false }, select: { show: false },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: row.classList.contains("trouble") ? PALETTE[4] : PALETTE[0], width: 1.5 }],
    }, [m.spark_t, m.spark], el));
  }
}

function draw(d) {
  if (!uPlot || !d) return;
  clearCharts();
  drawSparks(d);
  for (const el of document.querySelectorAll("[data-chart]")) {
    const kind = el.dataset.chart;
    try {
      if (kind === "series") drawSeries(el, d);
      else if (kind === "signals") drawSignals(el, d);
      else if (kind === "hist") drawHist(el, d);
    } catch (err) {
      el.textContent = `chart failed: ${err.message}`;
    }
  }
}

// ---- live updates ---------------------------------------------------------------------------------

let stamp = null;

async function poll(first) {
  try {
    const d = await api(jsonUrl);
    if (first) {
      stamp = d.stamp;
      draw(d);
    } else if (d.stamp !== stamp) {
      const live = document.getElementById("live");
      // do not pull a form from under the user's fingers: try again on the next poll
      if (live.contains(document.activeElement) && document.activeElement.closest("form")) return;
      const res = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!res.ok) throw new Error(`${res.status}`);
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.getElementById("live");
      if (fresh) live.replaceChildren(...fresh.childNodes);
      stamp = d.stamp;
      draw(d);
    }
    if (status) status.textContent = `live · ${new Date().toISOString().slice(11, 19)} UTC`;
  } catch (err) {
    if (status) status.textContent = `live updates paused: ${err.message}`;
  }
}

if (jsonUrl) {
  poll(true);
  setInterval(() => poll(false), pollS * 1000);
}

// ---- SQL forms ------------------------------------------------------------------------------------

function cell(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function renderResult(target, r) {
  target.chart?.destroy();
  target.chart = null;
  target.replaceChildren();
  const info = document.createElement("p");
  info.className = "note";
  info.textContent = `${r.rows.length} row(s)${r.truncated ? " (cut at the row limit)" : ""} in ${r.elapsed_s.toFixed(3)} s`;
  target.append(info);
  const numeric = r.columns.map((_, j) => r.rows.length > 0 && r.rows.every((row) => row[j] === null || typeof row[j] === "number"));
  const ys = numeric.map((n, j) => (n && j > 0 ? j : -1)).filter((j) => j >= 0);
  if (uPlot && ys.length && r.rows.length > 1) {
    const first = r.rows.map((row) => row[0]);
    let xs;
    let time = false;
    if (first.every((v) => typeof v === "number")) xs = first;
    else if (first.every((v) => typeof v === "string" && !Number.isNaN(Date.parse(v.endsWith("Z") || v.includes("+") ? v : `${v}Z`)))) {
      xs = first.map((v) => Date.parse(v.endsWith("Z") || v.includes("+") ? v : `${v}Z`) / 1000);
      time = true;
    } else xs = first.map((_, i) => i);
    const order = xs.map((x, i) => [x, i]).sort((a, b) => a[0] - b[0]).map((p) => p[1]);
    const el = document.createElement("div");
    el.className = "chart";
    el.setAttribute("role", "img");
    el.setAttribute("aria-label", `chart of ${ys.map((j) => r.columns[j]).join(", ")} by ${r.columns[0]}; the numbers are in the table below`);
    target.append(el);
    const opts = lineOpts(el, ys.map((j) => r.columns[j]), { scales: { x: { time } } });
    // not in `charts`: the live redraw of the page's own charts must leave a query's result alone
    target.chart = new uPlot(opts, [order.map((i) => xs[i]), ...ys.map((j) => order.map((i) => r.rows[i][j]))], el);
  }
  const wrap = document.createElement("div");
  wrap.className = "scroll";
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const c of r.columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = c;
    head.append(th);
  }
  const tb = table.createTBody();
  for (const row of r.rows) {
    const tr = tb.insertRow();
    row.forEach((v, j) => {
      const td = tr.insertCell();
      td.textContent = cell(v);
      if (numeric[j]) td.className = "num";
    });
  }
  wrap.append(table);
  target.append(wrap);
}

async function runSql(form) {
  const target = form.parentElement.querySelector("[data-sql-result]");
  const params = {};
  for (const el of form.querySelectorAll("[name^='param:']")) params[el.name.slice(6)] = el.value;
  const payload = { sql: form.querySelector("textarea[name=sql]").value, params, max_rows: 1000 };
  if (form.dataset.saved) payload.saved = form.dataset.saved;
  target.textContent = "running…";
  try {
    renderResult(target, await api("/v1/console/sql", { method: "POST", body: JSON.stringify(payload) }));
  } catch (err) {
    target.textContent = `refused: ${err.message}`;
  }
}

for (const form of document.querySelectorAll("[data-sql-form]")) {
  form.addEventListener("submit", (ev) => { ev.preventDefault(); runSql(form); });
  if ("autorun" in form.dataset) runSql(form);
}

// ---- Silence --------------------------------------------------------------------------------------

const silenceButton = document.querySelector("[data-testid=silence-button]");
const silenceForm = document.getElementById("silence-form");
if (silenceButton && silenceForm) {
  const result = document.querySelector("[data-testid=silence-result]");
  silenceButton.addEventListener("click", () => {
    silenceForm.hidden = !silenceForm.hidden;
    silenceButton.setAttribute("aria-expanded", String(!silenceForm.hidden));
    if (!silenceForm.hidden) silenceForm.querySelector("select, input").focus();
  });
  silenceForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(silenceForm);
    const payload = {
      matchers: JSON.parse(silenceForm.dataset.matchers),
      duration: fd.get("duration"),
      comment: fd.get("comment"),
      created_by: "console",
    };
    result.textContent = "creating…";
    try {
      const s = await api("/v1/silences", { method: "POST", body: JSON.stringify(payload) });
      result.textContent = `Silenced: ${s.id} until ${new Date(s.ends_at).toISOString().slice(0, 16).replace("T", " ")}Z`;
      result.dataset.silenceId = s.id;
      silenceForm.hidden = true;
      silenceButton.setAttribute("aria-expanded", "false");
    } catch (err) {
      result.textContent = `Not silenced: ${err.message}`;
    }
  });
}
