// cardbridge content script: relays a login page's requests to the extension's background.
//
// Page -> extension (window.postMessage, targetOrigin = the page's own origin):
//   {cardbridge: "request", id, command, arguments}   command: authenticate |
//   get-signing-certificate | sign | status; arguments WITHOUT origin (the background adds
//   the origin of the sender tab, which the browser reports, never one the page supplied).
//   {cardbridge: "ping"}
// Extension -> page:
//   {cardbridge: "response", id, result} or {cardbridge: "response", id, error: {code, message}}
//   {cardbridge: "pong", version} and, when this script loads, {cardbridge: "extension-ready", version}
//
// Only messages that the page's own window posted to itself (event.source === window, and
// event.origin === window.location.origin) are read, and only in a secure context.
"use strict";

(() => {
  const api = globalThis.browser ?? globalThis.chrome;
  if (!window.isSecureContext || !api?.runtime?.connect) return;

  const origin = window.location.origin;
  const version = api.runtime.getManifest().version;
  const MAX_ID = 128;

  function post(message) {
    window.postMessage(message, origin);
  }

  function refuse(id, code, message) {
    post({ cardbridge: "response", id, error: { code, message } });
  }

  function relay(id, command, args) {
    let port;
    try {
      // One port per request: when the page goes away (navigation, closed tab) the port
      // closes, and the background closes the native host's stdin, which cancels the dialog.
      port = api.runtime.connect({ name: "cardbridge-request" });
    } catch (error) {
      refuse(id, "INTERNAL", "The cardbridge extension was reloaded; reload the page.");
      return;
    }
    let answered = false;
    port.onMessage.addListener((reply) => {
      if (answered) return;
      answered = true;
      if (reply && typeof reply === "object" && reply.error && typeof reply.error === "object") {
        post({ cardbridge: "response", id, error: reply.error });
      } else if (reply && typeof reply === "object" && reply.result && typeof reply.result === "object") {
        post({ cardbridge: "response", id, result: reply.result });
      } else {
        refuse(id, "INTERNAL", "The cardbridge extension gave no answer.");
      }
      port.disconnect();
    });
    port.onDisconnect.addListener(() => {
      if (!answered) {
        answered = true;
        refuse(id, "INTERNAL", "The cardbridge extension stopped before it answered.");
      }
    });
    port.postMessage({ command, arguments: args });
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window || event.origin !== origin) return;
    const data = event.data;
    if (data === null || typeof data !== "object" || typeof data.cardbridge !== "string") return;
    if (data.cardbridge === "ping") {
      post({ cardbridge: "pong", version });
      return;
    }
    if (data.cardbridge !== "request") return; // our own responses, and anything else
    if (typeof data.id !== "string" || data.id.length === 0 || data.id.length > MAX_ID) return;
    const args = data.arguments;
    if (typeof data.command !== "string" || args === null || typeof args !== "object" || Array.isArray(args)) {
      refuse(data.id, "INVALID_ARGUMENT", "A request needs a command and an arguments object.");
      return;
    }
    // Copy the strings only: nothing of the page's objects travels further.
    const copy = {};
    for (const [key, value] of Object.entries(args)) {
      if (typeof value !== "string") {
        refuse(data.id, "INVALID_ARGUMENT", `The argument ${key.slice(0, 40)} must be a string.`);
        return;
      }
      copy[key] = value;
    }
    relay(data.id, data.command, copy);
  });

  post({ cardbridge: "extension-ready", version });
})();
