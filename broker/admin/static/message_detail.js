// One message of the log: what it was and what became of it (metadata, the error and
// warnings with their ERR locations, the worklist entries it wrote), its text and the
// ACK side by side, and an editor's reprocess and dismiss (each confirmed, announced).
import { api, el, when } from "./api.js";

const $ = (id) => document.getElementById(id);
// the worklist page opens an entry named in its URL fragment (an opaque id)
export const entryLink = (id) => `/worklist#entry=${encodeURIComponent(id)}`;
const messageLink = (id) => `/messages?id=${encodeURIComponent(id)}`;
let current = null;
let hooks = null;

function meta(m) {
  const items = [
    ["Received", `${when(m.received_at)} (${m.received})`],
    ["From", m.peer],
    ["Sender (MSH-3 / MSH-4)", [m.sending_application, m.sending_facility].filter(Boolean).join(" / ") || "–"],
    ["Type", m.message_type || "–"],
    ["Control ID (MSH-10)", m.control_id || "–"],
    ["HL7 version, character set", `${m.version || "–"}, ${m.charset || "not decoded"}`],
    ["Mapping", m.mapping_name ? `${m.mapping_name} ${m.mapping_version}` : "none recorded"],
    ["Outcome, ACK", `${m.outcome}, ${m.ack_code || "no ACK"}`],
    ["Error list", m.on_error_list ? "on the error list" : m.resolution || "not on it"],
    ["Entries created, removed", `${m.created}, ${m.removed}`],
  ];
  const list = $("meta");
  list.replaceChildren();
  for (const [term, value] of items) list.append(el("dt", term), el("dd", value));
  if (m.reprocess_of) {
    const dd = el("dd");
    dd.append(el("a", `message ${m.reprocess_of}`, { href: messageLink(m.reprocess_of) }));
    list.append(el("dt", "Reprocess of"), dd);
  }
}

function table(caption, rows) {
  const t = el("table", undefined, { class: "problems" });
  t.append(el("caption", caption));
  const head = el("tr");
  for (const name of ["Code", "ERR location", "Text"]) head.append(el("th", name, { scope: "col" }));
  t.append(el("thead"));
  t.lastChild.append(head);
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr");
    tr.append(el("td", r.code), el("td", r.location || "–"), el("td", r.text || "–"));
    body.append(tr);
  }
  t.append(body);
  return t;
}

function problems(m) {
  const box = $("problems");
  box.replaceChildren();
  if (m.error) box.append(table(`Error, answered ${m.error.ack_code}`, [m.error]));
  if (m.warning_list.length) box.append(table("Warnings, answered with AA", m.warning_list));
}

function entries(m) {
  const list = $("entries");
  list.replaceChildren();
  if (m.entries.length === 0) list.append(el("li", "None."));
  for (const entry of m.entries) {
    const li = el("li");
    li.append(el("a", `Entry ${entry.id}`, { href: entryLink(entry.id) }),
      ` ${entry.on_worklist ? `(${entry.status})` : "(no longer on the worklist)"}`);
    list.append(li);
  }
}

function texts(m) {
  $("raw").textContent = m.text.join("\n");
  const kept = m.kept_bytes < m.raw_size ? `; the log kept its first ${m.kept_bytes}` : "";
  $("raw-size").textContent = `${m.raw_size} bytes as received${kept}.`;
  $("download").href = `/api/messages/${encodeURIComponent(m.id)}/raw`;
  $("download").textContent = `Download the bytes (message-${m.id}.hl7)`;
  $("ack").textContent = m.ack.length ? m.ack.join("\n") : "No ACK was sent.";
  $("app-ack").textContent = m.application_ack.join("\n");
  $("app-ack-box").hidden = m.application_ack.length === 0;
}

function actions(m) {
  if (!$("actions")) return;  // a viewer's page has none
  $("reprocess").setAttribute("aria-label", `Reprocess message ${m.id}`);
  $("dismiss").setAttribute("aria-label", `Dismiss message ${m.id}`);
  $("dismiss").hidden = !m.on_error_list;
}

// Shows message ``id``; false (the API's error already shown) when it cannot be read.
export async function showMessage(id, { say, reopen, focus = true }) {
  let m;
  try {
    m = await api(`/api/messages/${encodeURIComponent(id)}`);
  } catch {
    return false;
  }
  current = m;
  hooks = { say, reopen };
  $("h-message").textContent = `Message ${m.id}`;
  meta(m);
  problems(m);
  entries(m);
  texts(m);
  actions(m);
  $("detail").hidden = false;
  if (focus) $("h-message").focus();
  return true;
}

function reprocessed(done) {
  const as = done.new_id ? ` as message ${done.new_id}` : "";
  const state = done.resolved ? " It left the error list."
    : done.on_error_list ? " It stays on the error list." : "";
  const errors = done.errors.length ? ` ${done.errors.join("; ")}.` : "";
  return `Message ${done.id} reprocessed${as}: ${done.ack_code}` +
    `${done.outcome ? ` (${done.outcome})` : ""}.${state}${errors}`;
}

$("reprocess")?.addEventListener("click", async () => {
  const m = current;
  if (!m || !window.confirm(`Reprocess message ${m.id} through the active mapping?`)) return;
  let done;
  try {
    done = await api(`/api/messages/${encodeURIComponent(m.id)}/reprocess`, { method: "POST" });
  } catch {
    return;
  }
  const { say, reopen } = hooks;
  await reopen(done.new_id ?? m.id).catch(() => {});
  say(reprocessed(done));
});

$("dismiss")?.addEventListener("click", async () => {
  const m = current;
  if (!m || !window.confirm(`Dismiss message ${m.id}? It leaves the error list without ` +
    "being reprocessed.")) return;
  try {
    await api(`/api/messages/${encodeURIComponent(m.id)}/dismiss`, { method: "POST" });
  } catch {
    return;
  }
  const { say, reopen } = hooks;
  await reopen(m.id).catch(() => {});
  say(`Message ${m.id} dismissed: it left the error list.`);
});
