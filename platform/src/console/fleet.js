// dma platform console, fleet part: device search, filters and paging (server side),
// selection of many routers (or a whole filter) for one command with its progress,
// and the events view (per device and fleet-wide, newest first, paged).
// Loaded before app.js; wired by fleetInit() once app.js has defined its helpers.
"use strict";
const fleet = { page: 1, limit: 50, total: 0, selected: new Set(), evPage: 1, evLimit: 25, evTotal: 0, bulk: null };

// The device list's query: filters and the page.
function devQuery() {
  const q = new URLSearchParams({ page: String(fleet.page), limit: String(fleet.limit) });
  const s = document.getElementById("f-q").value.trim(), on = document.getElementById("f-online").value, k = document.getElementById("f-kind").value.trim();
  if (s) q.set("q", s);
  if (on) q.set("online", on);
  if (k) q.set("kind", k);
  return "monitor/devices?" + q.toString();
}
function filterObject() {
  const f = {}, s = $("f-q").value.trim(), on = $("f-online").value, k = $("f-kind").value.trim();
  if (s) f.q = s;
  if (on) f.online = on;
  if (k) f.kind = k;
  return f;
}
// After app.js rendered a page: paging line, checkboxes kept across pages.
function devPaged(d) {
  fleet.total = d.total;
  const pages = Math.max(1, Math.ceil(d.total / fleet.limit));
  $("pg-info").textContent = `page ${fleet.page} of ${pages} · ${d.total} devices`;
  $("pg-prev").disabled = fleet.page <= 1;
  $("pg-next").disabled = fleet.page >= pages;
  for (const cb of $("devices").querySelectorAll("tbody input.pick")) {
    cb.checked = fleet.selected.has(cb.dataset.sn);
    cb.onclick = (ev) => { ev.stopPropagation(); cb.checked ? fleet.selected.add(cb.dataset.sn) : fleet.selected.delete(cb.dataset.sn); selCount(); };
  }
  selCount();
}
function selCount() {
  $("sel-count").textContent = String(fleet.selected.size);
  $("bulk-send-sel").disabled = fleet.selected.size === 0;
}
function refreshDevices() { loadDevices().catch((e) => console.warn(e)); }

async function sendBulk(byFilter) {
  let body;
  try { body = JSON.parse($("bulk-body").value || "{}"); } catch (e) { $("bulk-status").textContent = "the body is not JSON: " + e.message; return; }
  const from = "console-bulk-" + Date.now();
  const req = { from, command: $("bulk-command").value, method: $("bulk-method").value, body, maxRetries: 1, expires: 600, publishNow: true };
  if (byFilter) {
    const f = filterObject();
    if (!Object.keys(f).length) { $("bulk-status").textContent = "set a search or filter first"; return; }
    req.toFilter = f;
  } else {
    req.to = [...fleet.selected].map((sn) => ({ sn }));
  }
  try {
    const d = await api("remotectl/commands", { method: "POST", body: JSON.stringify(req) });
    fleet.bulk = from;
    $("bulk-status").textContent = `sent to ${d.to.length} devices as '${from}'`;
    await loadProgress();
  } catch (e) { $("bulk-status").textContent = e.message; }
}
async function loadProgress() {
  if (!fleet.bulk) return;
  const p = await api("remotectl/commands/progress?from=" + encodeURIComponent(fleet.bulk));
  $("bulk-progress").classList.remove("hidden");
  $("bp-total").textContent = p.total; $("bp-ready").textContent = p.ready; $("bp-sent").textContent = p.sent;
  $("bp-ok").textContent = p.ok; $("bp-failed").textContent = p.failed;
  const done = p.total ? Math.round(100 * (p.ok + p.failed) / p.total) : 0;
  $("bp-bar").style.width = done + "%";
  $("bp-failures").querySelector("tbody").innerHTML = p.failures.map((f) =>
    `<tr><td><b>${esc(f.sn)}</b></td><td><code>${esc(f.id)}</code></td><td>${esc(f.reason)}</td><td>${esc(f.tryTimes)}</td></tr>`).join("") ||
    '<tr><td colspan="4" class="muted">no failures</td></tr>';
}

function eventText(e) {
  const v = e.event || {};
  if (e.type === "sms" || v.text !== undefined || v.sms !== undefined) return `from ${v.from || v.sender || "?"}: ${v.text !== undefined ? v.text : v.sms}`;
  if (v.cmdId !== undefined || v.id !== undefined) return `command ${v.cmdId !== undefined ? v.cmdId : v.id}: ${v.status || v.state || JSON.stringify(v)}`;
  return JSON.stringify(v).slice(0, 200);
}
async function loadEvents() {
  const q = new URLSearchParams({ page: String(fleet.evPage), limit: String(fleet.evLimit) });
  const t = $("ev-type").value.trim();
  if (t) q.set("type", t);
  if ($("ev-mine").checked && current) q.set("sn", current);
  const d = await api("monitor/devices/events?" + q.toString());
  fleet.evTotal = d.total;
  const pages = Math.max(1, Math.ceil(d.total / fleet.evLimit));
  $("ev-info").textContent = `page ${fleet.evPage} of ${pages} · ${d.total} events`;
  $("ev-prev").disabled = fleet.evPage <= 1;
  $("ev-next").disabled = fleet.evPage >= pages;
  $("events").querySelector("tbody").innerHTML = d.list.map((e) =>
    `<tr><td>${when(e.revTime)}</td><td><b>${esc(e.sn)}</b></td><td><span class="badge s0">${esc(e.type)}</span></td><td class="small">${esc(eventText(e))}</td></tr>`).join("") ||
    '<tr><td colspan="4" class="muted">no events</td></tr>';
}

function fleetInit() {
  let typing = null;
  const again = () => { fleet.page = 1; refreshDevices(); };
  $("f-q").oninput = () => { clearTimeout(typing); typing = setTimeout(again, 300); };
  $("f-online").onchange = again;
  $("f-kind").onchange = again;
  $("pg-prev").onclick = () => { if (fleet.page > 1) { fleet.page--; refreshDevices(); } };
  $("pg-next").onclick = () => { fleet.page++; refreshDevices(); };
  $("sel-page").onclick = () => { for (const cb of $("devices").querySelectorAll("tbody input.pick")) fleet.selected.add(cb.dataset.sn); refreshDevices(); };
  $("sel-none").onclick = () => { fleet.selected.clear(); refreshDevices(); };
  $("bulk-send-sel").onclick = () => sendBulk(false);
  $("bulk-send-filter").onclick = () => sendBulk(true);
  $("bulk-card").classList.toggle("hidden", !can("operator"));
  const ev = () => loadEvents().catch((e) => console.warn(e));
  $("ev-type").onchange = () => { fleet.evPage = 1; ev(); };
  $("ev-mine").onchange = () => { fleet.evPage = 1; ev(); };
  $("ev-prev").onclick = () => { if (fleet.evPage > 1) { fleet.evPage--; ev(); } };
  $("ev-next").onclick = () => { fleet.evPage++; ev(); };
  ev();
  return [setInterval(() => loadProgress().catch((e) => console.warn(e)), 1000), setInterval(ev, 5000)];
}
