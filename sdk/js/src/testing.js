// Test helpers: build messages, and inspect what a plugin logged and stored
// in the in-memory host stand-in. For unit tests under plain Node.

import { currentHost, installHost, MemoryHost, StoreError } from "./host.js";
import { installHttp } from "./http.js";
import { Message } from "./message.js";

function text(value) {
  return value === undefined || typeof value === "string" ? value : JSON.stringify(value);
}

/** A request from the client. `params` is an object or JSON text. */
export function request(method, params, fields = {}) {
  return new Message({ direction: "to-server", kind: "request", method, id: "1", payload: text(params), ...fields });
}

/**
 * A successful response from the server. `options.request` gives the request's
 * params (delivered when the manifest sets `wantsRequest`).
 */
export function response(method, result, options = {}) {
  const { request: params, ...fields } = options;
  return new Message({
    direction: "to-client",
    kind: "response",
    method,
    id: "1",
    payload: text(result),
    requestPayload: text(params),
    ...fields,
  });
}

/** An error answer from the server. */
export function errorResponse(method, code, message, options = {}) {
  const { request: params, data, ...fields } = options;
  return new Message({
    direction: "to-client",
    kind: "error",
    method,
    id: "1",
    error: { code, message, data: text(data) },
    requestPayload: text(params),
    ...fields,
  });
}

/** A notification (from the client unless `fields.direction` says otherwise). */
export function notification(method, params, fields = {}) {
  return new Message({ direction: "to-server", kind: "notification", method, payload: text(params), ...fields });
}

function memory() {
  const host = currentHost();
  if (!(host instanceof MemoryHost)) {
    throw new Error("interpose-plugin/testing: the in-memory host is not in use (inside a component?)");
  }
  return host;
}

/** Returns the `[level, message]` pairs logged since the last call, and forgets them. */
export function takeLogs() {
  const host = memory();
  const logs = host.logs;
  host.logs = [];
  return logs;
}

/** The live keys of the key-value store. */
export function kvKeys() {
  const host = memory();
  return [...host.entries.keys()].filter((key) => host.kvGet(key) !== undefined);
}

/** Moves the stand-in's clock forward, so entries with a TTL can expire; nothing else moves it. */
export function advanceClock(ms) {
  memory().clock += ms;
}

/**
 * Makes every `store` call throw a StoreError of `kind` (with `detail`) until
 * called with `undefined` (or `resetHost`): how a test sees what its plugin does
 * when the store is down.
 */
export function failStore(kind, detail) {
  memory().fault = kind === undefined ? undefined : new StoreError(kind, detail);
}

/** Starts over with an empty log and store. */
export function resetHost() {
  installHost(new MemoryHost());
}

/**
 * Answers the plugin's `http` requests under Node: `fn({ method, url, headers,
 * body, timeoutMs })` returns an `http.Response` or throws an `HttpError` (the
 * proxy's refusals: `new HttpError("HTTP request failed: HttpRequestDenied",
 * "HttpRequestDenied")`). `undefined` restores the default, which throws.
 */
export function setHttpHandler(fn) {
  installHttp(fn);
}
