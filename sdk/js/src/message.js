// One message on its way through the proxy, as handlers see it.
//
// Inside a component, `intercept` receives the direction, kind and method as
// arguments, and the host lends the rest of the message (a WIT resource) for
// the length of the call: each other part is a call to the host that copies it
// into the engine, so it is fetched when a handler first reads it, then kept.
// A plugin that decides on the method alone never copies the payload. Under
// Node (tests) a message is built from plain fields instead.
//
// A message kept past its call (in a module variable, say) keeps the parts
// read during the call; reading another part then throws, since the host has
// taken the message back. The payload stays JSON text until a handler asks
// for it parsed, and is parsed at most once.

/** A part not fetched from the lent message yet. */
const UNFETCHED = Symbol("unfetched");
const UNPARSED = Symbol("unparsed");
/** A plain message's subject, read from its params on first use as the host reads it. */
const UNDERIVED = Symbol("underived");

/** The params member that names what a method acts on (the host reads it with the Rust SDK's `mcp::subject`, which has the same list). */
const SUBJECT_MEMBER = {
  "tools/call": "name",
  "prompts/get": "name",
  "resources/read": "uri",
  "resources/subscribe": "uri",
  "resources/unsubscribe": "uri",
  "notifications/resources/updated": "uri",
};

export class Message {
  /**
   * @param {object} fields plain values: direction, kind, method, id, payload,
   *   error, requestPayload, elapsedUs, subject, session, server, principal (all
   *   but kind and method optional; subject is read from the params unless
   *   given; principal is `{ subject, issuer, scopes, claims }`, claims an
   *   object or JSON text).
   */
  constructor(fields) {
    /** The lent WIT resource while the call lasts; undefined for plain messages. */
    this._lent = undefined;
    this._kind = fields.kind;
    this._direction = fields.direction ?? (fields.kind === "request" || fields.kind === "notification" ? "to-server" : "to-client");
    this._method = fields.method;
    this._id = fields.id ?? undefined;
    this._payload = fields.payload ?? undefined;
    this._error = fields.error == null ? undefined : normalizeError(fields.error);
    this._requestPayload = fields.requestPayload ?? undefined;
    this._elapsedUs = fields.elapsedUs ?? undefined;
    this._subject = fields.subject ?? UNDERIVED;
    this._session = fields.session ?? "";
    this._server = fields.server ?? "";
    this._principal = fields.principal == null ? undefined : normalizePrincipal(fields.principal);
    this._json = UNPARSED;
    this._requestJson = UNPARSED;
  }

  /** `"request"`, `"response"`, `"error"` or `"notification"`. */
  get kind() {
    return this._kind;
  }

  /** `"to-server"` or `"to-client"`. */
  get direction() {
    return this._direction;
  }

  /** The method; for responses and errors, the method of the request they answer. */
  get method() {
    return this._method;
  }

  /** The JSON-RPC id as JSON text (`7`, `"abc"`), or `undefined` for notifications. */
  get id() {
    const value = this._id;
    return value === UNFETCHED ? (this._id = this._borrowed("id").id()) : value;
  }

  /** `params` or `result` as JSON text, or `undefined`. */
  get payload() {
    const value = this._payload;
    return value === UNFETCHED ? (this._payload = this._borrowed("payload").payload()) : value;
  }

  /** The error of an error answer: `{ code, message, data }` (`data` is JSON text). */
  get error() {
    let value = this._error;
    if (value === UNFETCHED) {
      value = this._borrowed("error").error();
      value = this._error = value === undefined ? undefined : normalizeError(value);
    }
    return value;
  }

  /** For responses and errors when the manifest asked for it: the request's `params` as JSON text. */
  get requestPayload() {
    const value = this._requestPayload;
    return value === UNFETCHED ? (this._requestPayload = this._borrowed("requestPayload").requestPayload()) : value;
  }

  /**
   * For responses and errors: microseconds from when the proxy forwarded the
   * request to when this answer arrived; `undefined` for requests and notifications.
   */
  get elapsedUs() {
    let value = this._elapsedUs;
    if (value === UNFETCHED) {
      value = this._borrowed("elapsedUs").elapsedUs();
      // The WIT u64 comes as a BigInt.
      value = this._elapsedUs = value === undefined ? undefined : Number(value);
    }
    return value;
  }

  /**
   * What the message acts on: the tool's name (`tools/call`), the prompt's name
   * (`prompts/get`) or the resource URI (`resources/read`, `subscribe`,
   * `unsubscribe`, `notifications/resources/updated`); `undefined` for other
   * methods. An answer's is its request's, when the manifest asked for the
   * request. The host reads it from the params, so a plugin that needs only the
   * name neither copies nor parses the payload.
   */
  get subject() {
    let value = this._subject;
    if (value === UNFETCHED) {
      value = this._subject = this._borrowed("subject").subject();
    } else if (value === UNDERIVED) {
      value = this._subject = deriveSubject(this);
    }
    return value;
  }

  /** The payload's size in bytes (0 when there is none), without copying it into the engine unless it was read already. */
  get payloadSize() {
    const payload = this._payload;
    if (payload === UNFETCHED) {
      return Number(this._borrowed("payloadSize").payloadSize());
    }
    return payload === undefined ? 0 : utf8Length(payload);
  }

  /** The downstream (client) session. */
  get session() {
    const value = this._session;
    return value === UNFETCHED ? (this._session = this._borrowed("session").session()) : value;
  }

  /** The name of the server the message belongs to (the one a request goes to or a
   * message comes from); in a gateway, `gateway` in the global chain for what
   * concerns every server (a fan-out such as `tools/list`). */
  get server() {
    const value = this._server;
    return value === UNFETCHED ? (this._server = this._borrowed("server").server()) : value;
  }

  /**
   * Who the client session is authenticated as, by the proxy's OAuth resource
   * server (`[auth]`): `{ subject, issuer, scopes, claims }` (claims parsed);
   * `undefined` for stdio, for the static bearer token and for unauthenticated
   * sessions.
   */
  get principal() {
    let value = this._principal;
    if (value === UNFETCHED) {
      value = this._borrowed("principal").principal();
      value = this._principal = value === undefined ? undefined : normalizePrincipal(value);
    }
    return value;
  }

  get isRequest() {
    return this._kind === "request";
  }

  get isResponse() {
    return this._kind === "response";
  }

  get isError() {
    return this._kind === "error";
  }

  get isNotification() {
    return this._kind === "notification";
  }

  /** The payload parsed as JSON (cached), or `undefined` when there is none. */
  json() {
    if (this._json === UNPARSED) {
      const payload = this.payload;
      this._json = payload === undefined ? undefined : JSON.parse(payload);
    }
    return this._json;
  }

  /** The request's `params` parsed as JSON (cached), or `undefined`. */
  requestJson() {
    if (this._requestJson === UNPARSED) {
      const requestPayload = this.requestPayload;
      this._requestJson = requestPayload === undefined ? undefined : JSON.parse(requestPayload);
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
    const params = this._kind === "request" ? this.json() : this.requestJson();
    return isToolCall(params) ? params : undefined;
  }

  /** For a `tools/call` response: its result (`{ content, structuredContent, isError }`). */
  toolResult() {
    if (this._kind !== "response" || this.method !== "tools/call") {
      return undefined;
    }
    const result = this.json();
    return result !== null && typeof result === "object" && !Array.isArray(result) ? result : undefined;
  }

  /** The lent resource, to fetch `part` from; throws once the call is over. */
  _borrowed(part) {
    const lent = this._lent;
    if (lent === undefined) {
      throw new Error(
        `msg.${part} read after the intercept call that received the message returned: the host lends a ` +
          "message for the length of the call only; read the parts you need while handling it",
      );
    }
    return lent;
  }
}

/**
 * The message for one `intercept` call: direction, kind and method as the
 * call's arguments gave them, `resource` the WIT `message` the host lent for
 * the rest. Call `endLoan` when the call returns.
 */
export function lentMessage(direction, kind, method, resource) {
  // The same properties in the same order as the constructor's, so both kinds
  // of message share one shape in the engine.
  const msg = Object.create(Message.prototype);
  msg._lent = resource;
  msg._kind = kind;
  msg._direction = direction;
  msg._method = method;
  msg._id = UNFETCHED;
  msg._payload = UNFETCHED;
  msg._error = UNFETCHED;
  msg._requestPayload = UNFETCHED;
  msg._elapsedUs = UNFETCHED;
  msg._subject = UNFETCHED;
  msg._session = UNFETCHED;
  msg._server = UNFETCHED;
  msg._principal = UNFETCHED;
  msg._json = UNPARSED;
  msg._requestJson = UNPARSED;
  return msg;
}

/** Ends the loan of a message made by `lentMessage`: parts not read by now can no longer be. */
export function endLoan(msg) {
  msg._lent = undefined;
}

/** The subject of a plain message, read from its params as the host reads it. */
function deriveSubject(msg) {
  const member = SUBJECT_MEMBER[msg.method];
  const answer = msg.kind === "response" || msg.kind === "error";
  const params = answer ? msg.requestPayload : msg.payload;
  if (member === undefined || params === undefined) {
    return undefined;
  }
  let value;
  try {
    value = JSON.parse(params);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return undefined;
  }
  // As the host (serde) reads it: a repeated `name` or `uri` (JSON.parse keeps
  // the last), or one that is not a string, gives no subject.
  const keys = topLevelKeys(params);
  for (const key of ["name", "uri"]) {
    const found = value[key];
    if (keys.filter((k) => k === key).length > 1 || (found != null && typeof found !== "string")) {
      return undefined;
    }
  }
  return typeof value[member] === "string" ? value[member] : undefined;
}

/** The member names of the JSON object `text` (valid JSON), duplicates kept. */
function topLevelKeys(text) {
  const keys = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') {
        end += text[end] === "\\" ? 2 : 1;
      }
      if (depth === 1 && /^\s*:/.test(text.slice(end + 1, end + 64))) {
        keys.push(JSON.parse(text.slice(i, end + 1)));
      }
      i = end;
    } else if (c === "{" || c === "[") {
      depth++;
    } else if (c === "}" || c === "]") {
      depth--;
    }
  }
  return keys;
}

/** The size of `text` in UTF-8, without encoding it. */
function utf8Length(text) {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      // A surrogate pair: 4 bytes for the two units.
      bytes += 2;
      i++;
    } else if (unit >= 0x800) {
      bytes += 2;
    } else if (unit >= 0x80) {
      bytes += 1;
    }
  }
  return bytes;
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

/** A principal as plugins see it, from the WIT record (claims as JSON text) or a test's fields. */
function normalizePrincipal(principal) {
  const claims = principal.claims ?? {};
  return Object.freeze({
    subject: principal.subject,
    issuer: principal.issuer,
    scopes: Object.freeze([...(principal.scopes ?? [])]),
    claims: typeof claims === "string" ? JSON.parse(claims) : claims,
  });
}

/** Wraps plain message fields unless they are a Message already. */
export function toMessage(value) {
  return value instanceof Message ? value : new Message(value);
}

/** The payload if a handler read it already, else undefined (without a host call). */
export function payloadIfRead(msg) {
  const value = msg._payload;
  return value === UNFETCHED ? undefined : value;
}
