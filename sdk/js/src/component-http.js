// The component glue for outbound HTTP: `http.fetch` over the `wasi:http`
// imports of the WIT world `interceptor-plugin-http`. Only a bundle built for
// that world (the plugin declares `http` in its `capabilities.toml`) imports this
// module, after ./component.js; a component of the plain world has no `wasi:http`
// to import.
//
// The engine's own `fetch` stays off (componentize-js's `http` feature): it
// returns a Promise, which a synchronous handler cannot wait for. These calls
// block instead: the request is sent, then the guest waits on the response's
// pollable and reads the body with blocking reads.

import { handle } from "wasi:http/outgoing-handler@0.2.12";
import { Fields, httpErrorCode, IncomingBody, OutgoingBody, OutgoingRequest, RequestOptions } from "wasi:http/types@0.2.12";

import { HttpError, installHttp, Response, splitUrl } from "./http.js";

// Largest chunk `blocking-write-and-flush` takes.
const WRITE_CHUNK = 4096;
const READ_CHUNK = 64n * 1024n;
// jco's resources drop their handle on this symbol (SpiderMonkey has no `Symbol.dispose`).
const dispose = Symbol.dispose || Symbol.for("dispose");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const METHODS = new Set(["get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"]);

// A WIT `result` import throws its `err` case, wrapped in jco's ComponentError
// (the case in `payload`).
function payloadOf(error) {
  return error !== null && typeof error === "object" && "payload" in error ? error.payload : error;
}

// `HTTP-request-denied` -> `HttpRequestDenied`, the name the Rust and Python SDKs give.
function codeName(tag) {
  return tag
    .split("-")
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1).toLowerCase())
    .join("");
}

function valueText(value) {
  return typeof value === "object" ? JSON.stringify(value, (_, v) => (typeof v === "bigint" ? Number(v) : v)) : String(value);
}

/** The HttpError for a `wasi:http` error code. */
function failed(code) {
  if (code === null || typeof code !== "object" || typeof code.tag !== "string") {
    return new HttpError(`HTTP request failed: ${String(code)}`);
  }
  const name = codeName(code.tag);
  const text = code.val === undefined ? name : `${name}(${valueText(code.val)})`;
  return new HttpError(`HTTP request failed: ${text}`, name);
}

/** The HttpError for a failed stream read or write (`wasi:io` `stream-error`). */
function streamFailed(error) {
  if (error?.tag === "last-operation-failed") {
    const code = httpErrorCode(error.val);
    if (code !== undefined) {
      return failed(code);
    }
    return new HttpError(`HTTP request failed: ${error.val.toDebugString()}`);
  }
  return new HttpError("HTTP request failed: the stream closed early");
}

function outgoing(method, url, headers) {
  const [scheme, authority, path] = splitUrl(url);
  let fields;
  try {
    fields = Fields.fromList(headers.map(([name, value]) => [name, encoder.encode(value)]));
  } catch (error) {
    throw new HttpError(`HTTP request failed: a header is not allowed (${payloadOf(error)?.tag ?? error})`);
  }
  const request = new OutgoingRequest(fields);
  const lower = method.toLowerCase();
  request.setMethod(METHODS.has(lower) ? { tag: lower } : { tag: "other", val: method });
  request.setScheme(scheme === "http" ? { tag: "HTTP" } : scheme === "https" ? { tag: "HTTPS" } : { tag: "other", val: scheme });
  request.setAuthority(authority);
  request.setPathWithQuery(path);
  return request;
}

function requestOptions(timeoutMs) {
  if (timeoutMs === undefined) {
    return undefined;
  }
  const nanos = BigInt(Math.ceil(timeoutMs)) * 1000000n;
  const options = new RequestOptions();
  options.setConnectTimeout(nanos);
  options.setFirstByteTimeout(nanos);
  options.setBetweenBytesTimeout(nanos);
  return options;
}

function writeBody(body, bytes) {
  if (bytes.length > 0) {
    const stream = body.write();
    try {
      for (let start = 0; start < bytes.length; start += WRITE_CHUNK) {
        stream.blockingWriteAndFlush(bytes.subarray(start, start + WRITE_CHUNK));
      }
    } finally {
      // A child of the body: dropped before the body is finished.
      stream[dispose]();
    }
  }
  OutgoingBody.finish(body, undefined);
}

function readBody(incoming) {
  const body = incoming.consume();
  const stream = body.stream();
  const chunks = [];
  let length = 0;
  try {
    for (;;) {
      let chunk;
      try {
        chunk = stream.blockingRead(READ_CHUNK);
      } catch (error) {
        const cause = payloadOf(error);
        if (cause?.tag === "closed") {
          break;
        }
        throw streamFailed(cause);
      }
      chunks.push(chunk);
      length += chunk.length;
    }
  } finally {
    stream[dispose]();
  }
  IncomingBody.finish(body)[dispose]();
  const whole = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    whole.set(chunk, at);
    at += chunk.length;
  }
  return whole;
}

/** One request over `wasi:http`: the handler `http.fetch` calls inside the component. */
function wasiRequest({ method, url, headers, body, timeoutMs }) {
  const request = outgoing(method, url, headers);
  const outgoingBody = request.body();
  let pending;
  try {
    pending = handle(request, requestOptions(timeoutMs));
  } catch (error) {
    // Dropped now rather than whenever the engine collects it.
    outgoingBody[dispose]();
    throw failed(payloadOf(error));
  }
  let writeError;
  try {
    writeBody(outgoingBody, body);
  } catch (error) {
    // Kept for after the response: a refused request closes the body stream,
    // and its refusal is what explains the failed write.
    const cause = payloadOf(error);
    writeError = cause?.tag === "last-operation-failed" || cause?.tag === "closed" ? streamFailed(cause) : failed(cause);
  }
  const ready = pending.subscribe();
  ready.block();
  ready[dispose]();
  const answer = pending.get();
  pending[dispose]();
  if (answer === undefined || answer.tag === "err") {
    throw new HttpError("HTTP request failed: the response was lost");
  }
  if (answer.val.tag === "err") {
    throw failed(answer.val.val);
  }
  if (writeError !== undefined) {
    throw writeError;
  }
  const incoming = answer.val.val;
  try {
    const status = incoming.status();
    const fields = incoming.headers();
    const entries = fields.entries().map(([name, value]) => [name, decoder.decode(value)]);
    fields[dispose]();
    return new Response(status, entries, readBody(incoming));
  } finally {
    incoming[dispose]();
  }
}

installHttp(wasiRequest);
