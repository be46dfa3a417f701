// The Locus dashboard: plain JavaScript, no build step. Every action is a server command sent
// to /api/command (so it is checked, logged and audited like any client's), models are
// uploaded to /api/models/{key}, predictions go through the KServe V2 REST API, and the live
// figures come from the server-sent events of /api/events.
"use strict";

const main = document.getElementById("main");
const history = { t: [], ops: [], modelRps: [], p99: [], perModel: {} };
const HISTORY_POINTS = 300;
let last = null;        // the latest snapshot
let previous = null;    // the one before, for rates
const listeners = [];   // page callbacks run on every snapshot

// ---- helpers ---------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function cmd(...args) {
  const r = await fetch("/api/command", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Locus-Dashboard": "1" },
    body: JSON.stringify(args.map(String)),
  });
  const body = await r.json();
  if (body.error) throw new Error(body.error);
  return body.ok;
}

async function v2(path, init) {
  const r = await fetch(path, init);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function fmtBytes(n) {
  if (n == null) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}

function fmtTime(ms) {
  return new Date(Number(ms)).toLocaleString();
}

/// A stream entry's fields as an object (RESP3 maps, or flat key/value arrays).
function fields(f) {
  if (Array.isArray(f)) {
    const o = {};
    for (let i = 0; i + 1 < f.length; i += 2) o[f[i]] = f[i + 1];
    return o;
  }
  return f || {};
}

function message(target, text, ok) {
  target.replaceChildren(el("div", { class: ok ? "ok" : "error" }, text));
}

function chart(target, title, series, height, time = true) {
  const width = Math.max(320, target.clientWidth || 560);
  // Latencies (labels ending in "ms") get a scale and an axis of their own, on the right,
  // when the chart also plots counts.
  const ms = (s) => / ms$/.test(s);
  const mixed = series.some(ms) && !series.every(ms);
  const opts = {
    title, width, height: height || 220,
    scales: { x: { time } },
    axes: [{}, { size: 70 }].concat(mixed ? [{ scale: "ms", side: 1, size: 50, grid: { show: false } }] : []),
    series: [{}].concat(series.map((s, i) => ({
      label: s, stroke: ["#2b5cd6", "#d6842b", "#1c7c3a", "#c23b3b", "#7b3bc2"][i % 5], width: 2,
      scale: mixed && ms(s) ? "ms" : "y",
    }))),
  };
  const data = [[]].concat(series.map(() => []));
  return new uPlot(opts, data, target);
}

// ---- live figures ----------------------------------------------------------------------

function onSnapshot(s) {
  previous = last;
  last = s;
  const t = s.time_ms / 1000;
  if (previous) {
    const dt = Math.max(0.001, (s.time_ms - previous.time_ms) / 1000);
    const ops = (s.info.total_commands_processed - previous.info.total_commands_processed) / dt;
    const before = Object.fromEntries(previous.models.map((m) => [m.key, m]));
    let modelRps = 0;
    let p99 = 0;
    for (const m of s.models) {
      const b = before[m.key];
      const rps = b ? Math.max(0, (m.calls - b.calls) / dt) : 0;
      modelRps += m.router ? 0 : rps;
      p99 = Math.max(p99, m.p99_us / 1000);
      const h = history.perModel[m.key] || (history.perModel[m.key] = { t: [], rps: [], p99: [], p50: [], batch: [] });
      const runs = b ? m.runs - b.runs : 0;
      push(h.t, t); push(h.rps, rps); push(h.p99, m.p99_us / 1000); push(h.p50, m.p50_us / 1000);
      push(h.batch, runs > 0 ? (m.calls - b.calls) / runs : null);
    }
    push(history.t, t); push(history.ops, ops); push(history.modelRps, modelRps); push(history.p99, p99);
  }
  for (const f of [...listeners]) f(s);
}

/// The next snapshot (for pages opened before the first one arrived).
function nextSnapshot() {
  return new Promise((resolve) => {
    const once = (s) => {
      const i = listeners.indexOf(once);
      if (i >= 0) listeners.splice(i, 1);
      resolve(s);
    };
    listeners.push(once);
  });
}

function push(a, v) {
  a.push(v);
  if (a.length > HISTORY_POINTS) a.shift();
}

function connect() {
  const live = document.getElementById("live");
  const es = new EventSource("/api/events");
  es.addEventListener("snapshot", (e) => {
    live.textContent = "live";
    live.classList.remove("down");
    onSnapshot(JSON.parse(e.data));
  });
  es.onerror = () => {
    live.textContent = "reconnecting…";
    live.classList.add("down");
  };
}

// ---- pages -----------------------------------------------------------------------------

const pages = {};

pages.overview = async () => {
  const cards = el("div", { class: "cards", id: "cards" });
  const opsChart = el("div", { class: "panel", id: "chart-rps" });
  const latChart = el("div", { class: "panel", id: "chart-p99" });
  const alerts = el("div", { class: "panel", id: "alerts" });
  main.replaceChildren(el("h1", {}, "Overview"), cards, el("div", { class: "row" }, opsChart, latChart),
    el("h2", {}, "Alerts"), alerts);
  const rps = chart(opsChart, "requests per second", ["commands/s", "model requests/s"]);
  const lat = chart(latChart, "p99 latency (ms, slowest model)", ["p99 ms"]);
  const card = (label, value) => el("div", { class: "card" }, el("div", { class: "label" }, label),
    el("div", { class: "value" }, value));
  const draw = (s) => {
    const i = s.info;
    cards.replaceChildren(
      card("version", i.redis_version ?? "–"),
      card("uptime", `${Math.round(i.uptime_in_seconds ?? 0)} s`),
      card("clients", i.connected_clients ?? "–"),
      card("memory", fmtBytes(i.used_memory)),
      card("ops/s", Math.round(history.ops.at(-1) ?? 0)),
      card("models", s.models.filter((m) => !m.router).length),
      card("alerts", s.alerts),
    );
    rps.setData([history.t, history.ops, history.modelRps]);
    lat.setData([history.t, history.p99]);
  };
  let shownAlerts = null;
  async function feed(count) {
    shownAlerts = count;
    const list = await cmd("AI.ALERTS", "COUNT", 20);
    alerts.replaceChildren(list.length ? el("table", { id: "alert-feed" }, el("tr", {}, el("th", {}, "time"), el("th", {}, "alert")),
      list.map((a) => {
        const f = fields(a[1] ?? a);
        return el("tr", {}, el("td", {}, fmtTime(f.time ?? String(a[0]).split("-")[0])),
          el("td", { class: "mono" }, Object.entries(f).filter(([k]) => k !== "time").map(([k, v]) => `${k}=${v}`).join("  ")));
      })) : el("div", { class: "muted" }, "No alerts."));
  }
  if (last) draw(last);
  listeners.push(draw);
  // The feed reloads when the server's alert count moves.
  listeners.push((s) => { if (s.alerts !== shownAlerts) feed(s.alerts); });
  await feed(last ? last.alerts : null);
};

pages.models = async (key) => {
  if (key) return modelPage(key);
  const list = await cmd("AI.MODELLIST", "WITHMETA");
  main.replaceChildren(el("h1", {}, "Models"), el("table", { id: "catalog" },
    el("tr", {}, ["key", "live", "versions", "tag", "device", "batch", "sha256", "metadata"].map((h) => el("th", {}, h))),
    list.map((m) => el("tr", { "data-key": m.key },
      el("td", {}, el("a", { href: `#/models/${encodeURIComponent(m.key)}` }, m.key)),
      el("td", {}, m.live), el("td", {}, m.versions), el("td", {}, m.tag), el("td", {}, m.device),
      el("td", {}, m.batchsize), el("td", { class: "mono" }, String(m.sha256).slice(0, 12)),
      el("td", { class: "mono" }, Object.entries(m.meta || {}).map(([k, v]) => `${k}=${v}`).join(" "))))),
  list.length ? null : el("p", { class: "muted" }, "No models yet: deploy one."));
};

async function modelPage(key) {
  const status = el("div", { id: "model-status" });
  const versions = el("div", { class: "panel" });
  const signature = el("div", { class: "panel" });
  const plot = el("div", { class: "panel" });
  main.replaceChildren(el("h1", {}, `Model ${key}`), status,
    el("div", {}, el("button", { id: "rollback", onclick: () => act(["AI.MODELROLLBACK", key]) }, "Roll back"), " ",
      el("button", { class: "danger", onclick: () => confirm(`Delete ${key} and all its versions?`) && act(["AI.MODELDEL", key], "#/models") }, "Delete model")),
    el("h2", {}, "Versions"), versions, el("h2", {}, "Signature"), signature, el("h2", {}, "Traffic"), plot);
  async function act(words, then) {
    try {
      await cmd(...words);
      message(status, `${words.join(" ")}: OK`, true);
      if (then) location.hash = then; else load();
    } catch (e) { message(status, e.message); }
  }
  async function load() {
    const list = await cmd("AI.MODELVERSIONS", key);
    versions.replaceChildren(el("table", { id: "versions" },
      el("tr", {}, ["version", "status", "created", "by", "sha256", "size", "tag", "metadata", ""].map((h) => el("th", {}, h))),
      list.map((v) => el("tr", { "data-version": v.version, "data-status": v.status },
        el("td", {}, v.version), el("td", { class: `status-${v.status}` }, v.status), el("td", {}, fmtTime(v.created)),
        el("td", {}, v.created_by), el("td", { class: "mono" }, String(v.sha256).slice(0, 12)), el("td", {}, fmtBytes(v.size)),
        el("td", {}, v.tag), el("td", { class: "mono" }, Object.entries(v.meta || {}).map(([k, x]) => `${k}=${x}`).join(" ")),
        el("td", {}, v.status === "live" ? null : [
          el("button", { class: "promote", onclick: () => act(["AI.MODELPROMOTE", key, "VERSION", v.version]) }, "Promote"), " ",
          el("button", { class: "secondary", onclick: () => act(["AI.MODELDEL", key, "VERSION", v.version]) }, "Delete")])))));
  }
  await load();
  try {
    const m = await v2(`/v2/models/${encodeURIComponent(key)}`);
    const io = (kind, list) => list.map((t) => el("tr", {}, el("td", {}, kind), el("td", {}, t.name), el("td", {}, t.datatype), el("td", {}, JSON.stringify(t.shape))));
    signature.replaceChildren(el("table", {}, el("tr", {}, ["", "name", "datatype", "shape"].map((h) => el("th", {}, h))),
      io("input", m.inputs), io("output", m.outputs)));
  } catch (e) { message(signature, e.message); }
  const u = chart(plot, "requests/s and latency (ms)", ["req/s", "p50 ms", "p99 ms"]);
  const batchPlot = el("div", { class: "panel", id: "batch-plot" });
  plot.after(batchPlot);
  const ub = chart(batchPlot, "requests per run (batch size)", ["requests per run"]);
  const draw = () => {
    const h = history.perModel[key];
    if (h) {
      u.setData([h.t, h.rps, h.p50, h.p99]);
      ub.setData([h.t, h.batch]);
    }
  };
  draw();
  listeners.push(draw);
}

pages.deploy = async () => {
  const out = el("div", { id: "deploy-result" });
  const form = el("form", { class: "panel", id: "deploy-form" },
    el("label", {}, "Key"), el("input", { name: "key", required: true, placeholder: "fraud" }),
    el("label", {}, "ONNX file"), el("input", { name: "file", type: "file", accept: ".onnx", required: true }),
    el("label", {}, "Tag"), el("input", { name: "tag" }),
    el("label", {}, "Batch size (0: no batching)"), el("input", { name: "batchsize", type: "number", min: 0, value: 0 }),
    el("label", {}, "Metadata (one name=value per line)"), el("textarea", { name: "meta", style: "min-height:60px" }),
    el("label", {}, el("input", { name: "staged", type: "checkbox" }), " store as staged (not live)"),
    el("p", {}, el("button", { type: "submit" }, "Deploy")), out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const file = form.file.files[0];
    if (!file) return message(out, "choose an .onnx file");
    const q = new URLSearchParams({ tag: f.get("tag") || "", batchsize: f.get("batchsize") || "0",
      staged: form.staged.checked ? "1" : "0" });
    for (const line of String(f.get("meta") || "").split("\n")) {
      const [k, ...v] = line.split("=");
      if (k.trim() && v.length) q.set("meta." + k.trim(), v.join("=").trim());
    }
    const key = String(f.get("key")).trim();
    message(out, "uploading…", true);
    const r = await fetch(`/api/models/${encodeURIComponent(key)}?${q}`, {
      method: "PUT", headers: { "X-Locus-Dashboard": "1" }, body: await file.arrayBuffer(),
    });
    const body = await r.json();
    if (body.error) return message(out, body.error);
    out.replaceChildren(el("div", { class: "ok" }, `Stored ${key}. `),
      el("a", { href: `#/models/${encodeURIComponent(key)}` }, "Open the model"));
  });
  main.replaceChildren(el("h1", {}, "Deploy a model"), form);
};

/// Rows typed into the prediction form: a JSON array of rows (or an object of arrays, one
/// per input), or CSV lines of numbers for the first input.
function parseRows(text) {
  const t = text.trim();
  if (t.startsWith("[") || t.startsWith("{")) return JSON.parse(t);
  return t.split(/\r?\n/).filter((l) => l.trim()).map((l) => l.split(",").map((x) => Number(x.trim())));
}

function v2Input(port, rows) {
  const flat = rows.flat(Infinity);
  const shape = port.shape.map((d, i) => (d >= 0 ? d : i === 0 ? rows.length : 1));
  if (port.shape.length === 1) shape[0] = flat.length;
  if (port.shape.length >= 2 && port.shape[1] < 0) shape[1] = flat.length / rows.length;
  return { name: port.name, datatype: port.datatype, shape, data: flat };
}

/// One row's attributions as a horizontal bar chart (SVG): a bar per feature, right of the
/// axis when it raised the output, left when it lowered it.
function attributionChart(values, names, row) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const rowH = 16, left = 110, width = 640, height = values.length * rowH + 10;
  const mid = left + (width - left) / 2, half = (width - left) / 2 - 60;
  const max = Math.max(1e-12, ...values.map((v) => Math.abs(v)));
  const chart = svg("svg", { class: "attributions", "data-row": row, width, height, viewBox: `0 0 ${width} ${height}` });
  chart.append(svg("line", { x1: mid, x2: mid, y1: 0, y2: height, stroke: "#999" }));
  values.forEach((v, j) => {
    const y = 5 + j * rowH, len = (Math.abs(v) / max) * half;
    chart.append(svg("text", { x: 0, y: y + 10, "font-size": 11 }, names[j]));
    chart.append(svg("rect", { class: "bar", "data-feature": j, "data-value": v, x: v >= 0 ? mid : mid - len, y,
      width: Math.max(len, 0.5), height: rowH - 4, fill: v >= 0 ? "#2b5cd6" : "#c23b3b" }));
    chart.append(svg("text", { x: v >= 0 ? mid + len + 4 : mid - len - 4, y: y + 10, "font-size": 10,
      "text-anchor": v >= 0 ? "start" : "end" }, v.toPrecision(3)));
  });
  return chart;
}

pages.try = async (preset) => {
  const models = await cmd("AI.MODELLIST");
  const routers = (last || (await nextSnapshot())).models.filter((m) => m.router).map((m) => m.key);
  const select = el("select", { id: "try-model" }, models.map((m) => el("option", { value: m.key }, m.key)),
    routers.map((k) => el("option", { value: k }, `${k} (router)`)));
  if (preset) select.value = preset;
  const sig = el("div", { class: "muted", id: "try-signature" });
  const rows = el("textarea", { id: "try-rows", placeholder: "CSV rows of numbers, or JSON" });
  const out = el("div", { id: "try-output" });
  let meta = null;
  async function describe() {
    try {
      meta = await v2(`/v2/models/${encodeURIComponent(select.value)}`);
      sig.textContent = "inputs: " + meta.inputs.map((i) => `${i.name} ${i.datatype} ${JSON.stringify(i.shape)}`).join(", ");
      const first = meta.inputs[0];
      const width = Math.max(1, first.shape[1] ?? 1);
      if (!rows.value) rows.value = Array.from({ length: width }, () => "0.5").join(", ");
    } catch (e) { sig.textContent = e.message; }
  }
  select.addEventListener("change", () => { rows.value = ""; describe(); });
  async function run() {
    try {
      const parsed = parseRows(rows.value);
      const inputs = Array.isArray(parsed)
        ? meta.inputs.map((p, i) => v2Input(p, i === 0 ? parsed : Array.from({ length: parsed.length }, () => Array(Math.max(1, p.shape[1] ?? 1)).fill(0))))
        : meta.inputs.map((p) => v2Input(p, parsed[p.name]));
      const r = await v2(`/v2/models/${encodeURIComponent(select.value)}/infer`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ inputs }),
      });
      out.replaceChildren(el("p", {}, `model ${r.model_name}` + (r.model_version ? ` version ${r.model_version}` : "")),
        ...r.outputs.map((o) => {
          const cols = o.shape.length > 1 ? o.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
          const n = o.data.length / cols;
          return el("div", { class: "panel" }, el("strong", {}, `${o.name} ${o.datatype} ${JSON.stringify(o.shape)}`),
            el("table", { class: "output" }, Array.from({ length: n }, (_, i) => el("tr", {},
              o.data.slice(i * cols, (i + 1) * cols).map((v) => el("td", { class: "mono" }, typeof v === "number" ? v.toPrecision(6) : v))))));
        }));
    } catch (e) { message(out, e.message); }
  }
  const method = el("select", { id: "try-method" }, ["kernelshap", "exact", "occlusion"].map((m) => el("option", { value: m }, m)));
  const target = el("input", { id: "try-target", type: "number", min: 0, value: 0, style: "width:4em" });
  // Attributions of the chosen output (and each row's predicted class) to the first input's
  // features, against the monitor's baseline on the key (or zeros).
  async function explain() {
    try {
      const parsed = parseRows(rows.value);
      const inputs = meta.inputs.map((p, i) => v2Input(p, i === 0 ? parsed : Array.from({ length: parsed.length }, () => Array(Math.max(1, p.shape[1] ?? 1)).fill(0))));
      message(out, "explaining…", true);
      const r = await v2(`/v2/models/${encodeURIComponent(select.value)}/explain`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ inputs, parameters: { method: method.value, target: Number(target.value) } }),
      });
      const a = r.outputs[0];
      const features = a.shape[1];
      const names = Array.from({ length: features }, (_, j) => `${meta.inputs[0].name}[${j}]`);
      out.replaceChildren(el("p", {}, `attributions by ${r.method} for output ${target.value} of ${r.model_name}`),
        ...Array.from({ length: a.shape[0] }, (_, i) => el("div", { class: "panel explain-row" }, el("strong", {}, `row ${i}`),
          attributionChart(a.data.slice(i * features, (i + 1) * features), names, i))));
    } catch (e) { message(out, e.message); }
  }
  main.replaceChildren(el("h1", {}, "Try a model"), el("div", { class: "panel" }, select, " ", sig,
    el("label", {}, "Rows"), rows, el("p", {}, el("button", { id: "try-run", onclick: run }, "Predict"), " ",
      el("button", { id: "try-explain", class: "secondary", onclick: explain }, "Explain"), " method ", method, " output ", target)), out);
  if (models.length || routers.length) await describe();
};

/// The model keys and routers a page can pick from.
async function targets(preset) {
  const models = await cmd("AI.MODELLIST");
  const routers = (last || (await nextSnapshot())).models.filter((m) => m.router).map((m) => m.key);
  const select = el("select", {}, models.map((m) => el("option", { value: m.key }, m.key)),
    routers.map((k) => el("option", { value: k }, `${k} (router)`)));
  if (preset) select.value = preset;
  return select;
}

/// Rows of CSV text: a header line of names, then numbers.
function parseCsv(text) {
  const lines = text.split(/\r?\n/).filter((l) => l.trim());
  const header = lines.shift().split(",").map((h) => h.trim());
  return { header, rows: lines.map((l) => l.split(",").map((x) => Number(x.trim()))) };
}

pages.testdata = async (preset) => {
  const select = await targets(preset);
  select.id = "td-model";
  const file = el("input", { type: "file", id: "td-file", accept: ".csv,text/csv" });
  const label = el("input", { id: "td-label", value: "label" });
  const status = el("div", { id: "td-status" });
  const results = el("div", { id: "td-results" });
  main.replaceChildren(el("h1", {}, "Test data"), el("div", { class: "panel" },
    el("label", {}, "Model"), select, el("label", {}, "CSV file (a header line; feature columns, and optionally a label column)"), file,
    el("label", {}, "Label column (optional)"), label, el("p", {}, el("button", { id: "td-run", onclick: score }, "Score"))), status, results);
  async function score() {
    try {
      if (!file.files[0]) return message(status, "choose a CSV file");
      const { header, rows } = parseCsv(await file.files[0].text());
      const li = header.indexOf(label.value.trim());
      const features = rows.map((r) => r.filter((_, i) => i !== li));
      const actual = li >= 0 ? rows.map((r) => r[li]) : null;
      const meta = await v2(`/v2/models/${encodeURIComponent(select.value)}`);
      const preds = [];
      for (let at = 0; at < features.length; at += 256) {
        const chunk = features.slice(at, at + 256);
        message(status, `scoring rows ${at + 1}–${at + chunk.length} of ${features.length}…`, true);
        const inputs = meta.inputs.map((p, i) => v2Input(p, i === 0 ? chunk : chunk.map(() => Array(Math.max(1, p.shape[1] ?? 1)).fill(0))));
        const r = await v2(`/v2/models/${encodeURIComponent(select.value)}/infer`, {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ inputs }),
        });
        const o = r.outputs[0];
        const cols = o.shape.length > 1 ? o.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
        for (let i = 0; i < o.data.length / cols; i++) preds.push(o.data.slice(i * cols, (i + 1) * cols));
      }
      const width = preds[0]?.length ?? 1;
      const classify = width >= 2;
      const scores = preds.map((p) => (classify ? p[p.length - 1] : p[0]));
      const predicted = preds.map((p) => (classify ? p.indexOf(Math.max(...p)) : p[0]));
      message(status, `scored ${preds.length} rows`, true);
      render({ header, rows, li, scores, predicted, actual, classify, width });
    } catch (e) { message(status, e.message); }
  }
  function render(d) {
    const dist = el("div", { class: "panel", id: "td-distribution" });
    const quality = el("div", { class: "panel", id: "td-quality" });
    const table = el("table", { id: "td-table" }, el("tr", {}, d.header.map((h) => el("th", {}, h)), el("th", {}, "score"), el("th", {}, "predicted")),
      d.rows.slice(0, 20).map((r, i) => el("tr", {}, r.map((v) => el("td", { class: "mono" }, v)),
        el("td", { class: "mono score" }, d.scores[i].toPrecision(6)), el("td", { class: "mono" }, d.predicted[i]))));
    const download = el("button", { id: "td-download", onclick: () => {
      const lines = [d.header.concat(["score", "predicted"]).join(",")]
        .concat(d.rows.map((r, i) => r.concat([d.scores[i], d.predicted[i]]).join(",")));
      const a = el("a", { href: URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" })), download: "predictions.csv" });
      document.body.append(a); a.click(); a.remove();
    } }, "Download predictions (CSV)");
    results.replaceChildren(el("h2", {}, "Score distribution"), dist, el("h2", {}, "Against the labels"), quality,
      el("h2", {}, "Rows"), download, table);
    // Histogram of the scores, 20 bins.
    const lo = Math.min(...d.scores), hi = Math.max(...d.scores);
    const step = (hi - lo) / 20 || 1;
    const bins = Array(20).fill(0);
    for (const s of d.scores) bins[Math.min(19, Math.floor((s - lo) / step))]++;
    new uPlot({ title: "scores", width: 560, height: 220, scales: { x: { time: false } },
      series: [{}, { label: "rows", stroke: "#2b5cd6", fill: "rgba(43,92,214,.3)", paths: uPlot.paths.bars({ size: [0.9] }) }] },
    [bins.map((_, i) => lo + (i + 0.5) * step), bins], dist);
    if (!d.actual) return quality.replaceChildren(el("p", { class: "muted" }, "No label column."));
    if (d.classify) {
      const classes = [...new Set(d.actual.concat(d.predicted))].sort((a, b) => a - b);
      const m = classes.map((a) => classes.map((p) => d.actual.filter((x, i) => x === a && d.predicted[i] === p).length));
      const accuracy = d.actual.filter((x, i) => x === d.predicted[i]).length / d.actual.length;
      const children = [el("p", {}, `accuracy ${(100 * accuracy).toFixed(1)}%`),
        el("table", { id: "td-confusion" }, el("tr", {}, el("th", {}, "actual \\ predicted"), classes.map((c) => el("th", {}, c))),
          m.map((row, i) => el("tr", {}, el("th", {}, classes[i]), row.map((n) => el("td", {}, n)))))];
      if (classes.length === 2) {
        // ROC of the positive class's score, and its area.
        const order = d.scores.map((s, i) => [s, d.actual[i] === classes[1]]).sort((a, b) => b[0] - a[0]);
        const pos = order.filter((o) => o[1]).length, neg = order.length - pos;
        const fpr = [0], tpr = [0];
        let tp = 0, fp = 0, auc = 0;
        for (const [, positive] of order) {
          if (positive) tp++; else { fp++; auc += tp; }
          fpr.push(neg ? fp / neg : 0); tpr.push(pos ? tp / pos : 0);
        }
        auc = pos && neg ? auc / (pos * neg) : 0;
        const roc = el("div", { id: "td-roc" });
        children.push(el("p", {}, "ROC area under the curve ", el("strong", { id: "td-auc" }, auc.toFixed(4))), roc);
        quality.replaceChildren(...children);
        new uPlot({ title: "ROC", width: 420, height: 300, scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
          series: [{ label: "false positive rate" }, { label: "true positive rate", stroke: "#c23b3b", width: 2 }] }, [fpr, tpr], roc);
        return;
      }
      return quality.replaceChildren(...children);
    }
    const err = d.scores.map((s, i) => s - d.actual[i]);
    const mae = err.reduce((a, e) => a + Math.abs(e), 0) / err.length;
    const mean = d.actual.reduce((a, x) => a + x, 0) / d.actual.length;
    const r2 = 1 - err.reduce((a, e) => a + e * e, 0) / d.actual.reduce((a, x) => a + (x - mean) ** 2, 0);
    const scatter = el("div", { id: "td-scatter" });
    quality.replaceChildren(el("p", {}, `mean absolute error ${mae.toPrecision(4)}, R² `, el("strong", { id: "td-r2" }, r2.toFixed(4))), scatter);
    const order = d.actual.map((a, i) => [a, d.scores[i]]).sort((x, y) => x[0] - y[0]);
    new uPlot({ title: "predicted against actual", width: 420, height: 300, scales: { x: { time: false } },
      series: [{ label: "actual" }, { label: "predicted", stroke: "#2b5cd6", width: 0, points: { show: true, size: 4 } }] },
    [order.map((o) => o[0]), order.map((o) => o[1])], scatter);
  }
};

pages.loadtest = async (preset) => {
  const select = await targets(preset);
  select.id = "lt-model";
  const clients = el("input", { id: "lt-clients", type: "number", min: 1, max: 64, value: 8 });
  const seconds = el("input", { id: "lt-seconds", type: "number", min: 1, max: 60, value: 5 });
  const rate = el("input", { id: "lt-rate", type: "number", min: 0, value: 0 });
  const status = el("div", { id: "lt-status" });
  const plot = el("div", { class: "panel" });
  main.replaceChildren(el("h1", {}, "Load test"), el("div", { class: "panel" },
    el("label", {}, "Model or router"), select, el("label", {}, "Clients (at most 64)"), clients,
    el("label", {}, "Seconds (at most 60)"), seconds, el("label", {}, "Rate in requests per second (0: as fast as answered)"), rate,
    el("p", {}, el("button", { id: "lt-start", onclick: start }, "Start"))), status, plot);
  // Its x axis is seconds since the test started.
  const u = chart(plot, "load test (x: seconds)", ["req/s", "p50 ms", "p99 ms"], 220, false);
  async function start() {
    const xs = [], rps = [], p50 = [], p99 = [];
    message(status, "starting…", true);
    try {
      const r = await fetch("/api/loadtest", {
        method: "POST", headers: { "Content-Type": "application/json", "X-Locus-Dashboard": "1" },
        body: JSON.stringify({ model: select.value, clients: Number(clients.value), seconds: Number(seconds.value), rate: Number(rate.value) }),
      });
      if (!r.ok) return message(status, (await r.json()).error);
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const p = JSON.parse(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          xs.push(p.elapsed); rps.push(p.rps); p50.push(p.p50_us / 1000); p99.push(p.p99_us / 1000);
          u.setData([xs, rps, p50, p99]);
          status.replaceChildren(el("div", { class: p.errors ? "error" : "ok", "data-done": p.done ? "1" : "0",
            "data-requests": p.requests, "data-errors": p.errors },
          `${p.done ? "finished" : "running"}: ${p.requests} requests in ${p.elapsed.toFixed(1)} s, ${Math.round(p.rps)} req/s, ` +
          `p50 ${(p.p50_us / 1000).toFixed(2)} ms, p90 ${(p.p90_us / 1000).toFixed(2)} ms, p99 ${(p.p99_us / 1000).toFixed(2)} ms, ` +
          `${p.errors} errors` + (p.first_error ? ` (${p.first_error})` : "")));
        }
      }
    } catch (e) { message(status, e.message); }
  }
};

pages.routers = async () => {
  const status = el("div");
  const list = el("div", { id: "router-list" });
  const def = el("input", { id: "router-def", size: 60, placeholder: "SPLIT fraud@1 95 fraud@2 5" });
  const key = el("input", { id: "router-key", placeholder: "canary" });
  const create = el("div", { class: "panel" }, el("strong", {}, "New router "), key, " ", def, " ",
    el("button", { id: "router-create", onclick: async () => {
      try {
        await cmd("AI.ROUTERSET", key.value.trim(), ...def.value.trim().split(/\s+/));
        message(status, `router ${key.value} stored`, true);
        await draw();
      } catch (e) { message(status, e.message); }
    } }, "Create"));
  main.replaceChildren(el("h1", {}, "Routers"), create, status, list);
  const routerNames = async () => {
    const s = last || (await nextSnapshot());
    return s.models.filter((m) => m.router).map((m) => m.key).sort();
  };
  // One panel per router, kept across refreshes: its table is redrawn, its chart of traffic
  // shares over time (per refresh interval, so a bandit's arms are seen converging) grows.
  const shown = new Map();
  function panelFor(r, targets) {
    let p = shown.get(r);
    if (!p) {
      const head = el("div");
      const table = el("div");
      const plot = el("div", { class: "shares" });
      const node = el("div", { class: "panel router", "data-router": r }, head, table, plot);
      p = { node, head, table, plot, last: null, hist: [[], ...targets.map(() => [])] };
      p.chart = chart(plot, "share of requests per interval (%)", targets.map((t) => t.target), 180);
      shown.set(r, p);
    }
    return p;
  }
  async function draw() {
    const names = await routerNames();
    for (const r of [...shown.keys()]) if (!names.includes(r)) shown.delete(r);
    for (const r of names) {
      const info = await cmd("AI.ROUTERINFO", r);
      const p = panelFor(r, info.targets);
      const total = info.targets.reduce((a, t) => a + t.calls, 0) || 1;
      const calls = info.targets.map((t) => t.calls);
      if (p.last && p.last.length === calls.length) {
        const delta = calls.map((n, i) => Math.max(0, n - p.last[i]));
        const sum = delta.reduce((a, b) => a + b, 0);
        if (sum > 0) {
          p.hist[0].push(Date.now() / 1000);
          delta.forEach((d, i) => p.hist[i + 1].push((100 * d) / sum));
          if (p.hist[0].length > HISTORY_POINTS) p.hist.forEach((a) => a.shift());
          p.chart.setData(p.hist);
        }
      }
      p.last = calls;
      p.head.replaceChildren(el("strong", {}, `${r} `), el("span", { class: "muted" }, `${info.kind}, ${info.calls} requests, ${info.errors} errors, ${info.rollbacks} rollbacks`));
      p.table.replaceChildren(el("table", {}, el("tr", {}, ["target", "weight", "share of requests", "calls", "errors", "p99 µs", "guard", "rollbacks", "bandit", "agreement"].map((h) => el("th", {}, h))),
        info.targets.map((t) => el("tr", { "data-target": t.target },
          el("td", {}, t.target),
          el("td", {}, el("input", { type: "range", min: 0, max: Math.max(100, Math.ceil(t.weight)), step: 1, value: t.weight,
            class: "weight", onchange: async (e) => {
              try { await cmd("AI.ROUTERWEIGHT", r, t.target, e.target.value); message(status, `${r} ${t.target} weight ${e.target.value}`, true); }
              catch (err) { message(status, err.message); }
            } }), ` ${Number(t.weight).toFixed(2)}`),
          el("td", { class: "share" }, `${((100 * t.calls) / total).toFixed(1)}%`),
          el("td", {}, t.calls), el("td", {}, t.errors), el("td", {}, Math.round(t.p99_us ?? 0)),
          el("td", {}, t.guard ?? ""), el("td", {}, t.rollbacks ?? 0),
          el("td", {}, t.pulls !== undefined ? `${t.pulls} pulls, mean reward ${Number(t.mean_reward ?? 0).toFixed(3)}` : ""),
          el("td", {}, t.agreement ? JSON.stringify(t.agreement) : "")))));
    }
    const nodes = names.map((r) => shown.get(r).node);
    if (nodes.length) {
      if (nodes.some((n, i) => list.children[i] !== n) || list.children.length !== nodes.length) list.replaceChildren(...nodes);
    } else {
      list.replaceChildren(el("p", { class: "muted" }, "No routers."));
    }
  }
  await draw();
  let busy = false;
  listeners.push(async () => {
    if (busy || document.activeElement?.type === "range") return;
    busy = true;
    try { await draw(); } finally { busy = false; }
  });
};

pages.monitoring = async () => {
  const monitors = el("div", { id: "monitors" });
  const alerts = el("div", { class: "panel", id: "alert-history" });
  main.replaceChildren(el("h1", {}, "Monitoring"), el("h2", {}, "Drift monitors"), monitors, el("h2", {}, "Alert history"), alerts);
  const panels = [];
  for (const m of await cmd("AI.MODELLIST")) {
    let g;
    try { g = await cmd("AI.MONITOR", "GET", m.key); } catch (e) { continue; }
    const scores = g.scores || [];
    panels.push(el("div", { class: "panel", "data-monitor": m.key }, el("strong", {}, `${m.key} `),
      el("span", { class: "muted" }, `${g.method}, threshold ${g.threshold}, state ${g.state}, outlier rate ${g.outlier_rate}, rows seen ${g.rows_seen}`),
      el("table", {}, el("tr", {}, el("th", {}, "feature"), el("th", {}, "score"), el("th", {}, "over threshold")),
        scores.map((s, i) => el("tr", {}, el("td", {}, i), el("td", {}, Number(s).toFixed(4)),
          el("td", { class: Number(s) > Number(g.threshold) ? "error" : "ok" }, Number(s) > Number(g.threshold) ? "yes" : "no"))))));
  }
  monitors.replaceChildren(...(panels.length ? panels : [el("p", { class: "muted" }, "No monitors (AI.MONITOR SET).")]));
  const list = await cmd("AI.ALERTS", "COUNT", 100);
  alerts.replaceChildren(list.length ? el("table", {}, list.map((a) => {
    const f = fields(a[1] ?? a);
    return el("tr", {}, el("td", { class: "mono" }, Object.entries(f).map(([k, v]) => `${k}=${v}`).join("  ")));
  })) : el("div", { class: "muted" }, "No alerts."));
};

pages.audit = async () => {
  const filter = el("input", { id: "audit-filter", placeholder: "filter (command, key, user…)" });
  const table = el("div", { class: "panel" });
  main.replaceChildren(el("h1", {}, "Audit"), filter, table);
  const stream = (await cmd("CONFIG", "GET", "audit-stream"))["audit-stream"] || "locus:audit";
  const entries = (await cmd("XREVRANGE", stream, "+", "-", "COUNT", 500)).map((e) => ({ id: e[0], f: fields(e[1]) }));
  const cols = ["time", "user", "client", "addr", "command", "key", "version", "sha256", "outcome", "detail"];
  const draw = () => {
    const q = filter.value.trim().toLowerCase();
    const rows = entries.filter((e) => !q || Object.values(e.f).some((v) => String(v).toLowerCase().includes(q)));
    table.replaceChildren(el("table", { id: "audit" }, el("tr", {}, cols.map((c) => el("th", {}, c))),
      rows.map((e) => el("tr", {}, cols.map((c) => el("td", { class: c === "sha256" ? "mono" : null },
        c === "time" ? fmtTime(e.f.time) : c === "sha256" ? String(e.f[c] ?? "").slice(0, 12) : e.f[c] ?? "")))),
    ));
  };
  filter.addEventListener("input", draw);
  draw();
};

// ---- routing ---------------------------------------------------------------------------

async function route() {
  listeners.length = 0;
  const [, page = "overview", arg] = location.hash.split("/").map(decodeURIComponent);
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  try {
    await (pages[page] || pages.overview)(arg);
  } catch (e) {
    main.replaceChildren(el("h1", {}, "Error"), el("div", { class: "error" }, e.message));
  }
}

window.addEventListener("hashchange", route);
connect();
route();
