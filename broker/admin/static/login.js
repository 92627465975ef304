// The login form: POST /api/session, then the dashboard; a refusal is announced.
import { api, showError } from "./api.js";

const form = document.getElementById("login-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = form.querySelector("#user").value.trim();
  const password = form.querySelector("#password").value;
  if (!user || !password) {
    showError("Enter your user name and password.");
    return;
  }
  try {
    await api("/api/session", { method: "POST", body: { user, password }, login: true });
    window.location.assign("/");
  } catch {
    form.querySelector("#password").value = "";
    form.querySelector("#password").focus();
  }
});
form.querySelector("button[type=submit]").disabled = false; // rendered disabled until now
form.querySelector("#user").focus();
