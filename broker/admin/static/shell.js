// Every page's shell: the log-out button.
import { api } from "./api.js";

document.getElementById("logout")?.addEventListener("click", async () => {
  try {
    await api("/api/session", { method: "DELETE" });
  } finally {
    window.location.assign("/login");
  }
});
