// Change your own password; the sessions end, so the login page follows.
import { api } from "./api.js";

const form = document.getElementById("password-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const current = form.querySelector("#current").value;
  const password = form.querySelector("#new").value;
  try {
    await api("/api/session/password", { method: "POST", body: { current, password } });
    window.location.assign("/login");
  } catch {
    form.querySelector("#current").focus();
  }
});
