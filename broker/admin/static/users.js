// Users and tokens (admin): list, add, disable/enable, change role, reset a password (in
// the page's own dialog); tokens: create (the secret shown once, with a copy button), list,
// revoke.
import { api, ApiError, el, showError, when } from "./api.js";

const $ = (id) => document.getElementById(id);
const say = (text) => { $("users-status").textContent = text; };

function button(label, action, name) {
  const b = el("button", label, { type: "button", "aria-label": `${label}: ${name}` });
  b.addEventListener("click", (event) => action(event).catch(() => {}));
  return b;
}

function roleSelect(user) {
  const select = el("select", undefined, { "aria-label": `Role of ${user.name}` });
  for (const role of ["viewer", "editor", "admin"]) {
    const option = el("option", role);
    option.selected = role === user.role;
    select.append(option);
  }
  select.addEventListener("change", async () => {
    await api(`/api/users/${encodeURIComponent(user.name)}`,
      { method: "PATCH", body: { role: select.value } }).catch(() => {});
    await load();
    say(`${user.name} is now ${select.value}.`);
  });
  return select;
}

// The reset-password dialog: opened by a user's "Reset password" button, which has the
// focus back when it closes (Set password done, Cancel, or Escape); the passwords are
// cleared from the page then. A refusal's detail is said in the dialog's own alert.
const reset = { user: null, opener: null };

function openReset(user, opener) {
  reset.user = user;
  reset.opener = opener;
  $("reset-form").reset();
  $("reset-user").textContent = user.name;
  $("reset-name").value = user.name;  // for a password manager: whose password this is
  resetError("");
  $("reset").showModal();
  $("reset-password").focus();
}

function resetError(text, field) {
  $("reset-error").textContent = text;
  for (const id of ["reset-password", "reset-confirm"]) {
    if (text && id === field) $(id).setAttribute("aria-invalid", "true");
    else $(id).removeAttribute("aria-invalid");
  }
  if (field) $(field).focus();
}

// "close" comes as a task of its own: when it comes after the dialog was opened again
// (Escape then Enter on the button at once), it is that earlier closing's, and done with.
$("reset").addEventListener("close", () => {
  if ($("reset").open) return;
  $("reset-form").reset();
  resetError("");
  if (reset.opener?.isConnected) reset.opener.focus();
  reset.user = null;
  reset.opener = null;
});
$("reset-cancel").addEventListener("click", () => $("reset").close());
$("reset-form").addEventListener("input", () => resetError(""));

$("reset-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = reset.user;
  const password = $("reset-password").value;
  if (!user) return;
  if (!password) return resetError("Type the new password.", "reset-password");
  if (password !== $("reset-confirm").value) {
    return resetError("The two passwords differ: type the same one twice.", "reset-confirm");
  }
  $("reset-ok").disabled = true;
  try {
    await api(`/api/users/${encodeURIComponent(user.name)}`,
      { method: "PATCH", body: { password }, quiet: true });
  } catch (error) {
    const detail = error instanceof ApiError ? error.message : "The broker did not answer; try again.";
    if ($("reset").open) resetError(detail, "reset-password");
    else showError(detail);
    return;
  } finally {
    $("reset-ok").disabled = false;
  }
  $("reset").close();
  if (user.name === $("reset").dataset.me) {  // this session too: log in with the new one
    window.location.assign("/login");
    return;
  }
  say(`The password of ${user.name} was reset; their sessions ended.`);
});

async function setDisabled(user, disabled) {
  await api(`/api/users/${encodeURIComponent(user.name)}`, { method: "PATCH", body: { disabled } });
  await load();
  say(`${user.name} is ${disabled ? "disabled" : "enabled"}.`);
}

function userRow(user) {
  const row = el("tr");
  const role = el("td");
  role.append(roleSelect(user));
  const actions = el("td");
  actions.append(
    button(user.disabled ? "Enable" : "Disable", () => setDisabled(user, !user.disabled), user.name),
    button("Reset password", async (event) => openReset(user, event.currentTarget), user.name),
  );
  row.append(el("th", user.name, { scope: "row" }), role,
    el("td", user.disabled ? "disabled" : "active"), el("td", when(user.last_login)), actions);
  return row;
}

function tokenRow(token) {
  const row = el("tr");
  const actions = el("td");
  actions.append(button("Revoke", async () => {
    if (!window.confirm(`Revoke token ${token.id}? What uses it stops working.`)) return;
    await api(`/api/tokens/${encodeURIComponent(token.id)}`, { method: "DELETE" });
    await load();
    say(`Token ${token.id} revoked.`);
  }, token.id));
  row.append(el("th", token.id, { scope: "row" }), el("td", token.label || "–"),
    el("td", token.role), el("td", token.scanner ?? "–"), el("td", token.by), actions);
  return row;
}

async function load() {
  const [users, tokens] = await Promise.all([api("/api/users"), api("/api/tokens")]);
  $("user-rows").replaceChildren(...users.map(userRow));
  $("token-rows").replaceChildren(...tokens.map(tokenRow));
}

$("add-user").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("new-name").value.trim();
  const body = { name, role: $("new-role").value, password: $("new-password").value };
  try {
    await api("/api/users", { method: "POST", body });
  } catch {
    return;
  }
  event.target.reset();
  await load();
  say(`User ${name} added.`);
});

$("add-token").addEventListener("submit", async (event) => {
  event.preventDefault();
  const scanner = $("token-scanner").value.trim();
  const body = { label: $("token-label").value, role: $("token-role").value,
    scanner: scanner || null };
  let made;
  try {
    made = await api("/api/tokens", { method: "POST", body });
  } catch {
    return;
  }
  event.target.reset();
  $("secret").textContent = made.token;
  $("secret-box").hidden = false;
  await load();
  say(`Token ${made.id} created; copy it now, it is not shown again.`);
  $("copy-secret").focus();
});

$("copy-secret").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("secret").textContent);
    say("Token copied.");
  } catch {
    say("Copying is not allowed here; select the token and copy it.");
  }
});

load().catch(() => {});
