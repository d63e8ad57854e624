// serin's live dashboard. Reads the daemon's JSON API and its event stream
// from the same origin; renders with textContent only (never HTML from data).
"use strict";

const MAX_POINTS = 900;      // per series: 15 minutes at one point a second
const TRAFFIC_WINDOW = 10;   // seconds of traffic behind each live point
const MAX_HISTORY = 300;     // entries kept per canary
const MAX_HISTORY_PAGES = 20;
const TOKEN_KEY = "serin-token";
const CONFIRM_MS = 4000;     // how long "Confirm promote?" waits for the second click
const STATUS_EVERY_MS = 5000; // statuses (conditions, new canaries) are read again this often
// Phases in which a person may still act on a rollout (the daemon's own rule:
// manual gates act before promotion).
const ACTIVE_PHASES = new Set(["Waiting", "Progressing", "WaitingPromotion"]);

const store = {
  canaries: new Map(),   // name -> status (the API's CanaryStatus)
  decisions: new Map(),  // name -> {at, decision}
  history: new Map(),    // name -> [{at, kind, text, severity}]
  series: new Map(),     // name -> {weight, success, p95, p99, ring}
  loaded: new Set(),     // canaries whose history was fetched
};

// === DOM helpers: text only ===

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function num(value, digits) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (digits === undefined && Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  const d = digits !== undefined ? digits : abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return value.toFixed(d);
}

function time(ms) {
  if (!ms) return "";
  return new Date(ms).toLocaleTimeString();
}

function badge(text, cls, testid) {
  return el("span", { class: "badge " + cls, "data-testid": testid }, text);
}

function phaseText(status) {
  return status.paused ? status.phase + " (paused)" : status.phase;
}

// === data ===

function seriesOf(name) {
  let s = store.series.get(name);
  if (!s) {
    s = {
      weight: [],
      success: { stable: [], canary: [] },
      p95: { stable: [], canary: [] },
      p99: { stable: [], canary: [] },
      ring: [],
    };
    store.series.set(name, s);
  }
  return s;
}

function push(points, at, value) {
  if (value === null || !Number.isFinite(value)) return;
  points.push([at, value]);
  if (points.length > MAX_POINTS) points.splice(0, points.length - MAX_POINTS);
}

function addHistory(name, entry) {
  const list = store.history.get(name) || [];
  list.push(entry);
  if (list.length > MAX_HISTORY) list.splice(0, list.length - MAX_HISTORY);
  store.history.set(name, list);
}

// serin's latency histogram: 16 sub-buckets per power of two, microseconds.
function bucketMid(index) {
  if (index < 16) return index;
  const shift = Math.floor(index / 16) - 1;
  const low = (16 + (index % 16)) * Math.pow(2, shift);
  return low + (Math.pow(2, shift) - 1) / 2;
}

function mergeCounts(list) {
  const out = { requests: 0, errors: 0, counts: [], total: 0 };
  for (const c of list) {
    if (!c) continue;
    out.requests += c.requests || 0;
    out.errors += c.errors || 0;
    const h = c.latency || {};
    out.total += h.total || 0;
    (h.counts || []).forEach((n, i) => { out.counts[i] = (out.counts[i] || 0) + n; });
  }
  return out;
}

function quantileMs(merged, q) {
  if (!merged.total) return null;
  const rank = q * merged.total;
  let seen = 0;
  for (let i = 0; i < merged.counts.length; i++) {
    seen += merged.counts[i] || 0;
    if (seen >= rank) return bucketMid(i) / 1000;
  }
  return null;
}

function onTraffic(name, at, delta) {
  const s = seriesOf(name);
  s.ring.push(delta);
  if (s.ring.length > TRAFFIC_WINDOW) s.ring.shift();
  for (const version of ["stable", "canary"]) {
    const merged = mergeCounts(s.ring.map((d) => d[version]));
    const rate = merged.requests ? 100 * (merged.requests - merged.errors) / merged.requests : null;
    push(s.success[version], at, rate);
    push(s.p95[version], at, quantileMs(merged, 0.95));
    push(s.p99[version], at, quantileMs(merged, 0.99));
  }
}

function onStatus(status) {
  const known = store.canaries.get(status.name);
  store.canaries.set(status.name, Object.assign({}, known || {}, status));
  const s = seriesOf(status.name);
  push(s.weight, Date.now(), status.canaryWeight);
}

function onState(change) {
  const state = change.state || {};
  const known = store.canaries.get(change.canary) || { name: change.canary };
  store.canaries.set(change.canary, Object.assign({}, known, {
    phase: state.phase,
    canaryWeight: state.canaryWeight,
    failedChecks: state.failedChecks,
    iterations: state.iterations,
    revision: state.revision,
    paused: state.paused,
    message: state.message,
  }));
  push(seriesOf(change.canary).weight, change.at || Date.now(), state.canaryWeight);
}

function describe(kind, body) {
  if (!body) return { text: kind };
  if (body.record) return { text: body.record.message, severity: body.record.severity };
  if (body.decision) {
    const d = body.decision;
    return { text: "decision " + d.verdict + (d.reasons && d.reasons.length ? ": " + d.reasons.join("; ") : "") };
  }
  if (body.answer) {
    // A refusal's body (or why the call failed) says what to fix.
    const calls = (body.answer.calls || []).map((c) => {
      const detail = c.body || c.error;
      return c.name + (c.status ? " " + c.status : " failed") + (detail ? ": " + detail : "");
    });
    return { text: "webhooks " + (body.kind || "") + (body.answer.ok ? " ok" : " refused") + (calls.length ? ": " + calls.join(", ") : "") };
  }
  if (body.message) return { text: body.message };
  return { text: kind };
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ headers: { Accept: "application/json" } }, options || {}));
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.error) || response.status + " " + response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

async function loadCanaries() {
  const list = await api("/api/v1/canaries");
  for (const status of list.canaries || []) onStatus(status);
}

async function loadHistory(name) {
  if (store.loaded.has(name)) return;
  store.loaded.add(name);
  let after = 0;
  const entries = [];
  for (let page = 0; page < MAX_HISTORY_PAGES; page++) {
    const result = await api("/api/v1/canaries/" + encodeURIComponent(name) + "/history?limit=500&after=" + after);
    entries.push(...(result.entries || []));
    if (!result.next || (result.entries || []).length < 500) break;
    after = result.next;
  }
  const live = store.history.get(name) || [];
  store.history.set(name, []);
  for (const entry of entries.slice(-MAX_HISTORY)) {
    const d = describe(entry.kind, entry.body);
    addHistory(name, { at: entry.at, kind: entry.kind, text: d.text, severity: d.severity });
    if (entry.kind === "decision" && entry.body && entry.body.decision) {
      store.decisions.set(name, { at: entry.at, decision: entry.body.decision });
    }
  }
  for (const entry of live) addHistory(name, entry);
}

// === live events ===

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/v1/events?traffic=true");
  const parse = (event) => { try { return JSON.parse(event.data); } catch (_) { return null; } };
  source.addEventListener("open", () => { live.textContent = "live"; live.className = "live on"; });
  source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "live off"; });
  source.addEventListener("status", (event) => { const s = parse(event); if (s) { onStatus(s); schedule(); } });
  source.addEventListener("state", (event) => { const c = parse(event); if (c) { onState(c); schedule(); } });
  source.addEventListener("traffic", (event) => {
    const c = parse(event);
    if (c && c.delta) { onTraffic(c.canary, c.at || Date.now(), c.delta); schedule(); }
  });
  source.addEventListener("decision", (event) => {
    const c = parse(event);
    if (!c) return;
    store.decisions.set(c.canary, { at: c.at, decision: c.decision });
    const d = describe("decision", c);
    addHistory(c.canary, { at: c.at, kind: "decision", text: d.text });
    schedule();
  });
  for (const kind of ["record", "webhook"]) {
    source.addEventListener(kind, (event) => {
      const c = parse(event);
      if (!c) return;
      const d = describe(kind, c);
      addHistory(c.canary, { at: c.at, kind, text: d.text, severity: d.severity });
      schedule();
    });
  }
  source.addEventListener("lagged", () => { loadCanaries().then(schedule, () => {}); });
}

// === gates ===

let pendingAction = null;

// The action waiting for its confirming click: {name, action, until}.
let armed = null;
let armedTimer = null;

function disarm() {
  armed = null;
  if (armedTimer) { clearTimeout(armedTimer); armedTimer = null; }
  schedule();
}

// Promote and abort cannot be taken back: the first click arms the button
// ("Confirm abort?") for a few seconds, the second sends it.
function confirmThen(name, action) {
  if (armed && armed.name === name && armed.action === action && Date.now() < armed.until) {
    disarm();
    gate(name, action);
    return;
  }
  if (armedTimer) clearTimeout(armedTimer);
  armed = { name, action, until: Date.now() + CONFIRM_MS };
  armedTimer = setTimeout(disarm, CONFIRM_MS);
  schedule();
}

// Why an action cannot apply to the canary now, or null when it can.
function refusal(c, action) {
  if (!ACTIVE_PHASES.has(c.phase)) return "no rollout in progress (" + (c.phase || "unknown") + ")";
  if (action === "pause" && c.paused) return "already paused";
  if (action === "resume" && !c.paused) return "not paused";
  return null;
}

function askToken(action, message) {
  pendingAction = action;
  const dialog = document.getElementById("token-dialog");
  document.getElementById("token-error").textContent = message || "";
  document.getElementById("token-input").value = "";
  if (!dialog.open) dialog.showModal();
  document.getElementById("token-input").focus();
}

async function gate(name, action) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) { askToken(() => gate(name, action)); return; }
  flash("sending " + action + "…");
  try {
    const status = await api("/api/v1/canaries/" + encodeURIComponent(name) + "/" + action, {
      method: "POST",
      headers: { Accept: "application/json", Authorization: "Bearer " + token },
    });
    if (status && status.name) onStatus(status);
    flash(action + " accepted");
  } catch (error) {
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askToken(() => gate(name, action), error.message);
    } else {
      flash(action + " refused: " + error.message, true);
    }
  }
  schedule();
}

let flashText = { text: "", bad: false };
function flash(text, bad) { flashText = { text, bad: !!bad }; schedule(); }

// === charts ===

function chart(title, lines, unit, fixed) {
  const width = 600, height = 180, left = 44, right = 8, top = 10, bottom = 22;
  const all = lines.flatMap((l) => l.points);
  const node = svg("svg", { class: "chart", viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": title });
  if (!all.length) {
    node.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "waiting for data"));
    return node;
  }
  const t1 = Math.max(...all.map((p) => p[0]));
  const t0 = Math.min(...all.map((p) => p[0]), t1 - 30000);
  let y0 = fixed ? fixed[0] : Math.min(...all.map((p) => p[1]));
  let y1 = fixed ? fixed[1] : Math.max(...all.map((p) => p[1]));
  if (!fixed) { const pad = (y1 - y0) * 0.1 || Math.abs(y1) * 0.1 || 1; y0 -= pad; y1 += pad; }
  const x = (t) => left + (width - left - right) * (t - t0) / Math.max(1, t1 - t0);
  const y = (v) => top + (height - top - bottom) * (1 - (v - y0) / Math.max(1e-9, y1 - y0));
  node.append(svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }));
  node.append(svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom }));
  node.append(svg("text", { x: left - 4, y: top + 8, "text-anchor": "end" }, num(y1) + unit));
  node.append(svg("text", { x: left - 4, y: height - bottom, "text-anchor": "end" }, num(y0) + unit));
  node.append(svg("text", { x: left, y: height - 6 }, time(t0)));
  node.append(svg("text", { x: width - right, y: height - 6, "text-anchor": "end" }, time(t1)));
  for (const line of lines) {
    if (!line.points.length) continue;
    const d = line.points.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
    node.append(svg("polyline", { class: line.cls, points: d }));
  }
  return node;
}

function chartCard(title, lines, unit, fixed, testid) {
  return el("section", { class: "card", "data-testid": testid },
    el("h2", {}, title),
    chart(title, lines, unit, fixed),
    el("div", { class: "legend" }, lines.map((l) => [el("span", { class: l.cls }, "■ " + l.label), " "])));
}

// === views ===

// What serin cannot do for a canary now: conditions after Flagger's Promoted.
function faultsOf(c) {
  return (c.conditions || []).filter((f) => f.type !== "Promoted" && f.status === "True");
}

function faults(c) {
  const list = faultsOf(c);
  if (!list.length) return null;
  return el("div", { class: "faults", "data-testid": "faults" }, list.map((f) =>
    el("p", { class: "fault", "data-testid": "condition-" + f.type },
      el("strong", {}, f.type), " since " + time(f.lastTransitionTime) + ": ", f.message || "")));
}

// The allowed margin over stable as configured: "×1.5" for maxRatio,
// "+1 points" / "+50 ms" for maxDelta; the evidence's own number when the
// daemon does not say (an older one).
function margin(c, m) {
  const config = ((c.analysis || {}).metrics || []).find((x) => x.name === m.name);
  if (config) {
    const compare = config.compare || {};
    const unit = config.unit === "%" ? " points" : config.unit ? " " + config.unit : "";
    const parts = [];
    // As written in the file: 1.5, not 1.50.
    const written = (v) => String(Number(v.toPrecision(6)));
    if (Number.isFinite(compare.maxDelta)) parts.push("+" + written(compare.maxDelta) + unit);
    if (Number.isFinite(compare.maxRatio)) parts.push("×" + written(compare.maxRatio));
    return parts.length ? parts.join(", ") : "–";
  }
  return m.margin ? "+" + num(m.margin) : "–";
}

// The CSP forbids style attributes; CSSOM properties are allowed.
function weightBar(weight) {
  const fill = el("span", {});
  fill.style.width = Math.max(0, Math.min(100, weight)) + "%";
  return el("span", { class: "bar" }, fill);
}

function overview() {
  const rows = [...store.canaries.values()].sort((a, b) => a.name.localeCompare(b.name)).map((c) => {
    const last = store.decisions.get(c.name);
    return el("tr", { "data-testid": "row" },
      el("td", {}, el("a", { href: "#/canary/" + encodeURIComponent(c.name) }, c.name)),
      el("td", {}, badge(phaseText(c), c.paused ? "paused" : c.phase || ""), faultsOf(c).map((f) => [" ", badge(f.type, "fault", "fault")])),
      el("td", { class: "num" }, weightBar(c.canaryWeight || 0), (c.canaryWeight || 0) + "%"),
      el("td", {}, c.revision || "–"),
      el("td", {}, last ? [badge(last.decision.verdict, last.decision.verdict), " ", el("span", { class: "reason" }, (last.decision.reasons || [])[0] || "")] : "–"),
      el("td", { class: "num" }, c.failedChecks || 0));
  });
  return [
    el("h1", {}, "Canaries"),
    el("section", { class: "card" },
      rows.length
        ? el("table", {},
            el("thead", {}, el("tr", {}, ["Canary", "Phase", "Weight", "Revision", "Last decision", "Failed checks"].map((h) => el("th", {}, h)))),
            el("tbody", {}, rows))
        : el("p", { class: "muted" }, "No canaries: start serin serve with canary files.")),
  ];
}

function detail(name) {
  const c = store.canaries.get(name);
  if (!c) return [el("h1", {}, name), el("p", { class: "muted" }, "No canary named " + name + ".")];
  const s = seriesOf(name);
  const last = store.decisions.get(name);
  const button = (action, label, cls, confirm) => {
    const why = refusal(c, action);
    const waiting = confirm && !why && armed && armed.name === name && armed.action === action;
    return el("button", {
      type: "button", class: (cls || "") + (waiting ? " armed" : ""), "data-action": action, "data-testid": "action-" + action,
      disabled: why !== null, title: why || (waiting ? "click again to " + action : null),
      onclick: () => { if (refusal(store.canaries.get(name) || {}, action)) return; confirm ? confirmThen(name, action) : gate(name, action); },
    }, waiting ? "Confirm " + action + "?" : label);
  };
  const summary = el("section", { class: "card summary" },
    el("div", {}, el("h1", { "data-testid": "name" }, c.name), badge(phaseText(c), c.paused ? "paused" : c.phase || "", "phase")),
    el("div", {}, el("div", { class: "muted" }, "canary weight"), el("div", { class: "big", "data-testid": "weight" }, (c.canaryWeight || 0) + "%")),
    el("div", {}, el("div", { class: "muted" }, "revision"), el("div", { "data-testid": "revision" }, c.revision || "–")),
    el("div", {}, el("div", { class: "muted" }, "failed checks"), el("div", { class: "big" }, c.failedChecks || 0)),
    el("div", { class: "actions" },
      button("promote", "Promote", "", true),
      button("pause", "Pause"),
      button("resume", "Resume"),
      button("abort", "Abort", "danger", true),
      el("span", { class: "flash " + (flashText.bad ? "error" : "muted"), "data-testid": "flash" }, flashText.text)),
    faults(c),
    el("p", { class: "muted", "data-testid": "message" }, c.message || ""),
    el("p", { class: "muted" }, "stable ", c.stable || "–", " · canary ", c.canary || "–", " · proxy ", c.listen || "–"));
  const charts = el("div", { class: "grid" },
    chartCard("Canary weight", [{ cls: "canary", label: "canary weight", points: s.weight }], "%", [0, 100], "chart-weight"),
    chartCard("Success rate (last " + TRAFFIC_WINDOW + " s)", [
      { cls: "stable", label: "stable", points: s.success.stable },
      { cls: "canary", label: "canary", points: s.success.canary }], "%", null, "chart-success"),
    chartCard("Latency p95", [
      { cls: "stable", label: "stable", points: s.p95.stable },
      { cls: "canary", label: "canary", points: s.p95.canary }], "ms", null, "chart-p95"),
    chartCard("Latency p99", [
      { cls: "stable", label: "stable", points: s.p99.stable },
      { cls: "canary", label: "canary", points: s.p99.canary }], "ms", null, "chart-p99"));
  const metrics = el("section", { class: "card", "data-testid": "metrics" },
    el("h2", {}, "Metrics and verdicts", last ? [" — ", badge(last.decision.verdict, last.decision.verdict, "verdict"), " ", el("span", { class: "muted" }, time(last.at))] : ""),
    last
      ? el("table", {},
          el("thead", {}, el("tr", {}, ["Metric", "Status", "Canary", "Stable", "Range", "Margin", "Evidence", "Reason"].map((h) => el("th", {}, h)))),
          el("tbody", {}, (last.decision.metrics || []).map((m) => el("tr", {},
            el("td", {}, m.name),
            el("td", {}, badge(m.status, m.status)),
            el("td", { class: "num" }, num(m.canary)),
            el("td", { class: "num" }, num(m.stable)),
            el("td", { class: "num" }, "[" + (m.range && m.range[0] !== null ? num(m.range[0]) : "") + ", " + (m.range && m.range[1] !== null ? num(m.range[1]) : "") + "]"),
            el("td", { class: "num", "data-testid": "margin" }, margin(c, m)),
            el("td", { class: "num" }, m.e_value !== null && m.e_value !== undefined ? "e=" + num(m.e_value) : m.p_value !== null && m.p_value !== undefined ? "p=" + num(m.p_value, 3) : (m.canary_requests || 0) + " req"),
            el("td", { class: "reason" }, m.reason)))))
      : el("p", { class: "muted" }, "No decision yet."));
  const history = (store.history.get(name) || []).slice().reverse();
  const historyCard = el("section", { class: "card history", "data-testid": "history" },
    el("h2", {}, "History"),
    history.length
      ? el("ul", {}, history.map((h) => el("li", { class: h.severity === "warning" || h.severity === "Warning" ? "warning" : "" },
          el("span", { class: "muted" }, time(h.at), " "), h.text)))
      : el("p", { class: "muted" }, "Nothing yet."));
  return [el("p", {}, el("a", { href: "#/" }, "← all canaries")), summary, charts, metrics, historyCard];
}

function route() {
  const match = location.hash.match(/^#\/canary\/(.+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  setTimeout(() => { scheduled = false; render(); }, 100);
}

function render() {
  const name = route();
  const main = document.getElementById("main");
  main.replaceChildren(...(name ? detail(name) : overview()));
  document.title = name ? name + " · serin" : "serin";
}

// === start ===

function start() {
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = document.getElementById("token-input").value.trim();
    if (!token) { document.getElementById("token-error").textContent = "enter the token"; return; }
    sessionStorage.setItem(TOKEN_KEY, token);
    document.getElementById("token-dialog").close();
    const action = pendingAction;
    pendingAction = null;
    if (action) action();
  });
  document.getElementById("token-cancel").addEventListener("click", () => {
    pendingAction = null;
    document.getElementById("token-dialog").close();
  });
  document.getElementById("token-button").addEventListener("click", () => askToken(null));
  window.addEventListener("hashchange", () => {
    const name = route();
    if (name) loadHistory(name).then(schedule, () => {});
    render();
  });
  loadCanaries()
    .then(() => { const name = route(); return name ? loadHistory(name) : null; })
    .catch((error) => { flash("cannot read the API: " + error.message, true); })
    .finally(() => { render(); connect(); refresh(); });
}

// Conditions (a refused reload, a full disk) and canaries added by a reload
// come with no event: read the statuses again every few seconds.
function refresh() {
  setTimeout(() => {
    loadCanaries().then(schedule, () => {}).finally(refresh);
  }, STATUS_EVERY_MS);
}

document.addEventListener("DOMContentLoaded", start);
