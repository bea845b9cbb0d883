// A plugin: a name, an init hook and handlers registered per kind of message
// and method. The manifest the host sees is derived from the handlers, so the
// host never calls into the plugin for messages no handler wants.

import { matcher, normalizePatterns } from "./methods.js";
import { payloadIfRead, toMessage } from "./message.js";
import { isVerdict, pass } from "./verdict.js";

const KINDS = ["request", "response", "error", "notification"];
const PASS = pass();

/**
 * Creates a plugin. Register handlers on it, then `export default` it from the
 * plugin's entry module.
 *
 * @param {{ name: string, version?: string, methods?: string[], kinds?: string[], wantsRequest?: boolean }} options
 *   `name` and `version` show in the proxy's logs and errors. `methods`, `kinds`
 *   and `wantsRequest` override what would be derived from the handlers: with
 *   `methods` or `kinds`, the plugin asks for those methods x those kinds.
 */
export function createPlugin(options) {
  return new Plugin(options);
}

export class Plugin {
  constructor(options = {}) {
    if (typeof options.name !== "string" || options.name === "") {
      throw new TypeError("createPlugin: `name` is required");
    }
    this.name = options.name;
    this.version = options.version ?? "0.0.0";
    this._defaultOverride = manifestOverride(options);
    this._override = this._defaultOverride;
    this._initHooks = [];
    /** Registration order; each: { kinds, methods (patterns or undefined = all), all, match, fn, wantsRequest } */
    this._handlers = [];
    /** kind -> handlers for that kind, in registration order. */
    this._byKind = { request: [], response: [], error: [], notification: [] };
  }

  /**
   * Registers a hook run once per instance, before any message, with the
   * plugin's configuration as an object (`{}` when the user gave none) and,
   * second, as the JSON text it came as. Throw to refuse the configuration:
   * the error's message is shown to the user and the proxy does not start.
   */
  init(hook) {
    requireFunction(hook, "init");
    this._initHooks.push(hook);
    return this;
  }

  /** Every request, or those for these methods: `handler(msg)`. */
  onRequest(methods, handler) {
    return this._on(["request"], methods, handler);
  }

  /**
   * Every successful response, or those answering these methods: `handler(msg)`.
   * `{ withRequest: true }` delivers the request's params with the response
   * (`msg.requestPayload`, `msg.requestJson()`).
   */
  onResponse(methods, handler, options) {
    return this._on(["response"], methods, handler, options);
  }

  /** Every error answer, or those answering these methods: `handler(msg)`. */
  onError(methods, handler, options) {
    return this._on(["error"], methods, handler, options);
  }

  /** Every notification, or those for these methods: `handler(msg)`. */
  onNotification(methods, handler) {
    return this._on(["notification"], methods, handler);
  }

  /** Every kind of message (request, answers, notifications) for one method or pattern: `handler(msg)`. */
  method(methods, handler, options) {
    if (typeof methods === "function") {
      throw new TypeError("method: name the method (`plugin.method(\"resources/read\", fn)`)");
    }
    return this._on(KINDS, methods, handler, options);
  }

  /**
   * `tools/call` requests, optionally only for these tool names or patterns:
   * `handler(call, msg)` with `call` the parsed params (`{ name, arguments }`).
   */
  toolCall(tools, handler) {
    const [names, fn] = splitOptional(tools, handler, "toolCall");
    const wanted = names === undefined ? undefined : matcher(normalizePatterns(names, "tool name"));
    return this._on(["request"], "tools/call", (msg) => {
      const call = msg.toolCall();
      if (call === undefined || (wanted !== undefined && !wanted(call.name))) {
        return undefined;
      }
      return fn(call, msg);
    });
  }

  /**
   * `tools/call` results: `handler(result, msg)` with `result` the parsed
   * result (`{ content, structuredContent, isError }`). With tool names or
   * patterns, only results of those tools (the request then comes with the
   * response: `msg.toolCall()` gives it).
   */
  toolResult(tools, handler, options) {
    const [names, fn, opts] = typeof tools === "function" ? [undefined, tools, handler] : [tools, handler, options];
    requireFunction(fn, "toolResult");
    const wanted = names === undefined ? undefined : matcher(normalizePatterns(names, "tool name"));
    const withRequest = wanted !== undefined || Boolean(opts?.withRequest);
    return this._on(
      ["response"],
      "tools/call",
      (msg) => {
        if (wanted !== undefined) {
          const call = msg.toolCall();
          if (call === undefined || !wanted(call.name)) {
            return undefined;
          }
        }
        const result = msg.toolResult();
        return result === undefined ? undefined : fn(result, msg);
      },
      { withRequest },
    );
  }

  _on(kinds, methods, handler, options) {
    const [patterns, fn] = splitOptional(methods, handler, `on${kinds.length === 1 ? capitalize(kinds[0]) : ""}`);
    const list = patterns === undefined ? undefined : normalizeManifestMethods(patterns);
    const all = list === undefined || list.includes("*");
    const entry = {
      kinds,
      methods: all ? undefined : list,
      all,
      match: all ? () => true : matcher(list),
      fn,
      wantsRequest: Boolean(options?.withRequest),
    };
    this._handlers.push(entry);
    for (const kind of kinds) {
      this._byKind[kind].push(entry);
    }
    return this;
  }

  /**
   * Replaces what the manifest would derive from the handlers: `methods`,
   * `kinds` (the plugin then asks for those methods x those kinds; a missing
   * one is the handlers' union), `wantsRequest` (each optional). Call it from
   * an init hook to narrow the plugin by its configuration; `load` starts from
   * the values given to `createPlugin` again.
   */
  setManifest(values) {
    this._override = { ...this._override, ...definedOnly(manifestOverride(values)) };
    return this;
  }

  /**
   * The manifest derived from the handlers (and the overrides given to
   * `createPlugin` or `setManifest`): one interest (`{ kinds, methods }`) per
   * set of kinds a handler takes, so the host calls the plugin only for what
   * some handler wants; no interests at all means every message.
   */
  manifest() {
    const o = this._override;
    const overridden = o.methods !== undefined || o.kinds !== undefined;
    return {
      name: this.name,
      version: this.version,
      interests: overridden
        ? everythingOr([{ kinds: o.kinds ?? this._derivedKinds(), methods: o.methods ?? this._derivedMethods() }])
        : this._derivedInterests(),
      wantsRequest: o.wantsRequest ?? this._handlers.some((h) => h.wantsRequest),
    };
  }

  _derivedInterests() {
    /** The kinds a handler takes ("request|response") -> its methods (undefined: every method). */
    const byKinds = new Map();
    for (const handler of this._handlers) {
      const key = handler.kinds.join("|");
      if (!byKinds.has(key)) {
        byKinds.set(key, handler.methods && [...handler.methods]);
        continue;
      }
      const methods = byKinds.get(key);
      if (methods === undefined) {
        continue;
      }
      if (handler.methods === undefined) {
        byKinds.set(key, undefined);
      } else {
        methods.push(...handler.methods.filter((m) => !methods.includes(m)));
      }
    }
    const interests = [...byKinds].map(([key, methods]) => {
      const kinds = key.split("|");
      return { kinds: kinds.length === KINDS.length ? [] : kinds, methods: methods ?? [] };
    });
    return everythingOr(interests);
  }

  _derivedMethods() {
    if (this._handlers.length === 0 || this._handlers.some((h) => h.methods === undefined)) {
      return [];
    }
    return [...new Set(this._handlers.flatMap((h) => h.methods))];
  }

  _derivedKinds() {
    const kinds = KINDS.filter((kind) => this._byKind[kind].length > 0);
    // An empty list means every kind to the host.
    return kinds.length === KINDS.length ? [] : kinds;
  }

  /**
   * Runs the init hooks with this configuration (an object, or JSON text as
   * the host passes it) and returns the manifest. Throws with a message meant
   * for the user when the configuration is refused. The component calls this
   * once per instance; tests call it to set a plugin up.
   */
  load(config = {}) {
    let value = config;
    let text = config;
    if (typeof config === "string") {
      value = config.trim() === "" ? {} : parseConfigText(config);
    } else {
      text = JSON.stringify(config);
    }
    this._override = this._defaultOverride;
    for (const hook of this._initHooks) {
      hook(value, text);
    }
    return this.manifest();
  }

  /**
   * Runs the handlers registered for this message's kind and method, in
   * registration order, until one returns a verdict other than pass. Returns
   * that verdict, or pass. A handler that throws makes the call fail (inside
   * the component: a trap, handled by the plugin's failure policy).
   */
  intercept(message) {
    const handlers = this._byKind[message.kind];
    if (handlers === undefined || handlers.length === 0) {
      return PASS;
    }
    return this._run(handlers, toMessage(message));
  }

  /** The handlers for a kind of message, in registration order; empty when none. */
  _handlersFor(kind) {
    return this._byKind[kind] ?? [];
  }

  /** Runs `handlers` (those for `msg.kind`) on `msg`; see `intercept`. */
  _run(handlers, msg) {
    const method = msg.method;
    for (let i = 0; i < handlers.length; i++) {
      const handler = handlers[i];
      if (!handler.all && !handler.match(method)) {
        continue;
      }
      const verdict = settle(handler.fn(msg), msg);
      if (verdict !== PASS) {
        return verdict;
      }
    }
    return PASS;
  }
}

function settle(result, msg) {
  if (result === undefined || result === null) {
    return PASS;
  }
  if (!isVerdict(result)) {
    throw new TypeError(
      `a handler for ${msg.kind} \`${msg.method}\` returned ${describe(result)}; return a verdict ` +
        "(pass(), rewrite(payload), respond(result), reject(code, message)) or nothing",
    );
  }
  if (result.tag === "pass") {
    return PASS;
  }
  // Forwarding the same text again costs a copy out of the guest for nothing.
  // (Only checked against a payload the handler read: fetching it just to
  // compare would cost more than it saves.)
  if (result.tag === "rewrite" && result.val === payloadIfRead(msg)) {
    return PASS;
  }
  return result;
}

function describe(value) {
  if (typeof value?.then === "function") {
    return "a Promise (handlers must be synchronous)";
  }
  return typeof value === "object" ? "an object that is not a verdict" : `a ${typeof value}`;
}

function parseConfigText(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`invalid config: ${error.message}`);
  }
}

/** `interests`, or none when one of them takes every message (what none means). */
function everythingOr(interests) {
  return interests.some((i) => i.kinds.length === 0 && i.methods.length === 0) ? [] : interests;
}

function manifestOverride(values) {
  return {
    methods: values.methods === undefined ? undefined : normalizeManifestMethods(values.methods),
    kinds: values.kinds === undefined ? undefined : normalizeKinds(values.kinds),
    wantsRequest: values.wantsRequest === undefined ? undefined : Boolean(values.wantsRequest),
  };
}

function definedOnly(values) {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined));
}

function normalizeManifestMethods(methods) {
  return normalizePatterns(methods, "method");
}

function normalizeKinds(kinds) {
  if (!Array.isArray(kinds)) {
    throw new TypeError("kinds must be a list");
  }
  for (const kind of kinds) {
    if (!KINDS.includes(kind)) {
      throw new TypeError(`unknown kind ${JSON.stringify(kind)}; the kinds are ${KINDS.join(", ")}`);
    }
  }
  return [...kinds];
}

function splitOptional(first, second, what) {
  if (typeof first === "function" && second === undefined) {
    return [undefined, first];
  }
  requireFunction(second, what);
  return [first, second];
}

function requireFunction(fn, what) {
  if (typeof fn !== "function") {
    throw new TypeError(`${what}: expected a handler function`);
  }
}

function capitalize(word) {
  return word[0].toUpperCase() + word.slice(1);
}
