// The dashboard: live numbers from GET /api/events (server-sent events), the broker's
// status from GET /api/status. The status line (role="status") is spoken only when the
// numbers it names change, not at every snapshot.
import { api, el, when } from "./api.js";

const $ = (id) => document.getElementById(id);
const live = $("live");
let spoken = "";

function set(id, value) {
  $(id).textContent = String(value);
}

function rows(body, items, empty, columns) {
  body.replaceChildren();
  if (items.length === 0) {
    const cell = el("td", empty, { colspan: String(columns) });
    body.append(el("tr"));
    body.lastChild.append(cell);
    return;
  }
  for (const cells of items) {
    const row = el("tr");
    for (const cell of cells) row.append(cell instanceof Node ? cell : el("td", cell));
    body.append(row);
  }
}

function chart(perMinute) {
  const box = $("m-chart");
  const peak = Math.max(1, ...perMinute);
  box.replaceChildren();
  for (const n of perMinute) {
    const bar = el("span", undefined, { class: "bar" });
    bar.style.height = `${Math.round((n / peak) * 100)}%`;
    box.append(bar);
  }
}

function messages(m) {
  set("m-hour", m.last_hour);
  set("m-five", m.per_minute.slice(-5).reduce((a, b) => a + b, 0));
  set("m-peak", Math.max(0, ...m.per_minute));
  chart(m.per_minute);
  for (const code of ["AA", "AE", "AR"]) set(`ack-${code}`, m.acks[code] ?? 0);
  set("m-errors", m.errors);
  set("m-warnings", m.warnings);
  set("m-total", m.total);
  rows($("e-rows"), m.recent_errors.map((e) => {
    const cell = el("td");
    cell.append(el("a", e.id, { href: `/messages?id=${encodeURIComponent(e.id)}` }));
    return [cell, when(e.received_at), e.type, e.ack_code, e.code, e.location || "–"];
  }), "No message on the error list.", 6);
}

// A count the server left out: a dash to the eye, words to a screen reader.
function notCounted() {
  const cell = el("td", undefined, { class: "num" });
  cell.append(el("span", "—", { "aria-hidden": "true" }), el("span", "not counted", { class: "sr-only" }));
  return cell;
}

function count(n) {
  return n === null ? notCounted() : el("td", n, { class: "num" });
}

function leftOut(limit) {
  if (limit === null) {
    return "— Not counted: this Redis server (before 6.2) cannot count the ended entries " +
      "by station. The entries column is exact.";
  }
  return `— Not counted: the station's entries and the ended ones both number more than ` +
    `${limit.toLocaleString()}, and counting them would hold Redis too long. ` +
    "Its entries column is exact.";
}

function stations(t) {
  const asof = new Date(t.counted_at * 1000).toLocaleTimeString();
  set("w-asof", `(counted at ${asof}, ${Math.round(t.age_seconds)} s before these numbers)`);
  rows($("w-stations"), t.rows.map((r) =>
    [el("th", r.station, { scope: "row" }), count(r.open), count(r.ended), count(r.entries)]),
  "No station yet.", 4);
  set("w-all-open", t.all.open);
  set("w-all-ended", t.all.ended);
  set("w-all-entries", t.all.entries);
  const note = $("w-left-out");
  note.hidden = !t.rows.some((r) => r.ended === null);
  note.textContent = note.hidden ? "" : leftOut(t.limit);
}

function worklist(w) {
  set("w-total", w.total);
  set("w-open", w.by_status.open);
  set("w-ended", w.by_status.ended);
  stations(w.stations);
}

function snapshot(data) {
  messages(data.messages);
  worklist(data.worklist);
  const text = `Live. Messages in the last hour: ${data.messages.last_hour}; ` +
    `on the error list: ${data.messages.errors}; worklist entries: ${data.worklist.total}.`;
  if (text !== spoken) {
    live.textContent = text;
    spoken = text;
  }
}

async function status() {
  const s = await api("/api/status");
  set("s-version", s.version);
  set("s-ae", s.ae_title);
  set("s-mapping", s.mapping_version ?? "none");
  rows($("s-listeners"), Object.entries(s.listeners).map(([name, port]) =>
    [el("th", name, { scope: "row" }), el("td", port ?? "down", { class: "num" })]),
  "No listener.", 2);
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("snapshot", (event) => snapshot(JSON.parse(event.data)));
  source.addEventListener("ended", () => {
    source.close();
    window.location.assign("/login");
  });
  source.addEventListener("error", async () => {
    if (source.readyState !== EventSource.CLOSED) {
      live.textContent = "Connection lost; reconnecting…";
      return;
    }
    live.textContent = "The live numbers are not available now; retrying in 10 seconds.";
    await api("/api/session");  // a session that is over goes to the login page
    setTimeout(connect, 10000);
  });
}

connect();
status().catch(() => {});
setInterval(() => status().catch(() => {}), 30000);
