// The policy: configuration, and the decisions about one tool. A port of
// plugins/tool-policy/src/policy.rs, with serde's checks and messages.

import * as glob from "./glob.js";
import {
  afterKey,
  compareKeys,
  invalidTypeIndex,
  mapEntries,
  Obj,
  Arr,
  parse,
  SerdeError,
  unexpected,
} from "interpose-plugin/serde-json";

const FIELDS = ["allow", "deny", "hide", "hide_denied", "rename", "pin_arguments", "strip_arguments", "require"];
const RULE_FIELDS = ["tools", "scopes", "subjects"];

/**
 * Reads the configuration text the way `parse_config::<Config>` does in Rust
 * (a `deny_unknown_fields` struct, every field defaulted). Throws an Error
 * whose message starts with `invalid config: `.
 */
export function parseConfig(text) {
  const source = text.trim() === "" ? "{}" : text;
  try {
    return readConfig(source);
  } catch (error) {
    if (error instanceof SerdeError) {
      throw new Error(`invalid config: ${error.message}`);
    }
    throw error;
  }
}

function readConfig(text) {
  const { value, start, end } = parse(text);
  if (!(value instanceof Obj) && !(value instanceof Arr)) {
    throw new SerdeError(text, `invalid type: ${unexpected(value)}, expected struct Config`, invalidTypeIndex(value, start, end));
  }
  const config = {
    allow: [],
    deny: [],
    hide: [],
    hide_denied: true,
    rename: new Map(),
    pin_arguments: new Map(),
    strip_arguments: new Map(),
    require: [],
  };
  // serde also reads a struct from a sequence of its fields, in order.
  const entries = value instanceof Arr ? positionalEntries(text, value) : value.entries;
  const seen = new Set();
  for (const entry of entries) {
    if (!FIELDS.includes(entry.key)) {
      throw new SerdeError(text, `unknown field \`${entry.key}\`, expected one of ${FIELDS.map((f) => `\`${f}\``).join(", ")}`, afterKey(text, entry));
    }
    if (seen.has(entry.key)) {
      throw new SerdeError(text, `duplicate field \`${entry.key}\``, afterKey(text, entry));
    }
    seen.add(entry.key);
    const at = [entry.valueStart, entry.valueEnd];
    switch (entry.key) {
      case "allow":
      case "deny":
      case "hide":
        config[entry.key] = stringList(text, entry.value, at);
        break;
      case "hide_denied":
        if (typeof entry.value !== "boolean") {
          throw invalidType(text, entry.value, at, "a boolean");
        }
        config.hide_denied = entry.value;
        break;
      case "rename":
        config.rename = map(text, entry.value, at, (v, vAt) => {
          if (typeof v !== "string") {
            throw invalidType(text, v, vAt, "a string");
          }
          return v;
        });
        break;
      case "pin_arguments":
        config.pin_arguments = map(text, entry.value, at, (v, vAt) => {
          if (!(v instanceof Obj)) {
            throw invalidType(text, v, vAt, "a map");
          }
          return new Map(mapEntries(v));
        });
        break;
      case "strip_arguments":
        config.strip_arguments = map(text, entry.value, at, (v, vAt) => stringList(text, v, vAt));
        break;
      case "require":
        if (!(entry.value instanceof Arr)) {
          throw invalidType(text, entry.value, at, "a sequence");
        }
        config.require = entry.value.map((rule, i) => readRule(text, rule, entry.value.spans[i]));
        break;
    }
  }
  return config;
}

/** One `require` rule, as serde reads a `deny_unknown_fields` struct. */
function readRule(text, value, at) {
  if (!(value instanceof Obj)) {
    throw invalidType(text, value, at, "struct Rule");
  }
  const rule = { tools: undefined, scopes: [], subjects: [] };
  const seen = new Set();
  for (const entry of value.entries) {
    if (!RULE_FIELDS.includes(entry.key)) {
      throw new SerdeError(text, `unknown field \`${entry.key}\`, expected one of ${RULE_FIELDS.map((f) => `\`${f}\``).join(", ")}`, afterKey(text, entry));
    }
    if (seen.has(entry.key)) {
      throw new SerdeError(text, `duplicate field \`${entry.key}\``, afterKey(text, entry));
    }
    seen.add(entry.key);
    rule[entry.key] = stringList(text, entry.value, [entry.valueStart, entry.valueEnd]);
  }
  if (rule.tools === undefined) {
    // Reported once the map is closed: just past its `}`.
    throw new SerdeError(text, "missing field `tools`", value.end + 1);
  }
  return rule;
}

/** `scope \`a\`` or `scopes \`a\`, \`b\``. */
function listed(what, names) {
  return `${what}${names.length === 1 ? "" : "s"} ${names.map((n) => `\`${n}\``).join(", ")}`;
}

/**
 * Why `principal` may not call what `rule` covers, or `undefined` when it may.
 * Says what the rule asks for, never what the token holds beyond it.
 */
function refuses(rule, principal) {
  if (principal === undefined) {
    const required = {};
    if (rule.scopes.length > 0) {
      required.scopes = rule.scopes;
    }
    if (rule.subjects.length > 0) {
      required.subjects = rule.subjects;
    }
    return { kind: "denied", why: "requires an authenticated principal", required };
  }
  if (rule.subjects.length > 0 && !rule.subjects.includes(principal.subject)) {
    return { kind: "denied", why: `is reserved for ${listed("subject", rule.subjects)}`, required: { subjects: rule.subjects } };
  }
  const missing = rule.scopes.filter((scope) => !principal.scopes.includes(scope));
  if (missing.length > 0) {
    return { kind: "denied", why: `requires ${listed("scope", missing)}`, required: { scopes: missing } };
  }
  return undefined;
}

/** The fields in order; more elements than fields are "trailing characters". */
function* positionalEntries(text, value) {
  for (let i = 0; i < value.length; i++) {
    const [valueStart, valueEnd] = value.spans[i];
    if (i >= FIELDS.length) {
      throw new SerdeError(text, "trailing characters", valueStart, "peek");
    }
    yield { key: FIELDS[i], value: value[i], valueStart, valueEnd };
  }
}

function invalidType(text, value, [start, end], expected) {
  return new SerdeError(text, `invalid type: ${unexpected(value)}, expected ${expected}`, invalidTypeIndex(value, start, end));
}

function stringList(text, value, at) {
  if (!(value instanceof Arr)) {
    throw invalidType(text, value, at, "a sequence");
  }
  return value.map((item, i) => {
    if (typeof item !== "string") {
      throw invalidType(text, item, value.spans[i], "a string");
    }
    return item;
  });
}

/** A `BTreeMap<String, T>`: sorted by key, a later duplicate wins. */
function map(text, value, at, readValue) {
  if (!(value instanceof Obj)) {
    throw invalidType(text, value, at, "a map");
  }
  const out = new Map();
  for (const entry of value.entries) {
    out.set(entry.key, readValue(entry.value, [entry.valueStart, entry.valueEnd]));
  }
  return new Map([...out.entries()].sort(([a], [b]) => compareKeys(a, b)));
}

/** Whether a client may see and call a tool: `{ kind: "allowed" | "hidden" | "denied", why }`. */
const ALLOWED = Object.freeze({ kind: "allowed" });
const HIDDEN = Object.freeze({ kind: "hidden" });

export class Policy {
  constructor(config) {
    const toExposed = new Map();
    for (const [exposed, backend] of config.rename) {
      if (exposed === "" || backend === "") {
        throw new Error("invalid config: `rename` has an empty tool name");
      }
      const other = toExposed.get(backend);
      toExposed.set(backend, exposed);
      if (other !== undefined) {
        throw new Error(`invalid config: \`rename\` maps both \`${other}\` and \`${exposed}\` to the backend tool \`${backend}\``);
      }
    }
    const patterns = [
      ...config.allow,
      ...config.deny,
      ...config.hide,
      ...config.pin_arguments.keys(),
      ...config.strip_arguments.keys(),
    ];
    if (config.require.some((rule) => rule.tools.length === 0)) {
      throw new Error("invalid config: a `require` rule names no tools");
    }
    patterns.push(...config.require.flatMap((rule) => rule.tools));
    if (patterns.some((pattern) => pattern === "")) {
      throw new Error("invalid config: an empty tool pattern");
    }
    this.allow = config.allow;
    this.deny = config.deny;
    this.hide = config.hide;
    this.hideDenied = config.hide_denied;
    this.toBackend = config.rename;
    this.toExposed = toExposed;
    this.pin = config.pin_arguments;
    this.strip = config.strip_arguments;
    this.require = config.require;
  }

  /** Whether the policy can change anything at all. */
  isNoop() {
    return (
      this.allow.length === 0 &&
      this.deny.length === 0 &&
      this.hide.length === 0 &&
      this.toBackend.size === 0 &&
      this.pin.size === 0 &&
      this.strip.size === 0 &&
      this.require.length === 0
    );
  }

  /** The backend tool a client's name refers to; `undefined` when the name is not exposed. */
  backendName(exposed) {
    const backend = this.toBackend.get(exposed);
    if (backend !== undefined) {
      return backend;
    }
    return this.toExposed.has(exposed) ? undefined : exposed;
  }

  /** The name a backend tool is shown under; `undefined` when another tool took its name through `rename`. */
  exposedName(backend) {
    const exposed = this.toExposed.get(backend);
    if (exposed !== undefined) {
      return exposed;
    }
    return this.toBackend.has(backend) ? undefined : backend;
  }

  /**
   * What the client may do with the tool `exposed` (backend name `backend`).
   * `msg.principal` is read only when a `require` rule covers the tool.
   */
  access(exposed, backend, msg) {
    const hit = (pattern) => glob.matches(pattern, exposed) || glob.matches(pattern, backend);
    if (this.hide.some(hit)) {
      return HIDDEN;
    }
    const denied = this.deny.find(hit);
    if (denied !== undefined) {
      return { kind: "denied", why: `matches deny pattern \`${denied}\`` };
    }
    if (this.allow.length > 0 && !this.allow.some(hit)) {
      return { kind: "denied", why: "matches no allow pattern" };
    }
    for (const rule of this.require) {
      if (rule.tools.some(hit)) {
        const denial = refuses(rule, msg.principal);
        if (denial !== undefined) {
          return denial;
        }
      }
    }
    return ALLOWED;
  }

  /** Whether `tools/list` shows a tool with this access. */
  listed(access) {
    return access.kind === "allowed" || (access.kind === "denied" && !this.hideDenied);
  }

  /** The pinned arguments for a tool, from every matching pattern, in sorted pattern order. */
  pinned(exposed, backend) {
    const out = [];
    for (const [pattern, args] of this.pin) {
      if (glob.matches(pattern, exposed) || glob.matches(pattern, backend)) {
        out.push(...args);
      }
    }
    return out;
  }

  /** The stripped argument names for a tool, from every matching pattern. */
  stripped(exposed, backend) {
    const out = [];
    for (const [pattern, names] of this.strip) {
      if (glob.matches(pattern, exposed) || glob.matches(pattern, backend)) {
        out.push(...names);
      }
    }
    return out;
  }
}
