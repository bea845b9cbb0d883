// One message on its way through the proxy, as handlers see it. The payload
// stays JSON text until a handler asks for it parsed, and is parsed at most once.

const UNPARSED = Symbol("unparsed");

export class Message {
  /**
   * @param {object} fields the WIT `message` record: direction, kind, method,
   *   id, payload, error, requestPayload, session, server.
   */
  constructor(fields) {
    /** `"to-server"` or `"to-client"`. */
    this.direction = fields.direction ?? (fields.kind === "request" || fields.kind === "notification" ? "to-server" : "to-client");
    /** `"request"`, `"response"`, `"error"` or `"notification"`. */
    this.kind = fields.kind;
    /** The method; for responses and errors, the method of the request they answer. */
    this.method = fields.method;
    /** The JSON-RPC id as JSON text (`7`, `"abc"`), or `undefined` for notifications. */
    this.id = fields.id ?? undefined;
    /** `params` or `result` as JSON text, or `undefined`. */
    this.payload = fields.payload ?? undefined;
    /** The error of an error answer: `{ code, message, data }` (`data` is JSON text). */
    this.error = fields.error == null ? undefined : normalizeError(fields.error);
    /** For responses and errors when the manifest asked for it: the request's `params` as JSON text. */
    this.requestPayload = fields.requestPayload ?? undefined;
    /** The downstream (client) session. */
    this.session = fields.session ?? "";
    /** The backend server's name. */
    this.server = fields.server ?? "";
    this._json = UNPARSED;
    this._requestJson = UNPARSED;
  }

  get isRequest() {
    return this.kind === "request";
  }

  get isResponse() {
    return this.kind === "response";
  }

  get isError() {
    return this.kind === "error";
  }

  get isNotification() {
    return this.kind === "notification";
  }

  /** The payload parsed as JSON (cached), or `undefined` when there is none. */
  json() {
    if (this._json === UNPARSED) {
      this._json = this.payload === undefined ? undefined : JSON.parse(this.payload);
    }
    return this._json;
  }

  /** The request's `params` parsed as JSON (cached), or `undefined`. */
  requestJson() {
    if (this._requestJson === UNPARSED) {
      this._requestJson = this.requestPayload === undefined ? undefined : JSON.parse(this.requestPayload);
    }
    return this._requestJson;
  }

  /**
   * For a `tools/call` request: its params (`{ name, arguments, _meta }`); for
   * a `tools/call` response or error whose request was delivered with it
   * (`wantsRequest`): the request's params. Otherwise `undefined`.
   */
  toolCall() {
    if (this.method !== "tools/call") {
      return undefined;
    }
    const params = this.kind === "request" ? this.json() : this.requestJson();
    return isToolCall(params) ? params : undefined;
  }

  /** For a `tools/call` response: its result (`{ content, structuredContent, isError }`). */
  toolResult() {
    if (this.method !== "tools/call" || this.kind !== "response") {
      return undefined;
    }
    const result = this.json();
    return result !== null && typeof result === "object" && !Array.isArray(result) ? result : undefined;
  }
}

function isToolCall(params) {
  return params !== null && typeof params === "object" && typeof params.name === "string";
}

function normalizeError(error) {
  return {
    // The WIT record carries an s64, which componentize-js hands over as a BigInt.
    code: typeof error.code === "bigint" ? Number(error.code) : error.code,
    message: error.message,
    data: error.data ?? undefined,
  };
}

/** Wraps a WIT message record (or a plain object of the same shape) unless it is one already. */
export function toMessage(value) {
  return value instanceof Message ? value : new Message(value);
}
