// The demo portal's login page: challenge from the portal, token from cardbridge, token to the portal.
import { authenticate, CardbridgeError } from "./cardbridge.js";

const root = document.getElementById("login");
const config = JSON.parse(root.dataset.config);
const button = document.getElementById("login-button");
const statusLine = document.getElementById("status");
const errorLine = document.getElementById("error");

function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

function explain(error) {
  const code = error instanceof CardbridgeError ? error.code : "INTERNAL";
  const messages = config.messages;
  let text = messages[code] || messages.default;
  // One line per number of tries left, in the page's language (the server applied its plural rule).
  const retries = error instanceof CardbridgeError && error.retriesLeft !== null ? messages.retries[error.retriesLeft] : null;
  if (retries) {
    text += " " + retries;
  }
  errorLine.dataset.code = code;
  errorLine.textContent = "";
  errorLine.append(text + " ");
  const codeElement = document.createElement("code");
  codeElement.textContent = `(${code})`;
  errorLine.append(codeElement);
  errorLine.hidden = false;
}

async function postJson(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    throw new CardbridgeError("INVALID_RESPONSE", `The portal answered HTTP ${response.status}.`);
  }
  if (!response.ok) {
    throw new CardbridgeError(typeof data.code === "string" ? data.code : "INTERNAL", data.detail || "");
  }
  return data;
}

async function logIn() {
  button.disabled = true;
  show(errorLine, "");
  delete errorLine.dataset.code;
  show(statusLine, config.messages.working);
  try {
    const query = `?lang=${encodeURIComponent(config.lang)}`;
    const { nonce } = await postJson("/api/challenge" + query, {});
    const token = await authenticate(nonce, {
      lang: config.lang,
      port: config.bridgePort,
      transport: config.transport,
    });
    show(statusLine, config.messages.verifying);
    const result = await postJson("/api/login" + query, { token });
    window.location.assign(result.redirect);
  } catch (error) {
    show(statusLine, "");
    explain(error);
    button.disabled = false;
  }
}

button.addEventListener("click", logIn);
root.dataset.ready = "true";
