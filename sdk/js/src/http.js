// Outbound HTTP from a plugin, over `wasi:http`: `http.fetch(url, init)`,
// `http.get(url)`, `http.postJson(url, value)`. Synchronous: a handler is
// synchronous, so the call blocks until the whole response is in (see the
// README for why this is not the engine's Promise-returning `fetch`).
//
// A plugin that calls out declares it in its project's `capabilities.toml`
// (`http = ["https://api.example.com/v1/"]`): the build then uses the WIT world
// with `wasi:http` (`interceptor-plugin-http`) and ./component-http.js. The
// proxy sends a request only when the user's configuration grants its URL, and
// cuts it off at the plugin's call deadline and response size cap; anything
// else throws an HttpError, whose `code` names the `wasi:http` error
// (`HttpRequestDenied`, `DestinationIpProhibited`, `HttpResponseBodySize`, ...).
// Redirects are not followed.
//
// Under plain Node (unit tests) there is no `wasi:http`: requests go to a
// stand-in that `setHttpHandler` (interpose-plugin/testing) replaces; by
// default it throws an HttpError.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A request that failed: `code` is the `wasi:http` error's name
 * (`HttpRequestDenied`), or `undefined` when the failure was found in the
 * plugin (a bad URL, a lost response).
 */
export class HttpError extends Error {
  constructor(message, code) {
    super(message);
    this.name = "HttpError";
    this.code = code;
  }
}

/** A response, its body read whole. */
export class Response {
  /**
   * @param {number} status
   * @param {Array<[string, string]>} headers
   * @param {Uint8Array} body
   */
  constructor(status, headers = [], body = new Uint8Array()) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  /** Whether the status is 2xx. */
  get ok() {
    return this.status >= 200 && this.status < 300;
  }

  /** The first value of the header `name` (any case), or `undefined`. */
  header(name) {
    const lower = name.toLowerCase();
    return this.headers.find(([key]) => key.toLowerCase() === lower)?.[1];
  }

  /** The body as text (UTF-8, invalid bytes replaced). */
  text() {
    return decoder.decode(this.body);
  }

  /** The body parsed as JSON. */
  json() {
    return JSON.parse(this.text());
  }
}

function noHttp(request) {
  throw new HttpError(`HTTP request failed: no wasi:http outside the component (${request.method} ${request.url})`);
}

let handler = noHttp;

/**
 * Replaces what answers requests: `fn({ method, url, headers, body, timeoutMs })`
 * returns a Response or throws an HttpError; `undefined` restores the default,
 * which throws. The component glue installs `wasi:http`; tests install a stand-in.
 */
export function installHttp(fn) {
  handler = fn ?? noHttp;
}

function headerList(headers, what) {
  if (headers === undefined || headers === null) {
    return [];
  }
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
  return pairs.map((pair) => {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" || typeof pair[1] !== "string") {
      throw new TypeError(`${what}: headers must be an object of strings or a list of [name, value] strings`);
    }
    return [pair[0], pair[1]];
  });
}

function bodyBytes(body, what) {
  if (body === undefined || body === null) {
    return new Uint8Array();
  }
  if (typeof body === "string") {
    return encoder.encode(body);
  }
  if (body instanceof Uint8Array) {
    return body;
  }
  throw new TypeError(`${what}: the body must be a string or a Uint8Array (use http.postJson for other values)`);
}

/**
 * Sends a request and reads the whole response, like `fetch` but synchronous.
 * `init`: `method` (default GET, or POST when there is a body), `headers` (an
 * object, or a list of `[name, value]`), `body` (text or a Uint8Array),
 * `timeoutMs` (a limit for connecting, for the response to start and between its
 * bytes, each; the proxy ends the request at the plugin's call deadline anyway).
 * A response of any status is returned; a request that fails throws an HttpError.
 */
export function fetch(url, init = {}) {
  if (typeof url !== "string") {
    throw new TypeError(`http.fetch: the URL must be a string, got ${typeof url}`);
  }
  const body = bodyBytes(init.body, "http.fetch");
  const method = init.method ?? (init.body === undefined || init.body === null ? "GET" : "POST");
  const timeoutMs = init.timeoutMs ?? undefined;
  if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !(timeoutMs >= 0))) {
    throw new TypeError(`http.fetch: timeoutMs must be a non-negative number, got ${String(timeoutMs)}`);
  }
  return handler({ method: String(method), url, headers: headerList(init.headers, "http.fetch"), body, timeoutMs });
}

/** `GET url`. */
export function get(url, init = {}) {
  return fetch(url, { ...init, method: "GET", body: undefined });
}

/** `POST url` with `value` as JSON (and its `content-type`). */
export function postJson(url, value, init = {}) {
  const headers = [["content-type", "application/json"], ...headerList(init.headers, "http.postJson")];
  return fetch(url, { ...init, method: "POST", headers, body: JSON.stringify(value) });
}

/** `scheme://authority/path?query` in the three parts `wasi:http` takes. */
export function splitUrl(url) {
  const at = url.indexOf("://");
  if (at < 0) {
    throw new HttpError(`HTTP request failed: \`${url}\` is not an absolute URL`);
  }
  const scheme = url.slice(0, at).toLowerCase();
  const rest = url.slice(at + 3);
  const cuts = [rest.indexOf("/"), rest.indexOf("?")].filter((i) => i >= 0);
  const cut = cuts.length === 0 ? rest.length : Math.min(...cuts);
  const authority = rest.slice(0, cut);
  if (authority === "") {
    throw new HttpError(`HTTP request failed: \`${url}\` has no host`);
  }
  let path = rest.slice(cut);
  if (!path.startsWith("/")) {
    path = `/${path}`;
  }
  return [scheme, authority, path];
}

/** What `import { http } from "interpose-plugin"` gives. */
export const http = Object.freeze({ fetch, get, postJson, HttpError, Response });
