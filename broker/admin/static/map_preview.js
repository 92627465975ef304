// The preview panel: a pasted message, or one picked from the message log, mapped with
// the edited files (nothing is stored): each change's entries with the per-attribute
// trace, the warnings, or the refusal with its ERR location.
import { api, el, when } from "./api.js";
import { changes, say } from "./map_state.js";

const $ = (id) => document.getElementById(id);
const PICKER_ROWS = 15;

function traceTable(rows, caption) {
  const table = el("table", undefined, { class: "trace" });
  table.append(el("caption", caption));
  const head = el("tr");
  for (const name of ["Attribute", "Source", "Value", "Notes"]) {
    head.append(el("th", name, { scope: "col" }));
  }
  table.append(el("thead"));
  table.tHead.append(head);
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr", undefined, row.error ? { class: "bad" } : {});
    const notes = [...row.notes];
    if (row.error && !notes.some((note) => note.includes(row.error))) notes.push(`error: ${row.error}`);
    tr.append(el("th", row.attribute, { scope: "row" }), el("td", row.source),
      el("td", row.value.join(" \\ ") || "–"), el("td", notes.join("; ")));
    body.append(tr);
  }
  table.append(body);
  return table;
}

function refusal(r) {
  const at = r.location ? ` at ${r.location}` : "";
  return el("p", `Refused: ${r.ack_code}, ERR code ${r.err_code}${at}: ${r.text}`,
    { class: "refusal" });
}

function changeBlock(change) {
  const box = el("div", undefined, { class: "change" });
  box.append(el("h4", `${change.action} ${change.order_key} → ${change.status}`));
  change.entries.forEach((entry, i) => {
    box.append(el("p", `Entry ${i + 1}: ${entry.stations.description}`));
    box.append(traceTable(entry.trace, `Entry ${i + 1}: where each attribute came from`));
  });
  return box;
}

function messageBlock(m, n) {
  const box = el("article", undefined, { class: "preview", "aria-labelledby": `pm-${n}` });
  box.append(el("h3", `${m.message_type} ${m.control_id}: ${m.outcome}`, { id: `pm-${n}` }));
  box.append(el("p", `Mapping ${m.mapping_name} (${m.mapping_version}); charset ${m.charset ?? "not decoded"}.`,
    { class: "hint" }));
  if (m.refusal) box.append(refusal(m.refusal));
  if (m.failed_trace.length) box.append(traceTable(m.failed_trace, "Trace up to the refusal"));
  if (m.warnings.length) {
    box.append(el("h4", "Warnings"));
    const list = el("ul");
    for (const w of m.warnings) list.append(el("li", `${w.location} (${w.attribute}): ${w.text}`));
    box.append(list);
  }
  for (const change of m.changes) box.append(changeBlock(change));
  m.patients.forEach((p, i) => {
    box.append(el("h4", `Patient ${i + 1}: ${m.patient_action ?? "update"}`));
    box.append(traceTable(p.trace, `Patient ${i + 1}: where each attribute came from`));
  });
  return box;
}

async function runPreview(event) {
  event.preventDefault();
  const message = $("preview-text").value;
  if (!message.trim()) {
    say("preview-status", "Paste a message, or pick one from the message log, first.");
    return;
  }
  say("preview-status", "Mapping…");
  let answer;
  try {
    answer = await api("/api/mappings/preview",
      { method: "POST", body: { message, ...changes() } });
  } catch (error) {
    say("preview-status", `No preview: ${error.message}`);
    return;
  }
  $("preview-out").replaceChildren(...answer.messages.map(messageBlock));
  const count = answer.messages.length === 1 ? "1 message" : `${answer.messages.length} messages`;
  say("preview-status", `Preview with ${answer.mappings}: ${count}, ${answer.refused} refused.`);
}

async function use(summary) {
  const found = await api(`/api/messages/${encodeURIComponent(summary.id)}`);
  $("preview-text").value = found.text.join("\n");
  togglePicker(false);
  $("preview-text").focus();
  say("preview-status", `Message ${summary.control_id || summary.id} is in the box; press Preview.`);
}

function pickerRow(summary) {
  const row = el("tr");
  const cell = el("td");
  const b = el("button", "Use", { type: "button",
    "aria-label": `Use message ${summary.control_id || summary.id}` });
  b.addEventListener("click", () => use(summary).catch(() => {}));
  cell.append(b);
  row.append(el("td", when(summary.received_at)), el("td", summary.message_type),
    el("th", summary.control_id || "–", { scope: "row" }), el("td", summary.outcome), cell);
  return row;
}

async function togglePicker(show) {
  $("picker").hidden = !show;
  $("pick-open").setAttribute("aria-expanded", String(show));
  if (!show) return;
  const page = await api(`/api/messages?limit=${PICKER_ROWS}`);
  $("picker-rows").replaceChildren(...page.items.map(pickerRow));
  if (!page.items.length) say("preview-status", "The message log is empty.");
}

export function initPreview() {
  $("preview-form").addEventListener("submit", (event) => runPreview(event).catch(() => {}));
  $("pick-open").addEventListener("click",
    () => togglePicker($("picker").hidden).catch(() => {}));
}
