// dma platform console: plain JS over the REST API (/iot/api/v1).
// Command ids are 64-bit: they are read as strings (JSON.parse would round them).
"use strict";
const API = "/iot/api/v1/";
const STATES = ["ready", "in progress", "ok", "failed"];
let token = sessionStorage.getItem("dma-token") || "";
// The login's privileges: the console hides what they do not allow (the server refuses it anyway).
let privileges = JSON.parse(sessionStorage.getItem("dma-privileges") || "[]");
let current = null;      // selected device serial
let watching = null;     // command id whose answer is awaited
const $ = (id) => document.getElementById(id);

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function parseBig(text) {
  return JSON.parse(text.replace(/("id"\s*:\s*)(\d{16,})/g, '$1"$2"'));
}
async function api(path, opts = {}) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  const r = await fetch(API + path, { ...opts, headers });
  const j = parseBig(await r.text());
  if (r.status === 401 && path !== "auth/login") { logout(); throw new Error(j.msg || "unauthorized"); }
  if (j.status !== "ok") throw new Error(j.msg || ("HTTP " + r.status));
  return j.data;
}
function when(t) {
  if (!t || t <= 0) return "—";
  const d = new Date(t * 1000), ago = Math.round(Date.now() / 1000 - t);
  const rel = ago < 60 ? ago + " s ago" : ago < 3600 ? Math.round(ago / 60) + " min ago" : ago < 86400 ? Math.round(ago / 3600) + " h ago" : Math.round(ago / 86400) + " d ago";
  return `<span title="${esc(d.toISOString())}">${esc(d.toLocaleString())}</span> <span class="muted small">${esc(rel)}</span>`;
}
// A router that accepts unsigned commands (no trusted key yet) says so in its birth.
function signedBadge(x) { return x.signed === false ? ' <span class="badge warn" title="this router accepts UNSIGNED commands: provision the platform key (trusted_key)">unsigned</span>' : ""; }
function badge(on) { return on ? '<span class="badge on">online</span>' : '<span class="badge off">offline</span>'; }
function parseText(t) { try { return t ? JSON.parse(t) : null; } catch (e) { return null; } }
function b64(s) {
  try { const bin = atob(s || ""); return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))); }
  catch (e) { return "(not base64) " + s; }
}

function showLogin() { $("login").classList.remove("hidden"); $("app").classList.add("hidden"); $("logout").classList.add("hidden"); $("who").textContent = ""; }
function logout() { token = ""; privileges = []; sessionStorage.removeItem("dma-token"); sessionStorage.removeItem("dma-privileges"); showLogin(); }
// Revoke the token on the server too, then forget it here.
$("logout").onclick = async () => { try { await api("auth/logout", { method: "POST", body: "{}" }); } catch (e) { console.warn(e); } logout(); };
function can(p) { return privileges.includes(p); }
function applyRole() {
  $("cmd-card").classList.toggle("hidden", !can("operator"));
  $("key-line").classList.add("hidden");
  if (can("admin")) loadKey().catch((e) => console.warn(e));
  $("role").textContent = privileges.length ? "(" + privileges[0] + ")" : "";
}
$("login-form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("login-err").textContent = "";
  try {
    const d = await api("auth/login", { method: "POST", body: JSON.stringify({ user: $("user").value, password: $("password").value }) });
    token = d.token; sessionStorage.setItem("dma-token", token);
    privileges = d.user.privileges || []; sessionStorage.setItem("dma-privileges", JSON.stringify(privileges));
    start(d.user.user);
  } catch (e) { $("login-err").textContent = e.message; }
};

function sysCell(t) {
  const m = parseText(t); if (!m || !m.d) return '<span class="muted">—</span>';
  const d = m.d, parts = [];
  if (d.load !== undefined) parts.push("load " + d.load);
  if (d.free !== undefined) parts.push("free " + Math.round(d.free / 1024) + " MiB");
  if (d.used !== undefined) parts.push("used " + Math.round(d.used / 1024) + " MiB");
  if (d.uptime !== undefined) parts.push("up " + Math.round(d.uptime / 60) + " min");
  return esc(parts.join(", ")) + `<div class="muted small">received ${when(m.revtime)}</div>`;
}
function listCell(t, f) {
  const m = parseText(t); if (!m || !Array.isArray(m.d)) return '<span class="muted">—</span>';
  return m.d.slice(0, 8).map((x) => `<div class="small">${esc(f(x))}</div>`).join("");
}

async function loadDevices() {
  const d = await api(devQuery());
  $("dev-count").textContent = `(${d.total})`;
  $("devices").querySelector("tbody").innerHTML = d.list.map((x) => `
    <tr data-sn="${esc(x.sn)}" class="${x.sn === current ? "sel" : ""}">
      <td><input type="checkbox" class="pick" data-sn="${esc(x.sn)}"></td><td><b>${esc(x.sn)}</b></td><td>${badge(x.online)}${signedBadge(x)}</td><td>${when(x.activeTime)}</td>
      <td>${x.bootTime > 0 ? when(x.bootTime) : '<span class="muted">—</span>'}</td>
      <td>${sysCell(x.sys)}</td>
      <td>${listCell(x.procs, (p) => p.n + " " + (p.mem !== undefined ? p.mem + " KiB" : "") + (p.cpu !== undefined ? " " + p.cpu + "%" : ""))}</td>
      <td>${listCell(x.versions, (v) => v.n + " " + v.v)}</td>
    </tr>`).join("") || '<tr><td colspan="8" class="muted">no device matches</td></tr>';
  for (const tr of $("devices").querySelectorAll("tbody tr[data-sn]")) tr.onclick = () => openDevice(tr.dataset.sn);
  devPaged(d);
  if (current) {
    const x = d.list.find((y) => y.sn === current);
    if (x) $("dev-state").innerHTML = badge(x.online);
  }
}
// Admins see the platform's public key, to provision on routers as `list trusted_key`.
async function loadKey() {
  const k = await api("platform/key");
  $("key-line").textContent = k ? `command signing key: list trusted_key '${k.publicKey}'` : "commands are published UNSIGNED (no signing_key configured)";
  $("key-line").classList.remove("hidden");
}
async function loadBroker() {
  try {
    const s = await api("monitor/brokers/stats");
    const m = s.metrics, none = !s.stats.connectionCount && !m.packetReceivedCount;
    $("broker").textContent = none ? "broker: no figures yet" :
      `broker: ${s.stats.connectionCount} connections, ${s.stats.sessionCount} sessions, ${m.messageReceivedCount} messages in, ${m.messageSentCount} out`;
  } catch (e) { $("broker").textContent = ""; }
}
async function openDevice(sn) {
  current = sn;
  $("device").classList.remove("hidden");
  $("dev-sn").textContent = sn;
  for (const tr of $("devices").querySelectorAll("tbody tr")) tr.classList.toggle("sel", tr.dataset.sn === sn);
  await Promise.all([loadPeriph(), loadHistory(), loadDevices(), loadEvents()]);
}
async function loadPeriph() {
  if (!current) return;
  const d = await api("monitor/devices/peripherals?limit=100&sn=" + encodeURIComponent(current));
  $("periph").querySelector("tbody").innerHTML = d.list.map((p) => {
    const m = parseText(p.msg) || {};
    const keys = ["model", "firmware", "serial", "error"].filter((k) => m[k] !== undefined).map((k) => k + ": " + (typeof m[k] === "object" ? JSON.stringify(m[k]) : m[k]));
    return `<tr><td>${esc(p.nId)}<div class="muted small">gw ${esc(p.gwId)}</div></td><td>${esc(p.kind)}</td><td>${badge(p.online)}</td>
      <td>${when(p.revTime)}</td><td class="small">${esc(keys.join(" · ") || "")}</td></tr>`;
  }).join("") || '<tr><td colspan="5" class="muted">no peripherals reported</td></tr>';
}
async function loadHistory() {
  if (!current) return;
  const d = await api("remotectl/commands?limit=50&sn=" + encodeURIComponent(current));
  $("history").querySelector("tbody").innerHTML = d.list.map((c) => `
    <tr data-id="${esc(c.id)}"><td><code>${esc(c.id)}</code></td>
      <td>${esc(c.command)}${c.method ? " " + esc(c.method) : ""}<div class="muted small"><code>${esc(JSON.stringify(c.d)).slice(0, 80)}</code></div></td>
      <td><span class="badge s${c.state}">${esc(STATES[c.state] || c.state)}</span>${c.reason ? `<div class="muted small">${esc(c.reason)}</div>` : ""}</td>
      <td>${esc(c.tryTimes)} / ${esc(c.maxRetries)}</td><td>${when(c.publishTime)}</td>
      <td>${c.finishTime ? when(c.finishTime) : c.failedTime ? when(c.failedTime) : "—"}</td></tr>`).join("") ||
    '<tr><td colspan="6" class="muted">no commands yet</td></tr>';
  for (const tr of $("history").querySelectorAll("tbody tr[data-id]")) tr.onclick = () => showAnswer(tr.dataset.id);
}

function renderAnswer(r) {
  const d = r.d || {};
  let html = `<div><b>${esc(r.command)}</b> <code>${esc(r.id)}</code> → status <span class="badge ${r.status === "ok" ? "s2" : "s3"}">${esc(r.status)}</span>
    <span class="muted small">exestatus ${esc(d.exestatus)}${d.code !== undefined ? ", exit code " + esc(d.code) : ""}${d.msg ? ", " + esc(d.msg) : ""}</span></div>`;
  if (r.command === "sh") {
    html += `<div class="small muted">stdout</div><pre id="answer-stdout">${esc(b64(d.result))}</pre>`;
    if (d.stderr) html += `<div class="small muted">stderr</div><pre id="answer-stderr">${esc(b64(d.stderr))}</pre>`;
  } else {
    html += `<pre id="answer-json">${esc(JSON.stringify(d.result !== undefined ? d.result : d, null, 2))}</pre>`;
  }
  $("answer").innerHTML = html;
  $("answer").classList.remove("hidden");
}
async function showAnswer(id) {
  try { renderAnswer(await api("remotectl/commands/responses?id=" + id)); }
  catch (e) { $("answer").innerHTML = `<span class="muted">${esc(e.message)}</span>`; $("answer").classList.remove("hidden"); }
}
$("cmd-command").onchange = () => {
  const c = $("cmd-command").value;
  const samples = { sh: '{"shcmd": "uname -a; uptime"}', report: '{"what": "all"}', agent: "{}", iad: '{"api": "sys_info/oem"}',
    s20: '{"api": "/otbr/get_status"}', goip: '{"op": "status"}', vpn: '{"controler": "User", "action": "GetUserCloud", "params": {}}', sms: '{"to": "", "sms": ""}', reboot: "{}", upgrade: '{"url": "", "sha256": ""}' };
  $("cmd-body").value = samples[c] || "{}";
  $("cmd-method").value = ["agent", "iad", "s20", "goip", "vpn"].includes(c) ? "get" : "";
};
$("cmd-form").onsubmit = async (ev) => {
  ev.preventDefault();
  if (!current) return;
  let body;
  try { body = JSON.parse($("cmd-body").value || "{}"); } catch (e) { $("cmd-status").textContent = "the body is not JSON: " + e.message; return; }
  const req = { from: "iot_web_console", to: [{ sn: current }], command: $("cmd-command").value, method: $("cmd-method").value, body,
    publishNow: $("cmd-now").checked, maxRetries: Number($("cmd-retries").value) || 1, expires: Number($("cmd-expires").value) || 0, detached: false };
  try {
    const d = await api("remotectl/commands", { method: "POST", body: JSON.stringify(req) });
    watching = d.to[0].id;
    $("cmd-status").textContent = "sent as " + watching + ", waiting for the answer…";
    $("answer").classList.add("hidden");
    await loadHistory();
  } catch (e) { $("cmd-status").textContent = e.message; }
};
async function poll() {
  if (!watching) return;
  const c = await api("remotectl/commands?id=" + watching);
  $("cmd-status").textContent = `${watching}: ${STATES[c.state]} (try ${c.tryTimes} of ${c.maxRetries})${c.reason ? " — " + c.reason : ""}`;
  if (c.state >= 2 || (c.state === 1 && c.reason)) {
    await showAnswer(watching);
    if (c.state >= 2) watching = null;
    await loadHistory();
  }
}

let timers = [];
function start(user) {
  $("who").textContent = user ? "logged in as " + user : "";
  applyRole();
  $("login").classList.add("hidden"); $("app").classList.remove("hidden"); $("logout").classList.remove("hidden");
  timers.forEach(clearInterval);
  const safe = (f) => () => f().catch((e) => console.warn(e));
  safe(loadDevices)(); safe(loadBroker)();
  timers = [setInterval(safe(loadDevices), 5000), setInterval(safe(loadBroker), 5000), setInterval(safe(poll), 1000),
    setInterval(safe(async () => { if (current) { await loadPeriph(); if (!watching) await loadHistory(); } }), 5000), ...fleetInit()];
}
if (token) start(""); else showLogin();
