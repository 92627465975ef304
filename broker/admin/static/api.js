// The console's one way to the API: sends the session's CSRF token with every change,
// shows a problem+json error in the page's alert (role="alert": read out at once), and
// goes to the login page when the session is over (401).
const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export function showError(text) {
  const box = document.getElementById("alert");
  if (!box) return;
  box.textContent = text;
  box.hidden = false;
}

export function clearError() {
  const box = document.getElementById("alert");
  if (box) {
    box.hidden = true;
    box.textContent = "";
  }
}

async function problemText(answer) {
  try {
    const body = await answer.json();
    return body.detail || body.title || `error ${answer.status}`;
  } catch {
    return `error ${answer.status} ${answer.statusText}`;
  }
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

// fetch(path) with JSON in and out; throws ApiError (already shown) on an error answer.
// raw: the Response itself (a text or a file answer), once it is known to be no error.
// quiet: the error is not shown in the page's alert, the caller shows it (a modal dialog,
// which makes the page behind it inert, shows it in its own).
// keep: a success leaves the page's alert as it is (a page's periodic refresh).
export async function api(path, { method = "GET", body, login = false, raw = false,
  quiet = false, keep = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (answer.status === 401 && !login) {
    window.location.assign("/login");
    throw new ApiError(401, "log in first");
  }
  if (!answer.ok) {
    const detail = await problemText(answer);
    if (!quiet) showError(detail);
    throw new ApiError(answer.status, detail);
  }
  if (!keep) clearError();
  if (raw) return answer;
  return answer.status === 204 ? null : answer.json();
}

// An element with text (never HTML: values are data).
export function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

export function when(epoch) {
  return epoch ? new Date(epoch * 1000).toLocaleString() : "never";
}
