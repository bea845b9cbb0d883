// Types for interpose-plugin: write interpose interceptor plugins in JavaScript.

/** Which way a message travels. */
export type Direction = "to-server" | "to-client";

/** The four kinds of JSON-RPC message. */
export type Kind = "request" | "response" | "error" | "notification";

/** A JSON-RPC error object as a plugin sees it. `data` is JSON text. */
export interface RpcError {
  code: number;
  message: string;
  data?: string;
}

/**
 * Who the client session is authenticated as, as the access token the proxy's
 * OAuth resource server (`[auth]`) validated says.
 */
export interface Principal {
  /** `sub`, or for a token without one, `client_id`. */
  readonly subject: string;
  /** `iss`: the authorization server that issued the token. */
  readonly issuer: string;
  /** The scopes the token grants. */
  readonly scopes: readonly string[];
  /** Every claim of the token, parsed. */
  readonly claims: { [key: string]: Json };
}

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * One message on its way through the proxy. Inside a component its direction,
 * kind and method come with the `intercept` call; the host lends the rest for
 * the length of the call, and each other part is fetched from the host when
 * first read (then kept), so a handler pays only for what it reads. A message
 * kept past its call keeps the parts read during the call; reading any other
 * part then throws.
 */
export declare class Message {
  constructor(fields: {
    direction?: Direction;
    kind: Kind;
    method: string;
    id?: string;
    payload?: string;
    error?: { code: number | bigint; message: string; data?: string };
    requestPayload?: string;
    elapsedUs?: number;
    /** Read from the params (the request's, for answers) unless given. */
    subject?: string;
    session?: string;
    server?: string;
    /** The session's principal; `claims` as an object or JSON text. */
    principal?: {
      subject: string;
      issuer: string;
      scopes?: readonly string[];
      claims?: { [key: string]: Json } | string;
    };
  });
  readonly direction: Direction;
  readonly kind: Kind;
  /** The method; for responses and errors, the method of the request they answer. */
  readonly method: string;
  /** The JSON-RPC id as JSON text (`7`, `"abc"`); undefined for notifications. */
  readonly id: string | undefined;
  /** `params` (requests, notifications) or `result` (responses) as JSON text. */
  readonly payload: string | undefined;
  /** The error of an error answer. */
  readonly error: RpcError | undefined;
  /** For responses and errors, when the manifest asked for it: the request's params as JSON text. */
  readonly requestPayload: string | undefined;
  /** The payload's size in bytes (0 when there is none), without copying the payload. */
  readonly payloadSize: number;
  /** For responses and errors: microseconds from forwarding the request to this answer. */
  readonly elapsedUs: number | undefined;
  /**
   * What the message acts on: the tool's or prompt's name, or the resource URI
   * (`tools/call`, `prompts/get`, `resources/read|subscribe|unsubscribe`,
   * `notifications/resources/updated`); for answers, their request's, when the
   * manifest asked for the request. Read by the host, without copying the payload.
   */
  readonly subject: string | undefined;
  /** The downstream (client) session. */
  readonly session: string;
  /** The name of the server the message belongs to (the one a request goes to or a
   * message comes from); in a gateway, `gateway` in the global chain for what
   * concerns every server (a fan-out such as `tools/list`). */
  readonly server: string;
  /**
   * Who the client session is authenticated as, by the proxy's OAuth resource
   * server (`[auth]`); undefined for stdio, the static bearer token and
   * unauthenticated sessions.
   */
  readonly principal: Principal | undefined;
  readonly isRequest: boolean;
  readonly isResponse: boolean;
  readonly isError: boolean;
  readonly isNotification: boolean;
  /** The payload parsed (once, then cached); undefined when there is none. */
  json<T = any>(): T | undefined;
  /** The request's params parsed (responses and errors with `withRequest`). */
  requestJson<T = any>(): T | undefined;
  /** The `tools/call` params: of this request, or of the request this response answers. */
  toolCall(): ToolCall | undefined;
  /** The `tools/call` result of this response. */
  toolResult(): CallToolResult | undefined;
}

/** `tools/call` request params. */
export interface ToolCall {
  name: string;
  arguments?: { [key: string]: any };
  _meta?: { [key: string]: any };
  [key: string]: any;
}

/** A content block of a tool result or prompt message. */
export type ContentBlock =
  | { type: "text"; text: string; [key: string]: any }
  | { type: "image" | "audio"; data: string; mimeType: string; [key: string]: any }
  | { type: "resource"; resource: ResourceContents; [key: string]: any }
  | { type: "resource_link"; uri: string; name: string; [key: string]: any }
  | { type: string; [key: string]: any };

/** A `tools/call` result. */
export interface CallToolResult {
  content: ContentBlock[];
  structuredContent?: { [key: string]: any };
  isError?: boolean;
  [key: string]: any;
}

/** One part of a `resources/read` result, or an embedded resource. */
export interface ResourceContents {
  uri: string;
  mimeType?: string;
  text?: string;
  blob?: string;
  [key: string]: any;
}

/** A `resources/read` result. */
export interface ReadResourceResult {
  contents: ResourceContents[];
  [key: string]: any;
}

/** A message of a `prompts/get` result. */
export interface PromptMessage {
  role: "user" | "assistant";
  content: ContentBlock;
  [key: string]: any;
}

/** A `prompts/get` result. */
export interface GetPromptResult {
  description?: string;
  messages: PromptMessage[];
  [key: string]: any;
}

/** What the host does with a message. Build them with the helpers below. */
export type Verdict =
  | { readonly tag: "pass" }
  | { readonly tag: "rewrite"; readonly val: string }
  | { readonly tag: "respond"; readonly val: string }
  | { readonly tag: "reject"; readonly val: RpcError };

/** Forward the message unchanged. Returning `undefined` from a handler means the same. */
export function pass(): Verdict;
/** Forward with this payload instead. A string is JSON text as it is; anything else is serialized. */
export function rewrite(payload: string | object): Verdict;
/** Requests only: answer with this result, do not forward. A string is JSON text; anything else is serialized. */
export function respond(result: string | object): Verdict;
/** Requests: answer with this error. Responses/errors: deliver it instead. Notifications: drop. `data` is any JSON value. */
export function reject(code: number, message: string, data?: unknown): Verdict;
/** Whether a value is a verdict. */
export function isVerdict(value: unknown): value is Verdict;

/** JSON-RPC error codes. */
export declare const ErrorCode: {
  readonly PARSE_ERROR: -32700;
  readonly INVALID_REQUEST: -32600;
  readonly METHOD_NOT_FOUND: -32601;
  readonly INVALID_PARAMS: -32602;
  readonly INTERNAL_ERROR: -32603;
};

/** What a handler may return: a verdict, or nothing (pass). */
export type HandlerResult = Verdict | undefined | void;

/** Method names or patterns: `tools/call`, `resources/*`, `*`. */
export type Methods = string | string[];

/** Messages of these kinds with these methods. */
export interface Interest {
  /** Empty: every kind. */
  kinds: Kind[];
  /** Empty: every method. */
  methods: string[];
}

/** What the host sees of a plugin. */
export interface Manifest {
  name: string;
  version: string;
  /** The messages the plugin wants: those any interest takes. Empty: every message. */
  interests: Interest[];
  wantsRequest: boolean;
}

export interface PluginOptions {
  /** Shown in the proxy's logs and in errors sent to clients. */
  name: string;
  version?: string;
  /** Override the methods derived from the handlers. */
  methods?: string[];
  /** Override the kinds derived from the handlers. */
  kinds?: Kind[];
  /** Override whether responses carry their request's params. */
  wantsRequest?: boolean;
}

export declare class Plugin {
  readonly name: string;
  readonly version: string;
  /** A hook run once per instance before any message, with the config object (`{}` when none) and its JSON text. Throw to refuse it. */
  init(hook: (config: any, text: string) => void): this;
  /** Requests (all, or for these methods). */
  onRequest(handler: (msg: Message) => HandlerResult): this;
  onRequest(methods: Methods, handler: (msg: Message) => HandlerResult): this;
  /** Successful responses (all, or answering these methods). `withRequest` delivers the request's params too. */
  onResponse(handler: (msg: Message) => HandlerResult, options?: { withRequest?: boolean }): this;
  onResponse(methods: Methods, handler: (msg: Message) => HandlerResult, options?: { withRequest?: boolean }): this;
  /** Error answers (all, or answering these methods). */
  onError(handler: (msg: Message) => HandlerResult, options?: { withRequest?: boolean }): this;
  onError(methods: Methods, handler: (msg: Message) => HandlerResult, options?: { withRequest?: boolean }): this;
  /** Notifications (all, or for these methods). */
  onNotification(handler: (msg: Message) => HandlerResult): this;
  onNotification(methods: Methods, handler: (msg: Message) => HandlerResult): this;
  /** Every kind of message for these methods. */
  method(methods: Methods, handler: (msg: Message) => HandlerResult, options?: { withRequest?: boolean }): this;
  /** `tools/call` requests, optionally only for these tool names or `prefix*` patterns. */
  toolCall(handler: (call: ToolCall, msg: Message) => HandlerResult): this;
  toolCall(tools: string | string[], handler: (call: ToolCall, msg: Message) => HandlerResult): this;
  /** `tools/call` results; with tool names the request comes with the response. */
  toolResult(
    handler: (result: CallToolResult, msg: Message) => HandlerResult,
    options?: { withRequest?: boolean },
  ): this;
  toolResult(
    tools: string | string[],
    handler: (result: CallToolResult, msg: Message) => HandlerResult,
    options?: { withRequest?: boolean },
  ): this;
  /** Replace derived manifest values; call from an init hook to narrow the plugin by its config. */
  setManifest(values: { methods?: string[]; kinds?: Kind[]; wantsRequest?: boolean }): this;
  /** The manifest the host will see. */
  manifest(): Manifest;
  /** Runs the init hooks with this config (object or JSON text) and returns the manifest. Throws when refused. */
  load(config?: object | string): Manifest;
  /** Runs the handlers for one message and returns the verdict (for tests; the component calls it). */
  intercept(message: Message | ConstructorParameters<typeof Message>[0]): Verdict;
}

/** Creates a plugin; register handlers on it and `export default` it. */
export function createPlugin(options: PluginOptions): Plugin;

/** The proxy's log, tagged with the plugin's name. Several arguments are joined with spaces. */
export declare const log: {
  trace(...parts: unknown[]): void;
  debug(...parts: unknown[]): void;
  info(...parts: unknown[]): void;
  warn(...parts: unknown[]): void;
  error(...parts: unknown[]): void;
};

/** The plugin's key-value store, shared by all its instances. */
export declare const kv: {
  get(key: string): string | undefined;
  getBytes(key: string): Uint8Array | undefined;
  getJSON<T = any>(key: string): T | undefined;
  set(key: string, value: string | Uint8Array, options?: { ttlMs?: number }): void;
  setJSON(key: string, value: unknown, options?: { ttlMs?: number }): void;
  delete(key: string): void;
};

/** A failed `store` call. */
export declare class StoreError extends Error {
  constructor(kind: StoreErrorKind, detail?: string);
  readonly kind: StoreErrorKind;
  /** For `unavailable`: why. */
  readonly detail: string | undefined;
}
export type StoreErrorKind = "unavailable" | "timeout" | "too-large" | "not-a-number" | "denied";

/**
 * The plugin's key-value store (WIT 0.1.1): the entries of `kv`, with failures
 * thrown as StoreError; shared by every replica with `[store] url`.
 */
export declare const store: {
  get(key: string): string | undefined;
  getBytes(key: string): Uint8Array | undefined;
  getJSON<T = any>(key: string): T | undefined;
  set(key: string, value: string | Uint8Array, options?: { ttlMs?: number }): void;
  setJSON(key: string, value: unknown, options?: { ttlMs?: number }): void;
  delete(key: string): void;
  /** Adds `delta` (default 1) atomically; a new key expires after `ttlMs`, which later increments keep. */
  increment(key: string, delta?: number, options?: { ttlMs?: number }): number;
};

/**
 * A failed outbound HTTP request: `code` is the `wasi:http` error's name
 * (`HttpRequestDenied`, `DestinationIpProhibited`, `HttpResponseBodySize`,
 * `ConnectionTimeout`, ...), or undefined when the failure was found in the plugin.
 */
export declare class HttpError extends Error {
  constructor(message: string, code?: string);
  readonly code: string | undefined;
}

/** An HTTP response, its body read whole. */
export declare class HttpResponse {
  constructor(status: number, headers?: Array<[string, string]>, body?: Uint8Array);
  readonly status: number;
  /** Whether the status is 2xx. */
  readonly ok: boolean;
  /** The response's headers, in order, as `[name, value]`. */
  readonly headers: Array<[string, string]>;
  readonly body: Uint8Array;
  /** The first value of the header `name` (any case). */
  header(name: string): string | undefined;
  /** The body as text (UTF-8, invalid bytes replaced). */
  text(): string;
  /** The body parsed as JSON. */
  json<T = any>(): T;
}

export interface HttpInit {
  /** Default GET, or POST when there is a body. */
  method?: string;
  headers?: { [name: string]: string } | Array<[string, string]>;
  body?: string | Uint8Array;
  /** A limit for connecting, for the response to start and between its bytes (each). */
  timeoutMs?: number;
}

/**
 * Outbound HTTP over `wasi:http`, synchronous (handlers are): declare `http` in the
 * project's `capabilities.toml`; the proxy sends only what the user's `http` grant
 * allows. Responses of any status are returned; failures throw an HttpError.
 */
export declare const http: {
  fetch(url: string, init?: HttpInit): HttpResponse;
  get(url: string, init?: Omit<HttpInit, "method" | "body">): HttpResponse;
  /** POSTs `JSON.stringify(value)` with `content-type: application/json`. */
  postJson(url: string, value: unknown, init?: Omit<HttpInit, "method" | "body">): HttpResponse;
  HttpError: typeof HttpError;
  Response: typeof HttpResponse;
};

/** An error refusing a configuration; its message starts with `invalid config: `. */
export declare class ConfigError extends Error {
  constructor(detail: string);
}
/** Throws a ConfigError unless `value` is a plain object. */
export function expectObject<T extends object>(value: T | unknown, what?: string): T;
/** Throws a ConfigError naming the first key not in `allowed` (serde's wording). */
export function expectKeys<T extends object>(object: T, allowed: string[]): T;
/** Describes a JSON value's type as serde does (`integer \`5\``, `string "x"`, `sequence`). */
export function typeName(value: unknown): string;
/** Canonical JSON: keys sorted, no whitespace. */
export function canonicalJson(value: unknown): string;
/** A predicate for names matching exact names, `prefix*` patterns or `*`. */
export function matcher(patterns: string | string[]): (name: string) => boolean;

/** Helpers for common MCP payloads. */
export declare namespace mcp {
  function text(value: string): { type: "text"; text: string };
  function toolResult(
    content: string | ContentBlock[],
    options?: { structuredContent?: object; isError?: boolean },
  ): CallToolResult;
  function toolError(message: string): CallToolResult;
  function textOf(block: unknown): string | undefined;
  function textsOf(payload: CallToolResult | ReadResourceResult | GetPromptResult | unknown): string[];
  function editTexts(
    payload: CallToolResult | ReadResourceResult | GetPromptResult | unknown,
    edit: (text: string) => string | undefined,
  ): boolean;
  function canonicalJson(value: unknown): string;
}
