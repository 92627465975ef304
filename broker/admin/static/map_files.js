// New and deleted mapping files (editors): "New file…" asks the name in a dialog, checked
// as it is typed (a plain *.yaml name, not one the set has), and opens the new file in the
// editor; "Delete file…" asks to confirm deleting the file in the editor. Both change only
// the edited set: nothing is stored until the edit is published, and a deleted file stays
// in the list with "Undo delete" until then. Each dialog gives the focus back to its button.
import { edited, open, renderFiles } from "./map_editor.js";
import { say, state } from "./map_state.js";

const $ = (id) => document.getElementById(id);
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.yaml$/; // as the broker's check_file_name

// Why ``name`` cannot be a new file's name, or "" when it can.
export function nameProblem(name) {
  if (!name) return "Type a file name, e.g. orders-cardiology.yaml.";
  if (!name.endsWith(".yaml")) return "The name must end in .yaml.";
  if (/[/\\]/.test(name)) return "A name has no directory part: no / or \\.";
  if (name.startsWith(".")) return "A name does not start with a dot.";
  if (name.includes("..")) return "A name has no '..'.";
  if (name.length > 105) return "At most 105 characters.";
  if (!NAME.test(name)) {
    return "Only letters (a-z, A-Z), digits, '.', '_' and '-', starting with a letter or digit.";
  }
  if (name in state.edited) return `${name} is already a file of the set: open it from the list.`;
  if (name in state.files) return `${name} is deleted in your edit: use its "Undo delete".`;
  return "";
}

function starter(name) {
  const stem = name.slice(0, -".yaml".length);
  return `# ${name}: a mapping of this site (mappings/README.md explains every key).\n`
    + `name: ${stem}\n`;
}

// Where the focus goes when a dialog closes ("close" comes as a task of its own, after
// what closed it): its opener, or what the dialog's action chose.
const backTo = new Map();

// Opens a modal dialog from ``opener``; the focus goes back to it when the dialog closes.
function showDialog(dialog, opener, first) {
  backTo.set(dialog, opener);
  dialog.showModal();
  first.focus();
}

function closeDialog(dialog, focus) {
  if (focus) backTo.set(dialog, focus);
  dialog.close();
}

function focusBack(event) {
  const target = backTo.get(event.target);
  if (!event.target.open && target?.isConnected) target.focus();
}

function newFileProblem(show) {
  const input = $("new-file-name");
  const problem = nameProblem(input.value.trim());
  const visible = show || input.value !== "";
  $("new-file-error").textContent = visible ? problem : "";
  if (problem && visible) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  return problem;
}

function addFile(event) {
  event.preventDefault();
  if (newFileProblem(true)) {
    $("new-file-name").focus();
    return;
  }
  const name = $("new-file-name").value.trim();
  state.edited[name] = starter(name);
  open(name);
  edited();
  say("check-status", `${name} added to the edited set; it is published with the edit.`);
  closeDialog($("new-file-dialog"), $("editor-text"));
}

function deleteFile(event) {
  event.preventDefault();
  const name = $("delete-file-dialog").dataset.name;
  $("delete-file-dialog").close();
  if (!name || !(name in state.edited)) return;
  delete state.edited[name]; // a new file is simply gone; a published one is pending deletion
  const rest = Object.keys(state.edited).sort();
  open(rest[0]);
  edited();
  renderFiles();
  say("check-status", `${name} deleted from the edited set; publish to delete it.`);
}

function askDelete(opener) {
  const name = state.current;
  const remaining = Object.keys(state.edited).length;
  if (!name || !(name in state.edited)) return;
  if (remaining <= 1) {
    say("check-status", `${name} is the only file left: a mapping set keeps at least one.`);
    return;
  }
  const dialog = $("delete-file-dialog");
  dialog.dataset.name = name;
  $("delete-file-name").textContent = name;
  $("delete-file-about").textContent = name in state.files
    ? `It leaves the mappings when you publish; until then "Undo delete" in the file list brings it back.`
    : "It is a new file, not published yet: its text is dropped.";
  showDialog(dialog, opener, $("delete-file-cancel"));
}

export function initFiles() {
  const newButton = $("new-file");
  if (!newButton) return; // a viewer: neither button, nor the dialogs
  newButton.addEventListener("click", () => {
    $("new-file-form").reset();
    newFileProblem(false);
    showDialog($("new-file-dialog"), newButton, $("new-file-name"));
  });
  $("new-file-name").addEventListener("input", () => newFileProblem(false));
  $("new-file-form").addEventListener("submit", addFile);
  $("new-file-cancel").addEventListener("click", () => $("new-file-dialog").close());
  $("new-file-dialog").addEventListener("close", focusBack);
  $("delete-file-dialog").addEventListener("close", focusBack);
  $("delete-file").addEventListener("click", () => askDelete($("delete-file")));
  $("delete-file-form").addEventListener("submit", deleteFile);
  $("delete-file-cancel").addEventListener("click", () => $("delete-file-dialog").close());
  // rendered disabled: a click before this script ran would do nothing
  newButton.disabled = false;
  $("delete-file").disabled = false;
}
