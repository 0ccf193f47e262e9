// cardbridge.js: the login page's client for cardbridge (an ES module, no dependencies).
//
//   import { authenticate, CardbridgeError } from "/static/cardbridge.js";
//   const token = await authenticate(nonceFromYourServer, { lang: "nb" });
//   // POST the token to your server, which validates it (cardbridge.portal.AuthTokenValidator).
//
// It asks the cardbridge browser extension when there is one (window.postMessage, answered
// by the extension's content script), and cardbridge's localhost HTTP API
// (http://127.0.0.1:24231/v1/...) otherwise. Every failure is a CardbridgeError whose `code`
// is one of cardbridge's stable codes (USER_CANCELLED, PIN_INCORRECT, ORIGIN_NOT_ALLOWED,
// ...) or one of the client's own: BRIDGE_NOT_RUNNING, TIMEOUT, INVALID_RESPONSE,
// INVALID_ARGUMENT. The page never names its origin: the bridge takes it from the browser.

export const CLIENT_VERSION = "0.1.0";
export const DEFAULT_PORT = 24231;
export const DEFAULT_PING_TIMEOUT = 300; // ms to wait for the extension's pong
const PROBE_TIMEOUT = 2000; // ms for the no-cors probe after a failed request

const DEFAULT_TIMEOUTS = Object.freeze({
  authenticate: 130000, // the bridge gives the person 120 s for the PIN
  "get-signing-certificate": 130000, // the person is asked before the certificate goes to the page
  sign: 130000,
  status: 5000,
});

const HTTP_ROUTES = Object.freeze({
  authenticate: ["POST", "/v1/authenticate"],
  "get-signing-certificate": ["POST", "/v1/signing-certificate"],
  sign: ["POST", "/v1/sign"],
  status: ["GET", "/v1/status"],
});

/** The client's own error codes; the bridge's codes pass through unchanged. */
export const ErrorCode = Object.freeze({
  BRIDGE_NOT_RUNNING: "BRIDGE_NOT_RUNNING",
  TIMEOUT: "TIMEOUT",
  INVALID_RESPONSE: "INVALID_RESPONSE",
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
});

const NATIVE_HOST_MISSING = "EXTENSION_NATIVE_HOST_MISSING";
const CODE_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;
const MAX_MESSAGE = 500;

/** Every failure: `code` (stable string), `retriesLeft` (number or null), `message`. */
export class CardbridgeError extends Error {
  constructor(code, message, { retriesLeft = null, cause } = {}) {
    super(message || code, cause === undefined ? undefined : { cause });
    this.name = "CardbridgeError";
    this.code = code;
    this.retriesLeft = retriesLeft;
  }
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function has(object, key) {
  return Object.prototype.hasOwnProperty.call(object, key);
}

function invalidResponse(what, cause) {
  return new CardbridgeError(ErrorCode.INVALID_RESPONSE, `cardbridge sent an invalid ${what}.`, { cause });
}

// An error object from the bridge (problem+json) or the extension: {code, message|detail, retriesLeft?}.
function errorFrom(data) {
  if (!isObject(data) || typeof data.code !== "string" || !CODE_PATTERN.test(data.code)) {
    return invalidResponse("error");
  }
  const text = [data.text, data.message, data.detail, data.title].find((v) => typeof v === "string" && v) || data.code;
  const retries = Number.isInteger(data.retriesLeft) && data.retriesLeft >= 0 ? data.retriesLeft : null;
  return new CardbridgeError(data.code, text.slice(0, MAX_MESSAGE), { retriesLeft: retries });
}

// The language the bridge speaks to the person in: the page's (or the given) language tag's
// primary subtag, "nb" from "nb-NO". The bridge maps it to one of its languages ("no" to
// bokmål; one it does not have to the person's own when the bridge has that, else English),
// so the list of languages is its alone.
function language(lang) {
  const value = lang ?? (typeof document !== "undefined" ? document.documentElement.lang : "") ?? "";
  const primary = String(value).split(/[-_]/)[0].toLowerCase();
  return /^[a-z]{2,3}$/.test(primary) ? primary : undefined;
}

function timeoutFor(command, options) {
  const value = options.timeout ?? DEFAULT_TIMEOUTS[command];
  if (typeof value !== "number" || !(value > 0)) {
    throw new CardbridgeError(ErrorCode.INVALID_ARGUMENT, "timeout must be a positive number of milliseconds.");
  }
  return value;
}

function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------------------
// The browser extension: window.postMessage, with targetOrigin our own origin.

const pending = new Map(); // request id -> {settle, timer}
const pingWaiters = new Set();
let extensionVersion = null; // set by extension-ready or pong
let probe = null; // the one ping's promise

function ownOrigin() {
  const origin = typeof window !== "undefined" ? window.location.origin : "null";
  return origin && origin !== "null" ? origin : null;
}

function onMessage(event) {
  // Only messages that this window posted to itself: our own requests echo back, and the
  // extension's content script posts into the page's window. A frame or another window
  // that posts to us has another event.source; another origin has another event.origin.
  if (event.source !== window || event.origin !== window.location.origin) return;
  const data = event.data;
  if (!isObject(data) || typeof data.cardbridge !== "string") return;
  if (data.cardbridge === "extension-ready" || data.cardbridge === "pong") {
    extensionVersion = typeof data.version === "string" ? data.version.slice(0, 40) : "unknown";
    for (const resolve of pingWaiters) resolve(true);
    pingWaiters.clear();
  } else if (data.cardbridge === "response" && typeof data.id === "string") {
    const request = pending.get(data.id);
    if (request === undefined) return; // not an id we sent, or already answered
    pending.delete(data.id);
    clearTimeout(request.timer);
    request.settle(data);
  }
}

if (typeof window !== "undefined" && typeof window.addEventListener === "function") {
  window.addEventListener("message", onMessage);
}

function extensionPresent(pingTimeout) {
  if (extensionVersion !== null) return Promise.resolve(true);
  const origin = ownOrigin();
  if (origin === null) return Promise.resolve(false);
  if (probe === null) {
    probe = new Promise((resolve) => {
      const timer = setTimeout(() => {
        pingWaiters.delete(done);
        resolve(false);
      }, pingTimeout);
      const done = (present) => {
        clearTimeout(timer);
        resolve(present);
      };
      pingWaiters.add(done);
      window.postMessage({ cardbridge: "ping" }, origin);
    });
    // An extension that loads later announces itself with "extension-ready".
  }
  return probe;
}

function viaExtension(command, args, timeout) {
  const origin = ownOrigin();
  if (origin === null) {
    return Promise.reject(new CardbridgeError(ErrorCode.BRIDGE_NOT_RUNNING, "This page has no origin."));
  }
  return new Promise((resolve, reject) => {
    const id = randomId();
    const timer = setTimeout(() => {
      pending.delete(id);
      reject(new CardbridgeError(ErrorCode.TIMEOUT, `cardbridge did not answer within ${timeout} ms.`));
    }, timeout);
    pending.set(id, {
      timer,
      settle(data) {
        if (has(data, "error")) reject(errorFrom(data.error));
        else if (isObject(data.result)) resolve(data.result);
        else reject(invalidResponse("response"));
      },
    });
    window.postMessage({ cardbridge: "request", id, command, arguments: args }, origin);
  });
}

// ---------------------------------------------------------------------------------------
// The localhost HTTP API.

async function viaHttp(command, args, timeout, port) {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new CardbridgeError(ErrorCode.INVALID_ARGUMENT, "port must be a TCP port number.");
  }
  const [method, path] = HTTP_ROUTES[command];
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  const init = {
    method,
    headers: { Accept: "application/json, application/problem+json" },
    mode: "cors",
    credentials: "omit",
    cache: "no-store",
    redirect: "error",
    referrerPolicy: "no-referrer",
    signal: controller.signal,
  };
  if (method === "POST") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(args);
  }
  try {
    let response;
    try {
      response = await fetch(`http://127.0.0.1:${port}${path}`, init);
    } catch (cause) {
      if (controller.signal.aborted) {
        throw new CardbridgeError(ErrorCode.TIMEOUT, `cardbridge did not answer within ${timeout} ms.`, { cause });
      }
      throw await unreachable(port, cause);
    }
    let data;
    try {
      data = JSON.parse(await response.text());
    } catch (cause) {
      if (controller.signal.aborted) {
        throw new CardbridgeError(ErrorCode.TIMEOUT, `cardbridge did not answer within ${timeout} ms.`, { cause });
      }
      throw invalidResponse(`HTTP ${response.status} response`, cause);
    }
    if (!response.ok) throw errorFrom(data);
    if (!isObject(data)) throw invalidResponse("response");
    return data;
  } finally {
    clearTimeout(timer);
  }
}

// The bridge answers every request from an allowed origin with CORS headers, errors
// included, and gives a refused origin none: the browser then hides the answer and fetch
// fails as it does when nothing listens. A no-cors request tells the two apart: it
// resolves (with an opaque answer) only when something listens on the port.
async function unreachable(port, cause) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT);
  try {
    await fetch(`http://127.0.0.1:${port}/v1/status`, {
      mode: "no-cors",
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
      signal: controller.signal,
    });
  } catch {
    return new CardbridgeError(
      ErrorCode.BRIDGE_NOT_RUNNING,
      "cardbridge is not running (or not installed) on this computer.",
      { cause },
    );
  } finally {
    clearTimeout(timer);
  }
  return new CardbridgeError(
    "ORIGIN_NOT_ALLOWED",
    "cardbridge runs on this computer, but it does not allow this website (or another program uses its port).",
    { cause },
  );
}

// ---------------------------------------------------------------------------------------
// Commands.

async function call(command, args, options) {
  const timeout = timeoutFor(command, options);
  const transport = options.transport ?? "auto";
  const port = options.port ?? DEFAULT_PORT;
  if (transport !== "auto" && transport !== "extension" && transport !== "http") {
    throw new CardbridgeError(ErrorCode.INVALID_ARGUMENT, 'transport must be "auto", "extension" or "http".');
  }
  if (transport !== "http") {
    const present = await extensionPresent(options.pingTimeout ?? DEFAULT_PING_TIMEOUT);
    if (present && transport === "extension") {
      return { via: "extension", result: await viaExtension(command, args, timeout) };
    }
    if (present) {
      try {
        return { via: "extension", result: await viaExtension(command, args, timeout) };
      } catch (error) {
        // The extension is there but the app behind it is not: no dialog was shown, so the
        // localhost API may be asked instead.
        if (!(error instanceof CardbridgeError) || error.code !== NATIVE_HOST_MISSING) throw error;
      }
    } else if (transport === "extension") {
      throw new CardbridgeError(ErrorCode.BRIDGE_NOT_RUNNING, "The cardbridge browser extension is not installed.");
    }
  }
  return { via: "http", result: await viaHttp(command, args, timeout, port) };
}

function withLang(args, options) {
  const lang = language(options.lang);
  return lang === undefined ? args : { ...args, lang };
}

function pickStrings(data, required, optional = []) {
  const out = {};
  for (const key of required) {
    if (typeof data[key] !== "string" || !data[key]) throw invalidResponse("response");
    out[key] = data[key];
  }
  for (const key of optional) if (typeof data[key] === "string") out[key] = data[key];
  return out;
}

/**
 * Sign the portal's challenge `nonce` (44-128 visible ASCII characters, made by your server)
 * with the ID card's authentication key. Resolves to the Web eID auth token
 * {unverifiedCertificate, algorithm, signature, format, appVersion}: post it to your server.
 * options: lang (a language tag: "nb", "nn-NO", "en"; default the page's <html lang>), timeout (ms),
 * port (the localhost API's, default 24231), transport ("auto" | "extension" | "http").
 */
export async function authenticate(nonce, options = {}) {
  if (typeof nonce !== "string") {
    throw new CardbridgeError("INVALID_NONCE", "The challenge nonce must be a string.");
  }
  const { result } = await call("authenticate", withLang({ challengeNonce: nonce }, options), options);
  return pickStrings(result, ["unverifiedCertificate", "algorithm", "signature", "format"], ["appVersion"]);
}

/**
 * The signing certificate (base64 DER) and the algorithms its key can sign with:
 * {certificate, supportedSignatureAlgorithms: [{cryptoAlgorithm, hashFunction, paddingScheme}]}.
 */
export async function getSigningCertificate(options = {}) {
  const { result } = await call("get-signing-certificate", withLang({}, options), options);
  const out = pickStrings(result, ["certificate"]);
  if (!Array.isArray(result.supportedSignatureAlgorithms)) throw invalidResponse("response");
  out.supportedSignatureAlgorithms = result.supportedSignatureAlgorithms;
  return out;
}

/**
 * Sign a document hash (base64) with the signing key of `certificate` (base64 DER, from
 * getSigningCertificate). `hashFunction`: "SHA-256", "SHA-384", "SHA-512" or "SHA-224".
 * Resolves to {signature (base64), signatureAlgorithm}.
 */
export async function sign(certificate, hash, hashFunction, options = {}) {
  for (const [name, value] of [
    ["certificate", certificate],
    ["hash", hash],
    ["hashFunction", hashFunction],
  ]) {
    if (typeof value !== "string" || !value) {
      throw new CardbridgeError(ErrorCode.INVALID_ARGUMENT, `${name} must be a non-empty string.`);
    }
  }
  const { result } = await call("sign", withLang({ certificate, hash, hashFunction }, options), options);
  const out = pickStrings(result, ["signature"]);
  if (!isObject(result.signatureAlgorithm)) throw invalidResponse("response");
  out.signatureAlgorithm = result.signatureAlgorithm;
  return out;
}

/**
 * The bridge's status: version, readers and tokens (names only), and `transport`
 * ("extension" or "http": how the client reached it).
 */
export async function status(options = {}) {
  const { via, result } = await call("status", {}, options);
  return { ...result, transport: via };
}
