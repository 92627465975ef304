// The message log: filters (in the page's query string: they hold no patient data), a
// page of messages newest first with "Older messages", and the message opened from a
// row (its id in the query string too, so the dashboard's "recent errors" link here).
import { api, el, when } from "./api.js";
import { showMessage } from "./message_detail.js";

const $ = (id) => document.getElementById(id);
const form = $("filters");
const say = (text) => { $("messages-status").textContent = text; };
const TEXT = ["sender", "facility", "type", "control_id", "outcome", "since", "until", "limit"];
const FLAGS = ["errors_only", "warnings_only"];
const TIMES = ["since", "until"];
const DEFAULT_LIMIT = "50";
let next = null;
let openId = null;

// the filters in the form, as the page's query string (times as the browser's local time)
function filters() {
  const params = new URLSearchParams();
  for (const name of TEXT) {
    const value = form.elements[name].value.trim();
    if (value && !(name === "limit" && value === DEFAULT_LIMIT)) params.set(name, value);
  }
  for (const name of FLAGS) if (form.elements[name].checked) params.set(name, "true");
  return params;
}

// the same for the API: times in seconds since the epoch (the API's own reading of a
// time without an offset is the site's time, which the browser may not be in)
function query() {
  const params = filters();
  for (const name of TIMES) {
    const value = params.get(name);
    const seconds = value ? new Date(value).getTime() / 1000 : NaN;
    if (Number.isFinite(seconds)) params.set(name, String(seconds));
  }
  return params;
}

function fill(params) {
  for (const name of TEXT) form.elements[name].value = params.get(name) ?? "";
  if (!form.elements.limit.value) form.elements.limit.value = DEFAULT_LIMIT;
  for (const name of FLAGS) form.elements[name].checked = ["true", "on"].includes(params.get(name));
}

function pageUrl(id) {
  const params = filters();
  if (id) params.set("id", id);
  const query = params.toString();
  return query ? `?${query}` : window.location.pathname;
}

function outcomeText(m) {
  if (m.on_error_list) return `${m.outcome}, on the error list`;
  if (m.dismissed) return `${m.outcome}, dismissed`;
  if (m.resolution) return `${m.outcome}, resolved`;
  return m.outcome;
}

function problemText(m) {
  if (m.error) return m.error.location ? `${m.error.location} (${m.error.code})` : m.error.code;
  return m.warnings ? `${m.warnings} warning${m.warnings === 1 ? "" : "s"}` : "–";
}

function row(m) {
  const link = el("a", m.id, { href: pageUrl(m.id), "aria-label": `Message ${m.id}` });
  link.addEventListener("click", (event) => {
    event.preventDefault();
    open(m.id, { push: true });
  });
  const tr = el("tr", undefined, { "data-id": m.id });
  const id = el("th", undefined, { scope: "row" });
  id.append(link);
  const sender = [m.sending_application, m.sending_facility].filter(Boolean).join(" / ") || "–";
  tr.append(id, el("td", when(m.received_at), { title: m.received }), el("td", sender),
    el("td", m.message_type || "–"), el("td", outcomeText(m)), el("td", m.ack_code || "–"),
    el("td", problemText(m)));
  if (m.on_error_list) tr.classList.add("bad");
  return tr;
}

function marked() {
  for (const tr of $("rows").querySelectorAll("tr[data-id]")) {
    const here = tr.dataset.id === openId;
    tr.classList.toggle("current", here);
    const link = tr.querySelector("a");
    if (here) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }
}

let asked = 0;  // the newest listing asked for: an older answer arriving late is dropped

async function list({ older = false } = {}) {
  const params = query();
  if (older && next !== null) params.set("before", String(next));
  const mine = ++asked;
  const page = await api(`/api/messages?${params}`);
  if (mine !== asked) return null;
  const body = $("rows");
  if (!older) body.replaceChildren();
  const rows = page.items.map(row);
  body.append(...rows);
  if (!older && rows.length === 0) {
    body.append(el("tr"));
    body.lastChild.append(el("td", "No message matches these filters.", { colspan: "7" }));
  }
  next = page.next;
  $("older").hidden = next === null;
  marked();
  return rows;
}

async function open(id, { push = false, focus = true } = {}) {
  const shown = await showMessage(id, { say, reopen: refresh, focus });
  if (!shown) return;
  openId = id;
  if (push) window.history.pushState(null, "", pageUrl(id));
  marked();
}

// after a change: the list again (with the same filters), then the message to show
async function refresh(id) {
  await list();
  await open(id, { push: id !== openId });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  window.history.pushState(null, "", pageUrl(openId));
  const rows = await list().catch(() => null);
  if (!rows) say("");
  else say(`${rows.length}${next !== null ? " newest" : ""} message${rows.length === 1 ? "" : "s"} shown.`);
});

$("clear").addEventListener("click", () => {
  form.reset();
  form.requestSubmit();
});

$("older").addEventListener("click", async () => {
  const rows = await list({ older: true }).catch(() => null);
  if (!rows) {
    say("");
    return;
  }
  say(`${rows.length} older message${rows.length === 1 ? "" : "s"} shown.`);
  rows[0]?.querySelector("a").focus();
});

async function fromUrl() {
  const params = new URLSearchParams(window.location.search);
  fill(params);
  // a form sent before this script ran (or without it) comes as ?sender=&…&errors_only=on
  window.history.replaceState(null, "", pageUrl(params.get("id")));
  await list().catch(() => {});
  const id = params.get("id");
  if (id) {
    await open(id, { focus: false }).catch(() => {});
  } else {
    $("detail").hidden = true;
    openId = null;
    marked();
  }
}

window.addEventListener("popstate", () => { fromUrl(); });
fromUrl();
