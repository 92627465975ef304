// The worklist browser: a search (its criteria in a POST body, never the URL), the
// results sorted by the scheduled date and time and paged with "More", a CSV export of
// the same search, and the purge's dry run. An entry opens by its id in the fragment
// (#entry=<id>: no patient data), in entry.js.
import { api, el } from "./api.js";
import { openEntry } from "./entry.js";

const $ = (id) => document.getElementById(id);
const PAGE = 100;
const SPS = "ScheduledProcedureStepSequence.";
let rows = [];
let offset = 0;
let criteria = {};
let fuzzy = false;
let ascending = true;

const isoDate = (value) => value.replaceAll("-", "");

function range(from, to) {
  if (!from && !to) return "";
  if (from && from === to) return isoDate(from);
  return `${isoDate(from)}-${isoDate(to)}`;
}

function readForm() {
  const fields = {
    PatientName: $("q-name").value.trim(),
    PatientID: $("q-pid").value.trim(),
    AccessionNumber: $("q-acc").value.trim(),
    [`${SPS}ScheduledStationAETitle`]: $("q-station").value.trim(),
    [`${SPS}Modality`]: $("q-modality").value.trim().toUpperCase(),
    [`${SPS}ScheduledProcedureStepStartDate`]: range($("q-from").value, $("q-to").value),
    [`${SPS}ScheduledProcedureStepStatus`]: $("q-status").value,
  };
  return {
    criteria: Object.fromEntries(Object.entries(fields).filter(([, v]) => v)),
    fuzzy: $("q-fuzzy").checked,
  };
}

const shown = (d) => (d.length === 8 ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d);
const clock = (t) => (t.length >= 4 ? `${t.slice(0, 2)}:${t.slice(2, 4)}` : t);
const when = (r) => `${r.scheduled_date}${r.scheduled_time.padEnd(6, "0")}`;

function row(entry) {
  const tr = el("tr");
  if (window.location.hash === `#entry=${entry.entry_id}`) {
    tr.className = "open";
    tr.setAttribute("aria-current", "true");
  }
  const text = `${shown(entry.scheduled_date)} ${clock(entry.scheduled_time)}`.trim() || "–";
  const name = `${text}: open the entry of accession ${entry.accession || "(none)"}`;
  const link = el("a", text, { href: `#entry=${entry.entry_id}`, "aria-label": name });
  const first = el("td");
  first.append(link);
  tr.append(first, el("td", entry.patient_name.replaceAll("^", " ").trim()), el("td", entry.patient_id),
    el("td", entry.accession), el("td", entry.station_aet || "–"), el("td", entry.modality),
    el("td", entry.procedure_description), el("td", entry.status));
  return tr;
}

function render(more) {
  const sorted = [...rows].sort((a, b) => when(a).localeCompare(when(b)) * (ascending ? 1 : -1));
  $("rows").replaceChildren(...sorted.map(row));
  $("more").hidden = !more;
  const count = `${rows.length} ${rows.length === 1 ? "entry" : "entries"}`;
  $("results-status").textContent = rows.length === 0 ? "No entry matches."
    : `${count} shown${more ? "; more match (More entries)" : ""}.`;
}

async function fetchPage(limit = PAGE) {
  const body = { criteria, fuzzy, offset, limit };
  const page = await api("/api/worklist/search", { method: "POST", body });
  rows = rows.concat(page.entries);
  offset += page.entries.length;
  render(page.more);
}

// An entry changed by hand: the rows shown so far, read again.
document.addEventListener("entry-changed", () => {
  if (offset === 0) return;
  const limit = Math.min(500, Math.max(offset, PAGE));
  rows = [];
  offset = 0;
  fetchPage(limit).catch(() => {});
});

$("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  ({ criteria, fuzzy } = readForm());
  rows = [];
  offset = 0;
  $("results-status").textContent = "Searching…";
  await fetchPage().catch(() => { $("results-status").textContent = "The search failed."; });
});

$("more").addEventListener("click", () => fetchPage().catch(() => {}));

$("sort").addEventListener("click", () => {
  ascending = !ascending;
  $("sort-col").setAttribute("aria-sort", ascending ? "ascending" : "descending");
  $("sort-arrow").textContent = ascending ? "▲" : "▼";
  render(!$("more").hidden);
});

$("export").addEventListener("click", async () => {
  let answer;
  try {  // the form as it is now (the page of results shown keeps its own search)
    answer = await api("/api/worklist/export", { method: "POST", body: readForm(), raw: true });
  } catch {
    return;
  }
  const url = URL.createObjectURL(await answer.blob());
  const link = el("a", undefined, { href: url, download: "worklist.csv" });
  document.body.append(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(url);
  $("results-status").textContent = "The search's entries were exported as worklist.csv.";
});

function purgeRow(item) {
  const tr = el("tr");
  const cell = el("td");
  cell.append(el("a", item.entry_id, { href: `#entry=${item.entry_id}` }));
  tr.append(cell, el("td", item.accession), el("td", shown(item.start_date)),
    el("td", item.status), el("td", item.reason));
  return tr;
}

$("purge")?.addEventListener("click", async () => {
  let report;
  try {
    report = await api("/api/worklist/purge", { method: "POST", body: { dry_run: true } });
  } catch {
    return;
  }
  const reasons = Object.entries(report.by_reason).map(([k, v]) => `${k}: ${v}`).join(", ");
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  $("purge-status").textContent = `A purge now would remove `
    + `${plural(report.entries, "entry", "entries")} and `
    + `${plural(report.mpps, "MPPS record", "MPPS records")}${reasons ? ` (${reasons})` : ""}.`
    + (report.items.length < report.entries ? ` The first ${report.items.length} are listed.` : "");
  $("purge-rows").replaceChildren(...report.items.map(purgeRow));
  $("purge-table").hidden = report.items.length === 0;
});

function fromFragment() {
  const found = /^#entry=([0-9a-f]{1,64})$/.exec(window.location.hash);
  if (found) openEntry(found[1]).catch(() => {});
}

$("results-status").textContent = "Search to list the entries.";  // ready
window.addEventListener("hashchange", () => {
  fromFragment();
  if (rows.length) render(!$("more").hidden);
});
fromFragment();
