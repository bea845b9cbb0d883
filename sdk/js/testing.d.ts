// Types for interpose-plugin/testing: build messages and inspect the in-memory
// host in unit tests under plain Node.
import type { Direction, Json, Message } from "./index.js";

interface Fields {
  direction?: Direction;
  id?: string;
  session?: string;
  server?: string;
  /** The session's principal; `claims` as an object or JSON text. */
  principal?: {
    subject: string;
    issuer: string;
    scopes?: readonly string[];
    claims?: { [key: string]: Json } | string;
  };
}

/** A request from the client; `params` is an object or JSON text. */
export function request(method: string, params?: object | string, fields?: Fields): Message;
/** A successful response; `options.request` is the request's params (for `withRequest` handlers). */
export function response(method: string, result?: object | string, options?: Fields & { request?: object | string }): Message;
/** An error answer. */
export function errorResponse(
  method: string,
  code: number,
  message: string,
  options?: Fields & { request?: object | string; data?: unknown },
): Message;
/** A notification. */
export function notification(method: string, params?: object | string, fields?: Fields): Message;
/** The `[level, message]` pairs logged since the last call (then forgotten). */
export function takeLogs(): Array<["trace" | "debug" | "info" | "warn" | "error", string]>;
/** The live keys of the key-value store. */
export function kvKeys(): string[];
/** Moves the in-memory host's clock forward, so entries with a TTL can expire. */
export function advanceClock(ms: number): void;
/** Makes every `store` call throw a StoreError of `kind` until called with `undefined`. */
export function failStore(kind: import("./index.js").StoreErrorKind | undefined, detail?: string): void;
/** Empties the log and the store. */
export function resetHost(): void;
/**
 * Answers the plugin's `http` requests under Node: `fn` returns an `http.Response`
 * or throws an HttpError; `undefined` restores the default, which throws.
 */
export function setHttpHandler(
  fn:
    | ((request: {
        method: string;
        url: string;
        headers: Array<[string, string]>;
        body: Uint8Array;
        timeoutMs: number | undefined;
      }) => import("./index.js").HttpResponse)
    | undefined,
): void;
