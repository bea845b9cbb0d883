// Verdicts: what a handler decides about a message. They are plain objects
// shaped like the WIT `verdict` variant as componentize-js represents it
// (`{ tag, val }`), so the component glue hands them over as they are.

/** JSON-RPC error codes. */
export const ErrorCode = Object.freeze({
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
});

const PASS = Object.freeze({ tag: "pass" });

/** Forward the message unchanged. Returning `undefined` from a handler means the same. */
export function pass() {
  return PASS;
}

/**
 * Forward the message with this payload instead (new `params` for requests and
 * notifications, a new `result` for responses). A string is taken as JSON text
 * as it is; anything else is serialized with `JSON.stringify`.
 */
export function rewrite(payload) {
  return Object.freeze({ tag: "rewrite", val: jsonText(payload, "rewrite") });
}

/**
 * Requests only: answer the sender with this `result` and do not forward the
 * request. For other kinds it acts as `rewrite`. A string is taken as JSON text;
 * anything else is serialized.
 */
export function respond(result) {
  return Object.freeze({ tag: "respond", val: jsonText(result, "respond") });
}

/**
 * Requests: answer with this JSON-RPC error. Responses and errors: deliver this
 * error instead. Notifications: drop the notification. `data`, when given, is
 * any JSON value (serialized with `JSON.stringify`).
 *
 * An answer made by `respond` or `reject` to a request walks back through the
 * plugins before this one, as any answer does; a rejected answer goes on
 * through them as this error.
 */
export function reject(code, message, data) {
  if (!Number.isSafeInteger(code)) {
    throw new TypeError(`reject: the error code must be an integer, got ${String(code)}`);
  }
  return Object.freeze({
    tag: "reject",
    val: Object.freeze({
      code,
      message: String(message),
      data: data === undefined ? undefined : JSON.stringify(data),
    }),
  });
}

/** Whether a value is a verdict built by this module. */
export function isVerdict(value) {
  if (value === null || typeof value !== "object") {
    return false;
  }
  switch (value.tag) {
    case "pass":
      return true;
    case "rewrite":
    case "respond":
      return typeof value.val === "string";
    case "reject":
      return value.val !== null && typeof value.val === "object" && typeof value.val.message === "string";
    default:
      return false;
  }
}

function jsonText(value, what) {
  if (typeof value === "string") {
    return value;
  }
  const text = JSON.stringify(value);
  if (text === undefined) {
    throw new TypeError(`${what}: ${typeof value} is not a JSON value`);
  }
  return text;
}
