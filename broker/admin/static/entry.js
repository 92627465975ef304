// One worklist entry: its main attributes and its readable dump, and (editor) its hand
// changes: edit an attribute, set the status, cancel, delete. Each change is confirmed in
// a dialog that asks for the reason, names the revision read (expect); a 409 (the entry
// changed meanwhile) offers to reload it.
import { ApiError, api, el } from "./api.js";

const $ = (id) => document.getElementById(id);
const SPS = "00400100";
const MAIN = [  // [label, tag, in the SPS item]
  ["Patient", "00100010", false], ["Patient ID", "00100020", false],
  ["Birth date", "00100030", false], ["Accession", "00080050", false],
  ["Station AE title", "00400001", true], ["Modality", "00080060", true],
  ["Start date", "00400002", true], ["Start time", "00400003", true],
  ["Step description", "00400007", true], ["Requested procedure", "00321060", false],
  ["Status", "00400020", true],
];
let current = null; // {id, revision}

function value(element) {
  const values = element?.Value ?? [];
  return values.map((v) => (typeof v === "object" ? v.Alphabetic ?? "" : String(v))).join("\\");
}

function readable(element) {
  const text = value(element);
  if (element?.vr === "PN") return text.replaceAll("^", " ").trim();
  if (element?.vr === "DA" && /^\d{8}$/.test(text)) {
    return `${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6)}`;
  }
  if (element?.vr === "TM" && /^\d{4}/.test(text)) {
    return text.slice(0, 6).replace(/(\d{2})(?=\d)/g, "$1:");
  }
  return text;
}

function showAttrs(doc, mappingVersion) {
  const step = doc[SPS]?.Value?.[0] ?? {};
  const parts = [];
  for (const [label, tag, inStep] of MAIN) {
    parts.push(el("dt", label), el("dd", readable((inStep ? step : doc)[tag]) || "–"));
  }
  // The mapping version that made it, as the mapping history numbers them.
  parts.push(el("dt", "Mapping version"), el("dd", mappingVersion == null ? "unknown"
    : String(mappingVersion)));
  $("attrs").replaceChildren(...parts);
}

// The entry and its dump in one request: one read on the audit trail.
export async function openEntry(id) {
  const doc = await api(`/api/worklist/entries/${id}?include=dump`);
  const dump = doc.dump ?? "";
  current = { id, revision: doc.revision };
  $("detail").hidden = false;
  $("conflict").hidden = true;
  $("entry-body").hidden = false;
  $("h-entry").textContent = `Entry ${id}`;
  showAttrs(doc.dataset, doc.mapping_version);
  $("dump").textContent = dump;
  $("explain-link").href = `/scanners#entry=${id}`;
  $("h-entry").focus();
}

// The confirmation dialog: resolves to the reason given, or null when the user went back.
function confirmed(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-reason").value = "";
  $("confirm-error").textContent = "";
  return new Promise((resolve) => {
    const form = $("confirm-form");
    const done = (reason) => {
      form.removeEventListener("submit", submit);
      $("confirm-back").removeEventListener("click", back);
      dialog.removeEventListener("cancel", back);
      dialog.close();
      resolve(reason);
    };
    const submit = (event) => {
      event.preventDefault();
      const reason = $("confirm-reason").value.trim();
      if (reason) return done(reason);
      $("confirm-error").textContent = "Give a reason: it goes on the audit trail.";
      $("confirm-reason").focus();
    };
    $("confirm-reason").oninput = () => { $("confirm-error").textContent = ""; };
    const back = (event) => { event.preventDefault(); done(null); };
    form.addEventListener("submit", submit);
    $("confirm-back").addEventListener("click", back);
    dialog.addEventListener("cancel", back);
    dialog.showModal();
    $("confirm-reason").focus();
  });
}

async function change(question, path, method, body, said) {
  if (!current) return;
  const reason = await confirmed(question);
  if (reason === null) return;
  const id = current.id;
  $("entry-status").textContent = "";
  try {
    await api(`/api/worklist/entries/${id}${path}`,
      { method, body: { ...body, expect: current.revision, reason } });
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      $("conflict").hidden = false;
      $("reload").focus();
    }
    return;
  }
  if (method === "DELETE") {
    current = null;
    $("h-entry").textContent = `Entry ${id} (deleted)`;
    $("entry-body").hidden = true;
  } else {
    await openEntry(id);
  }
  $("entry-status").textContent = said;
  document.dispatchEvent(new CustomEvent("entry-changed"));
}

$("edit")?.addEventListener("submit", (event) => {
  event.preventDefault();
  const attribute = $("e-attr").value;
  const value = $("e-value").value.trim();
  const shown = value ? `"${value}"` : "no value";
  change(`Set ${attribute} of entry ${current?.id} to ${shown}?`, "", "PATCH",
    { attribute, value }, `${attribute} is now ${shown}.`).catch(() => {});
});

$("status")?.addEventListener("submit", (event) => {
  event.preventDefault();
  const status = $("s-status").value;
  change(`Set the status of entry ${current?.id} to ${status}?`, "/status", "POST", { status },
    `The status is now ${status}.`).catch(() => {});
});

$("cancel-entry")?.addEventListener("click", () => {
  change(`Cancel entry ${current?.id}, as the RIS would (status CANCELED)?`, "/cancel", "POST", {},
    "The entry is canceled.").catch(() => {});
});

$("delete-entry")?.addEventListener("click", () => {
  change(`Delete entry ${current?.id}? It leaves the worklist (no scanner sees it any more).`,
    "", "DELETE", {}, "The entry was deleted.").catch(() => {});
});

$("reload").addEventListener("click", () => {
  if (current) openEntry(current.id).then(() => {
    $("entry-status").textContent = "Reloaded: the entry as it is now.";
  }).catch(() => {});
});
