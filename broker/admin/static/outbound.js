// The outbound page: per destination its summary (refreshed every few seconds), its parked
// events (dead letters) and the first waiting ones. Show opens an event in a dialog, its
// message text only on a further click (the read is audited); an editor retries an event
// (with its order's parked events), every parked event, or discards one with a reason.
import { api, ApiError, el, showError, when } from "./api.js";

const $ = (id) => document.getElementById(id);
const EDITOR = $("destinations").dataset.editor === "yes";
const REFRESH_MS = 3000;
const SHOWN = 100; // parked events listed per destination
const WAITING = 20; // waiting events listed per destination
const seen = new Map(); // destination -> the summary its lists were last read for
const built = new Map(); // "<destination>/parked" or "/waiting" -> the rows its table shows
const say = (text) => { $("out-status").textContent = text; };
const path = (dest, tail = "") => `/api/outbound/${encodeURIComponent(dest)}${tail}`;

function age(seconds) {
  if (seconds === null) return "–";
  const s = Math.round(seconds);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function lease(d) {
  if (!d.lease_holder) return d.waiting ? "nobody: no broker is sending" : "nobody (nothing to send)";
  return `${d.lease_holder} (${Math.ceil(d.lease_seconds)} s left, renewed while it sends)`;
}

function button(label, name, action, cls = "") {
  const b = el("button", label, { type: "button", "aria-label": `${label} ${name}` });
  if (cls) b.className = cls;
  b.addEventListener("click", (event) => action(event.currentTarget).catch(() => {}));
  return b;
}

function section(d) {
  const s = el("section", undefined, { class: "card wide", "aria-labelledby": `h-${d.name}` });
  s.append(el("h2", `${d.name} (${d.host}:${d.port})`, { id: `h-${d.name}` }));
  const counts = el("dl", undefined, { class: "summary" });
  for (const [key, label] of [["waiting", "Waiting"], ["oldest", "Oldest waiting"],
    ["parked", "Parked (dead letters)"], ["lease", "Sending"], ["error", "Last error"]]) {
    const pair = el("div", undefined, key === "lease" || key === "error" ? { class: "long" } : {});
    pair.append(el("dt", label), el("dd", "", { "data-key": key }));
    counts.append(pair);
  }
  const live = el("p", "", { class: "verdict", "aria-live": "polite", "data-key": "sentence" });
  const parked = el("div", undefined, { "data-key": "parked-list" });
  const waiting = el("div", undefined, { "data-key": "waiting-list" });
  s.append(counts, live, parked, waiting);
  return s;
}

function fill(s, d) {
  const set = (key, text) => { s.querySelector(`[data-key="${key}"]`).textContent = text; };
  set("waiting", d.waiting);
  set("oldest", age(d.oldest_age));
  set("parked", d.parked);
  set("lease", lease(d));
  set("error", d.last_error ?? "none");
  const sentence = `${d.name}: ${d.waiting} waiting, ${d.parked} parked.`;
  if (s.querySelector('[data-key="sentence"]').textContent !== sentence) set("sentence", sentence);
}

function table(labelledby, events, actions) {
  const t = el("table", undefined, { "aria-labelledby": labelledby });
  const head = el("tr");
  for (const h of ["Id", "Status", "Source", "Changed", "Attempts", "Reason", ...(actions ? ["Actions"] : [])]) {
    head.append(el("th", h, h === "Attempts" ? { scope: "col", class: "num" } : { scope: "col" }));
  }
  const body = el("tbody");
  for (const e of events) {
    const row = el("tr");
    row.append(el("th", e.id, { scope: "row" }), el("td", e.status), el("td", e.source),
      el("td", when(e.at), { class: "nowrap" }), el("td", e.attempts, { class: "num" }),
      el("td", e.reason || "–"));
    if (actions) row.append(actions(e));
    body.append(row);
  }
  const thead = el("thead");
  thead.append(head);
  t.append(thead, body);
  return t;
}

function parkedActions(dest) {
  return (e) => {
    const td = el("td", undefined, { class: "nowrap" });
    td.append(button("Show", `event ${e.id}`, (b) => openShow(dest, e.id, b)));
    if (EDITOR) {
      td.append(button("Retry", `event ${e.id}`, () => retry(dest, e.id)),
        button("Discard", `event ${e.id}`, (b) => openDiscard(dest, e.id, b), "danger"));
    }
    return td;
  };
}

function first(page) {
  const n = page.items.length;
  return page.total > n ? `The first ${n} of ${page.total}, oldest first.` : `${n} in all, oldest first.`;
}

// What a table shows, cheap to compare: its total and each row's id, attempts and reason.
const rows = (page) => JSON.stringify([page.total, page.items.map((e) => [e.id, e.attempts, e.reason])]);

// A list's table is rebuilt only when the rows it shows changed (a busy queue with steady
// counts still sends events: their ids change).
function changed(name, page, force) {
  const key = rows(page);
  if (!force && built.get(name) === key) return false;
  built.set(name, key);
  return true;
}

async function lists(s, d, force) {
  const [parked, waiting] = await Promise.all([
    api(path(d.name, `/events?state=parked&limit=${SHOWN}`), { keep: true }),
    api(path(d.name, `/events?state=queued&limit=${WAITING}`), { keep: true }),
  ]);
  if (changed(`${d.name}/parked`, parked, force)) parkedList(s, d, parked);
  if (changed(`${d.name}/waiting`, waiting, force)) waitingList(s, d, waiting);
}

function parkedList(s, d, parked) {
  const box = s.querySelector('[data-key="parked-list"]');
  const inside = box.contains(document.activeElement);
  const focused = inside ? document.activeElement.getAttribute("aria-label") : null;
  const pid = `h-${d.name}-parked`;
  const parts = [el("h3", `Parked events (dead letters) of ${d.name}`, { id: pid, tabindex: "-1" })];
  if (parked.total) {
    const bar = el("p", first(parked), { class: "hint" });
    if (EDITOR) bar.prepend(button("Retry every parked event", `of ${d.name}`, () => retryAll(d.name), "secondary"), " ");
    parts.push(bar, table(pid, parked.items, parkedActions(d.name)));
  } else parts.push(el("p", "None.", { class: "hint" }));
  box.replaceChildren(...parts);
  if (inside) { // the focused button was rebuilt: the same one again, else the heading
    const again = [...box.querySelectorAll("button")].find((b) => b.getAttribute("aria-label") === focused);
    (again ?? box.querySelector("h3")).focus();
  }
}

function waitingList(s, d, waiting) {
  const wbox = s.querySelector('[data-key="waiting-list"]');
  const wid = `h-${d.name}-waiting`;
  wbox.replaceChildren(el("h3", `Waiting to be sent to ${d.name}`, { id: wid }), waiting.total
    ? table(wid, waiting.items, null)
    : el("p", "None: everything was acknowledged.", { class: "hint" }));
  if (waiting.total) wbox.append(el("p", first(waiting), { class: "hint" }));
}

async function refresh(force = false) {
  const destinations = await api("/api/outbound", { keep: true });
  $("no-destination").hidden = destinations.length > 0;
  const box = $("destinations");
  for (const d of destinations) {
    let s = box.querySelector(`section[aria-labelledby="h-${CSS.escape(d.name)}"]`);
    if (!s) { s = section(d); box.append(s); }
    fill(s, d);
    // the lists are read again when the summary changed, and while events wait (they are
    // being sent: the same counts may be other events); each table is rebuilt only if its
    // rows changed
    const key = `${d.waiting}/${d.parked}/${d.last_error}`;
    if (force || d.waiting > 0 || seen.get(d.name) !== key) {
      seen.set(d.name, key);
      await lists(s, d, force);
    }
  }
}

// After a change the rows are rebuilt: focus lost with its button goes to the list's heading.
function settle(dest) {
  if (document.activeElement && document.activeElement !== document.body) return;
  document.getElementById(`h-${dest}-parked`)?.focus();
}

async function retry(dest, id) {
  const done = await api(path(dest, `/events/${id}/retry`), { method: "POST" });
  say(`Queued again for ${dest}: event${done.events.length > 1 ? "s" : ""} ${done.events.join(", ")}.`);
  await refresh(true);
  settle(dest);
}

async function retryAll(dest) {
  const done = await api(path(dest, "/parked/retry"), { method: "POST" });
  say(`Queued again for ${dest}: ${done.count} parked event${done.count === 1 ? "" : "s"}.`);
  await refresh(true);
  settle(dest);
}

// The show dialog: the event's fields, its text only when asked for.
const shown = { dest: null, id: null, opener: null };

async function openShow(dest, id, opener) {
  const e = await api(path(dest, `/events/${id}`));
  Object.assign(shown, { dest, id, opener });
  $("show-title").textContent = `Event ${e.id} for ${dest}`;
  const rows = [["State", e.state], ["Status", e.status], ["Source", e.source], ["Changed", when(e.at)],
    ["Attempts", e.attempts], ["Reason", e.reason || "–"], ["Receiver's error", e.error || "–"],
    ["Control ID (MSH-10)", e.control], ["Worklist entry", e.entry_id]];
  $("show-meta").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  $("show-text").hidden = true;
  $("show-text").textContent = "";
  $("show-text-button").hidden = !e.built;
  $("show").showModal();
  $("show-title").focus();
}

$("show-text-button").addEventListener("click", async () => {
  let answer;
  try {
    answer = await api(path(shown.dest, `/events/${shown.id}/message`), { quiet: true });
  } catch (error) {
    $("show-text").textContent = error instanceof ApiError ? error.message : "The broker did not answer.";
    $("show-text").hidden = false;
    return;
  }
  $("show-text").textContent = answer.text.split("\r").join("\n");
  $("show-text").hidden = false;
  $("show-text-button").hidden = true;
  $("show-text").focus();
});
$("show-close").addEventListener("click", () => $("show").close());
$("show").addEventListener("close", () => {
  $("show-text").textContent = ""; // no patient data left in the page
  if (shown.opener?.isConnected) shown.opener.focus();
});

// The discard dialog (editors): a reason, then the answer says what stays parked.
const discarding = { dest: null, id: null, opener: null };

function openDiscard(dest, id, opener) {
  Object.assign(discarding, { dest, id, opener });
  $("discard-form").reset();
  $("discard-id").textContent = `${id} of ${dest}`;
  discardError("");
  $("discard").showModal();
  $("discard-reason").focus();
  return Promise.resolve();
}

function discardError(text) {
  $("discard-error").textContent = text;
  if (text) $("discard-reason").setAttribute("aria-invalid", "true");
  else $("discard-reason").removeAttribute("aria-invalid");
}

if (EDITOR) {
  $("discard-cancel").addEventListener("click", () => $("discard").close());
  $("discard-form").addEventListener("input", () => discardError(""));
  $("discard").addEventListener("close", () => {
    if ($("discard").open) return;
    if (discarding.opener?.isConnected) discarding.opener.focus();
  });
  $("discard-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const { dest, id } = discarding;
    const reason = $("discard-reason").value.trim();
    if (!reason) return discardError("Say why the event is discarded.");
    $("discard-ok").disabled = true;
    let done;
    try {
      done = await api(path(dest, `/events/${id}/discard`), { method: "POST", body: { reason }, quiet: true });
    } catch (error) {
      const detail = error instanceof ApiError ? error.message : "The broker did not answer; try again.";
      if ($("discard").open) discardError(detail);
      else showError(detail);
      return;
    } finally {
      $("discard-ok").disabled = false;
    }
    $("discard").close();
    const left = done.still_parked;
    say(left.length
      ? `Event ${id} discarded. Its order's event${left.length > 1 ? "s" : ""} ${left.join(", ")} stay parked: retry or discard ${left.length > 1 ? "them" : "it"}.`
      : `Event ${id} discarded. No other event of its order is parked: its new events are sent again.`);
    await refresh(true);
    settle(dest);
  });
}

async function tick() {
  if (!document.hidden) await refresh().catch(() => {});
  setTimeout(tick, REFRESH_MS);
}
refresh(true).catch(() => {}).finally(() => setTimeout(tick, REFRESH_MS));
