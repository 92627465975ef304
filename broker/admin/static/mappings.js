// The mappings page: the editor (map_editor.js), new and deleted files (map_files.js),
// the preview (map_preview.js), the diff of the edits, publishing them with a comment, and the history (map_history.js).
import { ApiError, api } from "./api.js";
import { check, loadActive } from "./map_editor.js";
import { initHistory, loadHistory } from "./map_history.js";
import { initPreview } from "./map_preview.js";
import { initFiles } from "./map_files.js";
import { changes, hasChanges, say, showDiff, state } from "./map_state.js";

const $ = (id) => document.getElementById(id);

async function reload() {
  await Promise.all([loadActive(), loadHistory()]);
}

async function diffEdited() {
  if (!hasChanges()) {
    $("diff-out").hidden = true;
    say("diff-status", `No changes: the files are as in version ${state.version?.number}.`);
    return;
  }
  const found = await api("/api/mappings/diff", { method: "POST", body: changes() });
  showDiff($("diff-out"), found.text);
  say("diff-status", `Changes from ${found.old} to the edited files:`);
}

async function publish(event) {
  event.preventDefault();
  if (!hasChanges()) {
    say("publish-status", `Nothing to publish: no file differs from version ${state.version?.number}.`);
    return;
  }
  const body = { ...changes(), comment: $("publish-comment").value, expect: state.version?.number };
  let answer;
  try {
    answer = await api("/api/mappings/publish", { method: "POST", body });
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      $("conflict").hidden = false;
      $("reload-active").focus();
    } else if (error instanceof ApiError && error.status === 422) {
      await check();
    }
    say("publish-status", `Not published: ${error.message}`);
    return;
  }
  event.target.reset();
  $("conflict").hidden = true;
  $("diff-out").hidden = true;
  say("diff-status", "");
  await reload();
  say("publish-status", answer.created
    ? `Published version ${answer.version.number}.`
    : `Version ${answer.version.number} already has these files; nothing changed.`);
}

$("diff-edited")?.addEventListener("click", () => diffEdited().catch(() => {}));
$("publish-form")?.addEventListener("submit", (event) => publish(event).catch(() => {}));
$("reload-active")?.addEventListener("click", async () => {
  $("conflict").hidden = true;
  await reload().catch(() => {});
  say("publish-status", `Reloaded: the editor has version ${state.version?.number}.`);
  $("editor-text").focus();
});
initFiles();
initPreview();
initHistory(reload);
reload().catch(() => {});
