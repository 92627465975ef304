// The mapping editor: the active version's files, a textarea with a line-number gutter
// that scrolls with it, Tab that indents (Esc then Tab, or Shift+Tab, leaves), and
// validation as you type (debounced) with each error on its line and in a list whose
// items move the caret to it.
import { api, el } from "./api.js";
import { changes, hasChanges, say, state } from "./map_state.js";

const $ = (id) => document.getElementById(id);
const text = $("editor-text");
const gutter = $("gutter");
const hint = $("editor-hint").textContent;
const CHECK_DELAY_MS = 400;
let problems = [];
let checkTimer = null;
let checkRound = 0;
let escaped = false;

function fileButton(name) {
  const isNew = !(name in state.files);
  const edited = !isNew && state.edited[name] !== state.files[name];
  const bad = problems.some((p) => p.file === name);
  const marks = [isNew ? "new" : "", edited ? "edited" : "", bad ? "errors" : ""]
    .filter(Boolean).join(", ");
  const b = el("button", name, { type: "button", class: "file" });
  if (marks) b.append(el("span", ` (${marks})`, { class: "marks" }));
  if (name === state.current) b.setAttribute("aria-current", "true");
  b.addEventListener("click", () => open(name));
  return b;
}

// A file deleted in the edit: its name struck through, and a button that brings it back.
function deletedItem(name, item) {
  item.className = "deleted";
  item.append(el("del", name), el("span", "deleted when you publish ", { class: "marks" }));
  const undo = el("button", "Undo delete", { type: "button", class: "plain",
    "aria-label": `Undo delete of ${name}` });
  undo.addEventListener("click", () => {
    state.edited[name] = state.files[name];
    open(name);
    edited();
    $("editor-text").focus();
  });
  item.append(undo);
}

export function renderFiles() {
  const names = [...new Set([...Object.keys(state.files), ...Object.keys(state.edited)])].sort();
  $("file-list").replaceChildren(...names.map((name) => {
    const item = el("li");
    if (name in state.edited) item.append(fileButton(name));
    else deletedItem(name, item);
    return item;
  }));
  const body = changes();
  const pending = [...Object.keys(body.add ?? {}).sort().map((n) => `new ${n}`),
    ...(body.delete ?? []).map((n) => `deleted ${n}`)];
  say("pending", pending.length ? `Not published yet: ${pending.join("; ")}.` : "");
}

function renderGutter() {
  const count = text.value.split("\n").length;
  const bad = new Map();
  for (const p of problems) {
    if (p.file === state.current && p.line) bad.set(p.line, p.message);
  }
  const rows = [];
  for (let line = 1; line <= count; line += 1) {
    const row = el("div", line, bad.has(line) ? { class: "bad", title: bad.get(line) } : {});
    rows.push(row);
  }
  gutter.replaceChildren(...rows);
  gutter.scrollTop = text.scrollTop;
}

export function open(name) {
  state.current = name;
  text.value = state.edited[name] ?? "";
  const isNew = state.canEdit && !(name in state.files);
  $("editor-label").textContent = `${name}${state.canEdit ? "" : " (read-only)"}${
    isNew ? " (new file)" : ""}`;
  text.scrollTop = 0;
  renderFiles();
  renderGutter();
}

function where(p) {
  if (!p.file) return "The set";
  return p.line ? `${p.file}, line ${p.line}${p.column ? `, column ${p.column}` : ""}` : p.file;
}

// The caret to line (and column) of the problem's file, the line scrolled into view.
function goTo(p) {
  if (p.file && p.file !== state.current && p.file in state.edited) open(p.file);
  const lines = text.value.split("\n");
  const line = Math.min(Math.max(p.line ?? 1, 1), lines.length);
  let offset = 0;
  for (let i = 0; i < line - 1; i += 1) offset += lines[i].length + 1;
  offset += Math.min(Math.max((p.column ?? 1) - 1, 0), lines[line - 1].length);
  text.focus();
  text.setSelectionRange(offset, offset);
  const height = parseFloat(getComputedStyle(text).lineHeight) || 20;
  text.scrollTop = Math.max(0, (line - 1) * height - text.clientHeight / 3);
  gutter.scrollTop = text.scrollTop;
}

function renderProblems() {
  $("problems").replaceChildren(...problems.map((p) => {
    const item = el("li");
    const b = el("button", `${where(p)}: ${p.message}`, { type: "button", class: "link" });
    b.addEventListener("click", () => goTo(p));
    item.append(b);
    return item;
  }));
  renderFiles();
  renderGutter();
}

function checkSummary() {
  if (!problems.length) return "The edited files validate.";
  const first = problems[0];
  const count = problems.length === 1 ? "1 error" : `${problems.length} errors`;
  return `${count}. ${where(first)}: ${first.message}`;
}

export async function check() {
  clearTimeout(checkTimer);
  const round = ++checkRound;
  const body = changes();
  if (!Object.keys(body).length) {
    problems = [];
    renderProblems();
    say("check-status", `No changes from version ${state.version?.number ?? "–"}.`);
    return true;
  }
  let answer;
  try {
    answer = await api("/api/mappings/validate", { method: "POST", body });
  } catch {
    return false;
  }
  if (round !== checkRound) return false; // a newer edit is being checked
  problems = answer.problems;
  renderProblems();
  say("check-status", checkSummary());
  return answer.valid;
}

// The editor's text changed (or a file was added or deleted): checked after a pause.
export function edited() {
  if (state.current in state.edited) state.edited[state.current] = text.value;
  renderGutter();
  clearTimeout(checkTimer);
  checkTimer = setTimeout(() => check().catch(() => {}), CHECK_DELAY_MS);
}

function indent() {
  // execCommand keeps the browser's undo history; setRangeText where it is gone.
  if (!document.execCommand("insertText", false, "  ")) {
    text.setRangeText("  ", text.selectionStart, text.selectionEnd, "end");
    edited();
  }
}

text.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    escaped = true;
    say("editor-hint", "Tab now leaves the editor.");
    return;
  }
  if (event.key === "Tab" && !event.shiftKey && !escaped && state.canEdit) {
    event.preventDefault();
    indent();
  }
  if (event.key !== "Shift" && escaped) {
    escaped = false;
    say("editor-hint", hint);
  }
});
text.addEventListener("blur", () => {
  escaped = false;
  say("editor-hint", hint);
});
text.addEventListener("input", edited);
window.addEventListener("beforeunload", (event) => {
  if (!hasChanges()) return;
  event.preventDefault(); // edits not published: the browser asks before leaving
  event.returnValue = "";
});
text.addEventListener("scroll", () => { gutter.scrollTop = text.scrollTop; });

// Loads the active version into the editor, dropping the edits.
export async function loadActive() {
  let info;
  try {
    info = await api("/api/mappings");
  } catch {
    say("map-status", "No mapping version is published yet.");
    return;
  }
  const found = await api(`/api/mappings/versions/${info.number}`);
  state.version = found.version;
  state.files = found.files;
  state.edited = { ...found.files };
  $("loaded-version").textContent = `(version ${info.number}, by ${info.author})`;
  const keep = state.current in state.files ? state.current : Object.keys(state.files).sort()[0];
  problems = [];
  renderProblems();
  open(keep);
  say("check-status", `No changes from version ${info.number}.`);
}
