// cardbridge background: one request from a content script -> the native host -> the answer.
//
// The origin sent to the host is the sender tab's, as the browser reports it (the port's
// sender), never one the page supplied; only the top frame of a tab may ask. Each request
// starts the host (no.cardbridge.host), reads its {"version"} handshake, sends one
// {"command", "arguments"} and passes the answer back. When the page goes away the
// content script's port closes; we then disconnect the host, which closes its stdin, and
// the host cancels its dialog and signs nothing.
"use strict";

const api = globalThis.browser ?? globalThis.chrome;
const HOST = "no.cardbridge.host";
const VERSION = api.runtime.getManifest().version;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 10 * 60_000; // the host gives up on a person well before this

// command -> [required, optional] arguments, from the page (origin is added here).
const COMMANDS = {
  authenticate: [["challengeNonce"], ["lang"]],
  "get-signing-certificate": [[], ["lang"]],
  sign: [["hash", "hashFunction", "certificate"], ["lang"]],
  status: [[], []],
};

// Web eID code -> ours, for an error without "cardbridgeCode" (src/cardbridge/nativemsg/codes.py).
const FROM_WEBEID = {
  ERR_WEBEID_USER_CANCELLED: "USER_CANCELLED",
  ERR_WEBEID_USER_TIMEOUT: "USER_TIMEOUT",
  ERR_WEBEID_NATIVE_INVALID_ARGUMENT: "INVALID_ARGUMENT",
  ERR_WEBEID_ACTION_PENDING: "BUSY",
  ERR_WEBEID_NATIVE_FATAL: "INTERNAL",
};

function failure(code, message, extra = {}) {
  return { error: { code, message, ...extra } };
}

function fromHost(error) {
  const ours = typeof error.cardbridgeCode === "string" && /^[A-Z_]{1,64}$/.test(error.cardbridgeCode);
  const code = ours ? error.cardbridgeCode : FROM_WEBEID[error.code] ?? "INTERNAL";
  const message = typeof error.message === "string" ? error.message.slice(0, 1000) : "cardbridge failed.";
  const extra = Number.isInteger(error.retriesLeft) ? { retriesLeft: error.retriesLeft } : {};
  return failure(code, message, extra);
}

function senderOrigin(sender) {
  // Chrome reports the frame's origin; Firefox the frame's URL.
  if (typeof sender.origin === "string" && sender.origin !== "null") return sender.origin;
  try {
    const origin = new URL(sender.url).origin;
    return origin !== "null" ? origin : null;
  } catch {
    return null;
  }
}

function checkArguments(command, args) {
  if (!Object.hasOwn(COMMANDS, command)) return `Unknown command ${String(command).slice(0, 40)}.`;
  const [required, optional] = COMMANDS[command];
  for (const name of required) {
    if (typeof args[name] !== "string") return `${command}: the argument ${name} is missing.`;
  }
  for (const [name, value] of Object.entries(args)) {
    if (name === "origin") return "The page may not give an origin: the extension adds the page's own.";
    if (!required.includes(name) && !optional.includes(name)) return `${command}: unknown argument ${name.slice(0, 40)}.`;
    if (typeof value !== "string") return `${command}: the argument ${name} must be a string.`;
  }
  return null;
}

// Runs one exchange with the native host. Resolves to {result} or {error}; never rejects.
// `cancelled` is a promise that resolves when the page has gone.
function callHost(request, cancelled) {
  return new Promise((resolve) => {
    let port;
    try {
      port = api.runtime.connectNative(HOST);
    } catch (error) {
      resolve(failure("EXTENSION_NATIVE_HOST_MISSING", `cardbridge is not installed for this browser: ${error}`));
      return;
    }
    let stage = "handshake";
    let hostVersion = null;
    let settled = false;
    const timers = [];
    const finish = (answer) => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      try {
        port.disconnect(); // closes the host's stdin
      } catch {
        // already gone
      }
      resolve(answer);
    };
    timers.push(
      setTimeout(() => {
        if (stage === "handshake") {
          finish(failure("EXTENSION_NATIVE_HOST_MISSING", "The cardbridge app did not answer the browser."));
        }
      }, HANDSHAKE_TIMEOUT_MS),
      setTimeout(() => finish(failure("USER_TIMEOUT", "cardbridge did not answer in time.")), REQUEST_TIMEOUT_MS),
    );
    cancelled.then(() => finish(failure("USER_CANCELLED", "The page went away.")));

    port.onMessage.addListener((message) => {
      if (message === null || typeof message !== "object" || Array.isArray(message)) {
        finish(failure("INTERNAL", "The cardbridge app sent something unexpected."));
      } else if (message.error && typeof message.error === "object") {
        finish(fromHost(message.error));
      } else if (stage === "handshake") {
        if (typeof message.version !== "string") {
          finish(failure("INTERNAL", "The cardbridge app did not say its version."));
          return;
        }
        hostVersion = message.version.slice(0, 40);
        stage = "answer";
        port.postMessage(request.command === "status" ? { command: "quit", arguments: {} } : request);
      } else if (request.command === "status") {
        finish({ result: { version: hostVersion, extensionVersion: VERSION, nativeHost: HOST } });
      } else {
        finish({ result: message });
      }
    });
    port.onDisconnect.addListener(() => {
      const reason = api.runtime.lastError?.message ?? port.error?.message ?? "";
      if (stage === "handshake") {
        finish(failure("EXTENSION_NATIVE_HOST_MISSING", `The cardbridge app could not be started. ${reason}`.trim()));
      } else {
        finish(failure("INTERNAL", `The cardbridge app stopped before it answered. ${reason}`.trim()));
      }
    });
  });
}

api.runtime.onConnect.addListener((port) => {
  if (port.name !== "cardbridge-request") return;
  const sender = port.sender ?? {};
  if (sender.id !== api.runtime.id || !sender.tab || sender.frameId !== 0) {
    port.disconnect();
    return;
  }
  let gone;
  const cancelled = new Promise((resolve) => {
    gone = resolve;
  });
  let busy = false;
  port.onDisconnect.addListener(() => gone());
  port.onMessage.addListener(async (message) => {
    if (busy) return; // one request per port
    busy = true;
    const reply = (answer) => {
      try {
        port.postMessage(answer);
      } catch {
        // the page has gone
      }
    };
    const origin = senderOrigin(sender);
    if (origin === null) {
      reply(failure("INVALID_ORIGIN", "This page has no origin that cardbridge can use."));
      return;
    }
    const command = message?.command;
    const args = message?.arguments;
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      reply(failure("INVALID_ARGUMENT", "A request needs an arguments object."));
      return;
    }
    const problem = checkArguments(command, args);
    if (problem !== null) {
      reply(failure("INVALID_ARGUMENT", problem));
      return;
    }
    reply(await callHost({ command, arguments: { ...args, origin } }, cancelled));
  });
});
