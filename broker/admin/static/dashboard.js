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

function worklist(w) {
  set("w-total", w.total);
  set("w-open", w.by_status.open);
  set("w-ended", w.by_status.ended);
  const stations = Object.entries(w.by_station).map(([ae, n]) => {
    const name = el("th", ae, { scope: "row" });
    return [name, el("td", n, { class: "num" })];
  });
  rows($("w-stations"), stations, "No station yet.", 2);
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
