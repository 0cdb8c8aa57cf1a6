// actortrader dashboard: no framework, no CDN, no inline script (CSP default-src 'self').
// Live data arrives over server-sent events read with fetch(), so the bearer token travels
// in the Authorization header (EventSource cannot send headers). All text is set with
// textContent: whatever the engine stores is shown inert.
"use strict";

const API = "/api/v1";
const session = { access: null, refresh: null, role: null, user: null, stream: null };
const series = { pnl: [], throughput: [], rss: [] };
const MAX_POINTS = 300;
const MAX_ROWS = 50;
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- HTTP
async function api(method, path, body) {
  const call = () => fetch(API + path, {
    method,
    headers: Object.assign({ "Accept": "application/json" },
      session.access ? { "Authorization": "Bearer " + session.access } : {},
      body !== undefined ? { "Content-Type": "application/json" } : {}),
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  let res = await call();
  if (res.status === 401 && session.refresh && path !== "/auth/refresh" && await refreshTokens()) res = await call();
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok && !(res.status === 422 && "accepted" in data)) {
    const err = new Error(data.detail || ("HTTP " + res.status));
    err.status = res.status;
    throw err;
  }
  return data;
}

async function refreshTokens() {
  try {
    const res = await fetch(API + "/auth/refresh", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: session.refresh }),
    });
    if (!res.ok) return false;
    adopt(await res.json());
    return true;
  } catch (e) { return false; }
}

function adopt(tokens) {
  session.access = tokens.access_token;
  session.refresh = tokens.refresh_token;
  session.role = tokens.role;
  session.user = tokens.username;
  sessionStorage.setItem("actortrader.refresh", tokens.refresh_token);
}

// ---------------------------------------------------------------- login / logout
async function onLogin(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const res = await fetch(API + "/auth/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) { $("login-error").textContent = data.detail || ("login failed (HTTP " + res.status + ")"); return; }
    $("password").value = "";
    adopt(data);
    showDashboard();
  } catch (e) { $("login-error").textContent = "cannot reach the engine: " + e.message; }
}

async function onLogout() {
  try { await api("POST", "/auth/logout", { refresh_token: session.refresh }); } catch (e) { /* leaving anyway */ }
  if (session.stream) session.stream.abort();
  sessionStorage.removeItem("actortrader.refresh");
  Object.assign(session, { access: null, refresh: null, role: null, user: null, stream: null });
  $("dashboard").hidden = true;
  $("login-view").hidden = false;
}

async function showDashboard() {
  $("login-view").hidden = true;
  $("dashboard").hidden = false;
  $("whoami").textContent = session.user + " (" + session.role + ")";
  $("admin-controls").hidden = session.role !== "admin";
  try {
    const [state, orders, actors] = await Promise.all([api("GET", "/trading-state"), api("GET", "/orders?limit=50"), api("GET", "/actors")]);
    showState(state);
    orders.slice(-MAX_ROWS).forEach(showOrder);
    showActors(actors);
  } catch (e) { log("initial load: " + e.message); }
  stream();
}

// ---------------------------------------------------------------- live stream (SSE over fetch)
async function stream() {
  let delay = 500;
  while (session.access) {
    const ctrl = new AbortController();
    session.stream = ctrl;
    try {
      const res = await fetch(API + "/events", { headers: { "Authorization": "Bearer " + session.access, "Accept": "text/event-stream" }, signal: ctrl.signal });
      if (res.status === 401 && !(await refreshTokens())) { onLogout(); return; }
      if (!res.ok) throw new Error("HTTP " + res.status);
      setStream("live");
      delay = 500;
      await readEvents(res.body.getReader());
    } catch (e) {
      if (ctrl.signal.aborted) return;
      log("stream: " + e.message);
    }
    setStream("reconnecting");
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

async function readEvents(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      let name = "message", data = "";
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) { try { handle(name, JSON.parse(data)); } catch (e) { log("bad event " + name); } }
    }
  }
}

function handle(name, ev) {
  switch (name) {
    case "hello": $("mode").textContent = ev.mode; break;
    case "state": showState(ev); if (ev.previous) log("state " + ev.previous + " -> " + ev.state + (ev.reason ? " (" + ev.reason + ")" : "")); break;
    case "pnl": showPnL(ev); break;
    case "metrics": showMetrics(ev); break;
    case "fill": showFill(ev); break;
    case "order": showOrder(ev); break;
    case "denied": log("denied " + ev.client_order_id + ": " + ev.reason + " " + (ev.detail || "")); break;
    case "supervisor": log("supervisor " + ev.supervisor + ": " + ev.action + " " + ev.child + " (" + ev.reason + ")"); break;
    case "skipped": if (ev.fill) $("fill-count").textContent = String(Number($("fill-count").textContent) + ev.fill); break;
    case "gap": log("missed " + (ev.dropped >= 0 ? ev.dropped : "some") + " events (" + ev.reason + ")"); break;
    case "notice": log(ev.detail); break;
  }
}

// ---------------------------------------------------------------- views
function showState(s) {
  const el = $("trading-state");
  el.textContent = s.state;
  el.className = "state " + s.state;
  $("state-reason").textContent = s.reason || "";
}

// Microseconds in the unit a person reads at a glance: 285 µs, 4.2 ms, 1.02 s.
function fmtUs(us) {
  if (typeof us !== "number" || !isFinite(us)) return "–";
  if (us < 1000) return us.toFixed(0) + " µs";
  if (us < 1e6) return (us / 1000).toPrecision(3) + " ms";
  return (us / 1e6).toPrecision(3) + " s";
}

function fmt(x, digits = 2) { return (typeof x === "number" && isFinite(x)) ? x.toFixed(digits) : "–"; }
function signClass(td, x) { td.className = x > 0 ? "pos" : (x < 0 ? "neg" : ""); }

function showPnL(p) {
  $("pnl-total").textContent = fmt(p.total);
  $("pnl-realized").textContent = fmt(p.realized_pnl);
  $("pnl-unrealized").textContent = fmt(p.unrealized_pnl);
  $("pnl-fees").textContent = fmt(p.fees);
  push(series.pnl, p.total);
  drawLine($("pnl-chart"), series.pnl, p.total >= 0 ? "#3fb950" : "#f85149", true);
  const body = $("positions");
  body.replaceChildren();
  for (const pos of Object.values(p.by_symbol || {})) {
    const flat = pos.quantity === 0;  // a flat book has no average price: show a dash, not 0.0000
    const tr = row([pos.symbol, fmt(pos.quantity, 0), flat ? "–" : fmt(pos.avg_price, 4), fmt(pos.last_price, 4), fmt(pos.unrealized_pnl), fmt(pos.realized_pnl)]);
    signClass(tr.children[5], pos.realized_pnl);
    signClass(tr.children[4], pos.unrealized_pnl);
    body.appendChild(tr);
  }
}

function showMetrics(m) {
  // Counter keys are Prometheus-shaped ("feed_ticks_total{feed=\"feed\"}"); older ones plain ("ticks").
  const isTicks = (k) => /^(feed_)?ticks(_total|_per_s)?($|\{|\.)/.test(k);
  const sumOf = (obj) => { const ks = Object.keys(obj).filter(isTicks); return ks.length ? ks.reduce((a, k) => a + obj[k], 0) : undefined; };
  const tput = sumOf(m.rates || {});
  $("throughput").textContent = tput !== undefined ? Math.round(tput).toLocaleString() + " ticks/s" : "–";
  const ticks = sumOf(m.counters || {});
  $("ticks").textContent = ticks !== undefined ? Math.round(ticks).toLocaleString() : "–";
  $("samples").textContent = String(Number($("samples").textContent) + 1);
  push(series.throughput, tput || 0);
  drawLine($("throughput-chart"), series.throughput, "#58a6ff", false);
  $("rss").textContent = (m.rss_bytes / 1048576).toFixed(1) + " MiB";
  $("cpu").textContent = fmt(m.cpu_percent, 1) + " %";
  $("threads").textContent = String(m.threads);
  push(series.rss, m.rss_bytes / 1048576);
  drawLine($("rss-chart"), series.rss, "#d29922", false);
  const lat = $("latency");
  lat.replaceChildren();
  for (const [path, q] of Object.entries(m.latency_us || {})) {
    const tr = row([path.replace(/_/g, " "), fmtUs(q.p50), fmtUs(q.p99), fmtUs(q.max)]);
    for (const [i, v] of [[1, q.p50], [2, q.p99], [3, q.max]]) if (v >= 100000) tr.children[i].className = "slow";
    lat.appendChild(tr);
  }
  if (m.actors && m.actors.length) showActors(m.actors);
}

function showActors(list) {
  const body = $("actors");
  body.replaceChildren();
  for (const a of list) {
    const tr = row([a.name, a.status, String(a.restarts), String(a.mailbox_depth), a.last_error || ""]);
    tr.children[1].className = "status-" + a.status;
    body.appendChild(tr);
  }
}

function showOrder(o) {
  const body = $("orders");
  const id = "order-" + o.client_order_id;
  const tr = row([o.client_order_id, o.strategy_id, o.symbol, o.status, fmt(o.filled_qty, 0), fmt(o.avg_price, 4), o.reason || ""]);
  tr.children[3].className = o.status;
  tr.dataset.key = id;
  const old = Array.from(body.children).find((r) => r.dataset.key === id);
  if (old) old.replaceWith(tr); else body.prepend(tr);
  while (body.children.length > MAX_ROWS) body.lastChild.remove();
}

function showFill(f) {
  const body = $("fills");
  const tr = row([f.client_order_id, f.symbol, f.side, fmt(f.quantity, 0), fmt(f.price, 4), fmt(f.fee, 4), f.trade_id]);
  tr.children[2].className = f.side;
  body.prepend(tr);
  while (body.children.length > MAX_ROWS) body.lastChild.remove();
  $("fill-count").textContent = String(Number($("fill-count").textContent) + 1);
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
  return tr;
}

function log(text) {
  const li = document.createElement("li");
  li.textContent = new Date().toLocaleTimeString() + "  " + text;
  const el = $("log");
  el.prepend(li);
  while (el.children.length > 200) el.lastChild.remove();
}

function setStream(text) { $("stream-status").textContent = text; }
function push(arr, v) { arr.push(v); if (arr.length > MAX_POINTS) arr.shift(); }

// A small line chart: auto-scaled, optional zero line, last value labelled.
function drawLine(canvas, values, color, zeroLine) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 6;
  ctx.clearRect(0, 0, w, h);
  if (values.length < 2) return;
  let lo = Math.min(...values), hi = Math.max(...values);
  if (zeroLine) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = (i) => pad + (i / (values.length - 1)) * (w - 2 * pad);
  const y = (v) => h - pad - ((v - lo) / (hi - lo)) * (h - 2 * pad);
  if (zeroLine) { ctx.strokeStyle = "#30363d"; ctx.beginPath(); ctx.moveTo(0, y(0)); ctx.lineTo(w, y(0)); ctx.stroke(); }
  ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
  values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.stroke();
  ctx.fillStyle = "#8b98a5"; ctx.font = "11px sans-serif";
  ctx.fillText(String(Number(hi.toPrecision(4))), pad, 12); ctx.fillText(String(Number(lo.toPrecision(4))), pad, h - pad);
}

// ---------------------------------------------------------------- admin controls (confirmed)
function confirmThen(text, action) {
  const dlg = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-yes").onclick = async () => { dlg.close(); try { await action(); } catch (e) { log(e.message); } };
  $("confirm-no").onclick = () => dlg.close();
  dlg.showModal();
}

function setState(state) {
  confirmThen("Set trading state to " + state + "?", async () => showState(await api("PUT", "/trading-state", { state, reason: "dashboard: " + session.user })));
}

function wire() {
  $("login-form").addEventListener("submit", onLogin);
  $("btn-logout").addEventListener("click", onLogout);
  for (const id of ["btn-resume", "btn-reduce", "btn-pause"]) $(id).addEventListener("click", (e) => setState(e.currentTarget.dataset.state));
  $("btn-kill").addEventListener("click", () => confirmThen(
    "KILL SWITCH: halt trading and cancel every open order now?",
    async () => { const s = await api("POST", "/trading-state/kill-switch", { reason: "kill switch (dashboard: " + session.user + ")" }); showState(s); log("kill switch pressed"); }));
  const saved = sessionStorage.getItem("actortrader.refresh");
  if (saved) { session.refresh = saved; refreshTokens().then((ok) => { if (ok) showDashboard(); }); }
}

document.addEventListener("DOMContentLoaded", wire);
