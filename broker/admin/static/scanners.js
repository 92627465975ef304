// The scanner profiles as a table, and "explain": why a scanner does (not) see an entry,
// as ``mwl-broker explain`` says it. The accession travels in the POST body; an entry id
// may come in the fragment (#entry=<id>, from the worklist page).
import { api, el } from "./api.js";

const $ = (id) => document.getElementById(id);
const OTHER = "";
const list = (values, empty) => (values && values.length ? values.join(", ") : empty);

function sees(p) {
  const stations = p.stations === null ? "every station" : `stations ${list(p.stations, "none")}`;
  const extra = [p.unassigned ? "unassigned entries" : "", p.modality ? `modality ${p.modality}` : ""];
  return [stations, ...extra].filter(Boolean).join("; ");
}

function profileRow(p) {
  const tr = el("tr");
  const limits = `${p.max_answers} answers, then ${p.over_limit}`;
  const charset = `${p.character_set} (otherwise: ${p.unrepresentable})`;
  tr.append(el("th", p.ae_title, { scope: "row" }), el("td", list(p.addresses, "any")),
    el("td", sees(p)), el("td", list(p.hidden_statuses, "none")), el("td", p.date_window ?? "any date"),
    el("td", limits), el("td", charset), el("td", p.dicomweb_tokens));
  return tr;
}

async function loadProfiles() {
  const profiles = await api("/api/scanners");
  $("profile-rows").replaceChildren(...profiles.map(profileRow));
  const named = profiles.filter((p) => p.ae_title !== "*").map((p) => el("option", p.ae_title));
  const choices = [...named];
  if (profiles.some((p) => p.ae_title === "*") || named.length === 0) {
    choices.push(el("option", "another AE title…", { value: OTHER }));
  }
  $("x-ae").replaceChildren(...choices);
  $("x-other-p").hidden = $("x-ae").value !== OTHER;
}

$("x-ae").addEventListener("change", () => {
  $("x-other-p").hidden = $("x-ae").value !== OTHER;
});

const optional = (id) => $(id).value.trim() || null;

function scheduled(date, time) {
  const day = date.length === 8 ? `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6)}` : date;
  return `${day} ${time.length >= 4 ? `${time.slice(0, 2)}:${time.slice(2, 4)}` : time}`.trim();
}

function entryRow(e) {
  const tr = el("tr");
  tr.append(el("td", e.accession), el("td", e.sps_id, { class: "nowrap" }),
    el("td", e.station_aet || "–"), el("td", e.modality),
    el("td", scheduled(e.scheduled_date, e.scheduled_time), { class: "nowrap" }),
    el("td", e.status), el("td", e.seen ? "yes" : "no"), el("td", e.reasons.join("; ") || "–"));
  return tr;
}

function verdict(answer) {
  if (!answer.accepted) return `${answer.ae_title} could not connect: ${answer.refusal}`;
  if (answer.entries.length === 0) return `No such entry: ${answer.ae_title} sees nothing of it.`;
  const seen = `${answer.ae_title} sees ${answer.seen} of ${answer.entries.length}`;
  const reasons = answer.entries.find((e) => !e.seen)?.reasons ?? [];
  if (reasons.length === 0) return `${seen}.`;
  const more = reasons.length - 1;
  const others = more ? ` (and ${more} more reason${more === 1 ? "" : "s"}, below)` : "";
  return `${seen}. Not seen: ${reasons[0]}${others}.`;
}

$("explain").addEventListener("submit", async (event) => {
  event.preventDefault();
  const ae = $("x-ae").value === OTHER ? $("x-other").value.trim() : $("x-ae").value;
  const body = { ae_title: ae, address: optional("x-address"), accession: optional("x-acc"),
    entry_id: optional("x-entry"), date: optional("x-date"), station: optional("x-station") };
  let answer;
  try {
    answer = await api("/api/scanners/explain", { method: "POST", body });
  } catch {
    $("explained").hidden = true; // the answer shown was to another request
    return;
  }
  $("explained").hidden = false;
  $("verdict").textContent = verdict(answer);
  $("explained-rows").replaceChildren(...answer.entries.map(entryRow));
  $("explain-text").textContent = answer.text;
  $("h-answer").focus();
});

const fragment = /^#entry=([0-9a-f]{1,64})$/.exec(window.location.hash);
if (fragment) $("x-entry").value = fragment[1];
loadProfiles().catch(() => {});
