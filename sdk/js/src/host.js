// What the host offers plugins: logging and a key-value store shared by all
// instances of a plugin. Inside the component these call the WIT `host`
// imports (installed by ./component.js); under plain Node an in-memory
// stand-in answers instead, so plugin logic runs in unit tests.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The in-memory stand-in used outside the component (unit tests). */
export class MemoryHost {
  constructor() {
    /** @type {Array<[string, string]>} */
    this.logs = [];
    /** @type {Map<string, { value: Uint8Array, expiresAt: number | undefined }>} */
    this.entries = new Map();
    /**
     * The stand-in's clock in milliseconds. It stands still until a test moves
     * it, so an entry's expiry never depends on how fast the test runs.
     */
    this.clock = 0;
  }

  now() {
    return this.clock;
  }

  log(level, message) {
    this.logs.push([level, message]);
  }

  kvGet(key) {
    const entry = this.entries.get(key);
    if (entry === undefined) {
      return undefined;
    }
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value.slice();
  }

  kvSet(key, value, ttlMs) {
    const expiresAt = ttlMs === undefined ? undefined : this.now() + Number(ttlMs);
    this.entries.set(key, { value: value.slice(), expiresAt });
  }

  kvDelete(key) {
    this.entries.delete(key);
  }
}

let current = new MemoryHost();

/** Replaces the host implementation (the component glue installs the WIT imports). */
export function installHost(host) {
  current = host;
}

/** The host implementation in use. */
export function currentHost() {
  return current;
}

function format(parts) {
  if (parts.length === 1 && typeof parts[0] === "string") {
    return parts[0];
  }
  return parts.map((part) => (typeof part === "string" ? part : describe(part))).join(" ");
}

function describe(value) {
  if (value instanceof Error) {
    return value.stack || String(value);
  }
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text;
  } catch {
    return String(value);
  }
}

/**
 * Writes to the proxy's log, tagged with the plugin's name. Several arguments
 * are joined with spaces; non-strings are shown as JSON.
 */
export const log = Object.freeze({
  trace: (...parts) => current.log("trace", format(parts)),
  debug: (...parts) => current.log("debug", format(parts)),
  info: (...parts) => current.log("info", format(parts)),
  warn: (...parts) => current.log("warn", format(parts)),
  error: (...parts) => current.log("error", format(parts)),
});

function ttlOf(options) {
  const ttlMs = options?.ttlMs;
  if (ttlMs === undefined || ttlMs === null) {
    return undefined;
  }
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs < 0) {
    throw new TypeError(`kv.set: ttlMs must be a non-negative number, got ${String(ttlMs)}`);
  }
  return Math.ceil(ttlMs);
}

/**
 * The plugin's key-value store, shared by all its instances (each instance has
 * its own memory: module variables are per instance) and kept for the life of
 * the proxy. Bounded by the host: when full, entries closest to expiry go first.
 */
export const kv = Object.freeze({
  /** The value as text (UTF-8), or `undefined` when absent or expired. */
  get(key) {
    const bytes = current.kvGet(key);
    return bytes === undefined ? undefined : decoder.decode(bytes);
  },
  /** The value as bytes, or `undefined`. */
  getBytes(key) {
    return current.kvGet(key);
  },
  /** The value parsed as JSON, or `undefined`. */
  getJSON(key) {
    const text = this.get(key);
    return text === undefined ? undefined : JSON.parse(text);
  },
  /** Stores text (as UTF-8) or bytes; `{ ttlMs }` makes the entry expire. */
  set(key, value, options) {
    let bytes;
    if (typeof value === "string") {
      bytes = encoder.encode(value);
    } else if (value instanceof Uint8Array) {
      bytes = value;
    } else {
      throw new TypeError("kv.set: the value must be a string or a Uint8Array (use kv.setJSON for other values)");
    }
    current.kvSet(key, bytes, ttlOf(options));
  },
  /** Stores `JSON.stringify(value)`. */
  setJSON(key, value, options) {
    this.set(key, JSON.stringify(value), options);
  },
  /** Removes the entry; nothing happens when it is absent. */
  delete(key) {
    current.kvDelete(key);
  },
});
