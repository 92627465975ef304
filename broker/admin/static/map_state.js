// The mapping page's shared state: the version the editor was loaded from, its files, the
// edited set (changed texts, new files, deleted ones left out); and a unified diff shown
// line by line (added, removed, hunk headers).
import { el } from "./api.js";

export const state = {
  version: null, // the VersionInfo the editor was loaded from
  files: {}, // name -> text, as in that version
  edited: {}, // name -> text, the edited set: a new file is in it, a deleted one is not
  current: null, // the file in the editor
  canEdit: document.getElementById("edit")?.dataset.canEdit === "yes",
};

// The edit as the API takes it: {files: changed, add: new, delete: names}, the empty
// ones left out; {} when nothing differs from the loaded version.
export function changes() {
  const files = {};
  const add = {};
  for (const [name, text] of Object.entries(state.edited)) {
    if (!(name in state.files)) add[name] = text;
    else if (text !== state.files[name]) files[name] = text;
  }
  const gone = Object.keys(state.files).filter((name) => !(name in state.edited)).sort();
  const out = {};
  if (Object.keys(files).length) out.files = files;
  if (Object.keys(add).length) out.add = add;
  if (gone.length) out.delete = gone;
  return out;
}

export const hasChanges = () => Object.keys(changes()).length > 0;

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
