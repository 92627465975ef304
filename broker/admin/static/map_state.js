// The mapping page's shared state: the version the editor was loaded from, its files, the
// edited texts; and a unified diff shown line by line (added, removed, hunk headers).
import { el } from "./api.js";

export const state = {
  version: null, // the VersionInfo the editor was loaded from
  files: {}, // name -> text, as in that version
  edited: {}, // name -> text, as in the editor
  current: null, // the file in the editor
  canEdit: document.getElementById("edit")?.dataset.canEdit === "yes",
};

// The files whose edited text differs from the loaded version's.
export function changedFiles() {
  const out = {};
  for (const [name, text] of Object.entries(state.edited)) {
    if (text !== state.files[name]) out[name] = text;
  }
  return out;
}

export function showDiff(pre, text) {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  pre.replaceChildren(...lines.map((line) => {
    let kind = "";
    if (line.startsWith("@@")) kind = "hunk";
    else if (line.startsWith("+") && !line.startsWith("+++")) kind = "add";
    else if (line.startsWith("-") && !line.startsWith("---")) kind = "del";
    return el("span", `${line}\n`, kind ? { class: kind } : {});
  }));
  pre.hidden = false;
}

// Sets a status line's text only when it changes, so a live region is not re-read.
export function say(id, text) {
  const node = document.getElementById(id);
  if (node && node.textContent !== text) node.textContent = text;
}
