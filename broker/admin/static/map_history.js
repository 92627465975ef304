// The mapping history: the versions newest first (a page at a time), a version's files,
// the diff of two versions, the export zip, and (editor) a rollback with a comment.
import { ApiError, api, el, when } from "./api.js";
import { say, showDiff } from "./map_state.js";

const $ = (id) => document.getElementById(id);
const PAGE = 20;
let versions = [];
let active = null;
let nextBefore = null;

function out(title, ...nodes) {
  const heading = el("h3", title, { tabindex: "-1" });
  $("history-out").replaceChildren(heading, ...nodes);
  heading.focus(); // a screen reader reads the heading of what was opened
}

async function view(number) {
  const found = await api(`/api/mappings/versions/${number}`);
  const nodes = [];
  for (const name of Object.keys(found.files).sort()) {
    nodes.push(el("h4", name));
    nodes.push(el("pre", found.files[name], { class: "code", tabindex: "0", "aria-label": name }));
  }
  const v = found.version;
  out(`Version ${v.number}, by ${v.author}: ${v.comment || "no comment"}`, ...nodes);
}

function row(v) {
  const tr = el("tr");
  const actions = el("td");
  const b = el("button", "View", { type: "button", "aria-label": `View version ${v.number}` });
  b.addEventListener("click", () => view(v.number).catch(() => {}));
  const zip = el("a", "Export zip", { href: `/api/mappings/versions/${v.number}/export`,
    download: "", "aria-label": `Export version ${v.number} as a zip` });
  actions.append(b, " ", zip);
  const label = `v${v.number}${v.number === active ? " (active)" : ""}`;
  tr.append(el("th", label, { scope: "row" }), el("td", when(v.created)), el("td", v.author),
    el("td", v.comment || "–"), el("td", v.files.join(", ")), actions);
  return tr;
}

function fill(id, numbers, chosen) {
  const select = $(id);
  if (!select) return;
  select.replaceChildren(...numbers.map((n) => {
    const option = el("option", `v${n}${n === active ? " (active)" : ""}`, { value: String(n) });
    option.selected = n === chosen;
    return option;
  }));
}

function render() {
  $("history-rows").replaceChildren(...versions.map(row));
  $("history-more").hidden = nextBefore === null;
  const numbers = versions.map((v) => v.number);
  fill("compare-from", numbers, numbers[1] ?? numbers[0]);
  fill("compare-to", numbers, numbers[0]);
  const earlier = numbers.filter((n) => n !== active);
  fill("rollback-to", earlier, earlier[0]);
  const form = $("rollback-form");
  if (form) form.hidden = !earlier.length;
}

export async function loadHistory(more = false) {
  const before = more && nextBefore !== null ? `&before=${nextBefore}` : "";
  const page = await api(`/api/mappings/history?limit=${PAGE}${before}`);
  active = page.active;
  versions = more ? [...versions, ...page.versions] : page.versions;
  nextBefore = page.next_before;
  render();
}

async function compare(event) {
  event.preventDefault();
  const from = Number($("compare-from").value);
  const to = Number($("compare-to").value);
  if (!from || !to) return;
  const found = await api("/api/mappings/diff", { method: "POST", body: { from, to } });
  const pre = el("pre", undefined, { class: "diff", tabindex: "0",
    "aria-label": `Unified diff of version ${from} and version ${to}` });
  if (found.text) showDiff(pre, found.text);
  else pre.textContent = "The two versions have the same files.";
  out(`From ${found.old} to ${found.new}`, pre);
}

async function rollback(event, reload) {
  event.preventDefault();
  const number = Number($("rollback-to").value);
  if (!number) {
    say("history-status", "There is no other version to roll back to.");
    return;
  }
  const comment = $("rollback-comment").value;
  let answer;
  try {
    answer = await api(`/api/mappings/versions/${number}/rollback`,
      { method: "POST", body: { comment, expect: active } });
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) await loadHistory();
    say("history-status", `Not rolled back: ${error.message}`);
    return;
  }
  event.target.reset();
  say("history-status", answer.created
    ? `Version ${number}'s files are published again as version ${answer.version.number}.`
    : `Version ${answer.version.number} already has these files; nothing changed.`);
  await reload();
}

// reload(): the editor and the history again, after a rollback.
export function initHistory(reload) {
  $("history-more").addEventListener("click", () => loadHistory(true).catch(() => {}));
  $("compare-form").addEventListener("submit", (event) => compare(event).catch(() => {}));
  $("rollback-form")?.addEventListener("submit",
    (event) => rollback(event, reload).catch(() => {}));
}
