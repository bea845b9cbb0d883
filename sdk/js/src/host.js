// What the host offers plugins: logging and a key-value store shared by all
// instances of a plugin: `store`, whose calls throw a StoreError when they fail,
// and the older `kv`, which never throws (a failed read finds nothing, a failed
// write is dropped and logged by the proxy). Inside the component these call the WIT `host`
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

  // The `store` calls: the same entries; `fault` (set by testing's
  // `failStore`) makes every call throw it.
  check() {
    if (this.fault !== undefined) {
      throw this.fault;
    }
  }

  storeGet(key) {
    this.check();
    return this.kvGet(key);
  }

  storeSet(key, value, ttlMs) {
    this.check();
    this.kvSet(key, value, ttlMs);
  }

  storeDelete(key) {
    this.check();
    this.kvDelete(key);
  }

  storeIncrement(key, delta, ttlMs) {
    this.check();
    const current = this.kvGet(key);
    let sum;
    let expiresAt;
    if (current === undefined) {
      sum = BigInt(delta);
      expiresAt = ttlMs === undefined ? undefined : this.now() + Number(ttlMs);
    } else {
      const text = decoder.decode(current);
      if (!/^-?[0-9]+$/.test(text)) {
        throw new StoreError("not-a-number");
      }
      sum = BigInt(text) + BigInt(delta);
      expiresAt = this.entries.get(key).expiresAt;
    }
    if (sum !== BigInt.asIntN(64, sum)) {
      throw new StoreError("not-a-number");
    }
    this.entries.set(key, { value: encoder.encode(String(sum)), expiresAt });
    return sum;
  }
}

/**
 * A failed `store` call. `kind` is `unavailable` (the store cannot be reached;
 * `detail` says why), `timeout`, `too-large`, `not-a-number` (`increment` on a
 * value that is not an integer) or `denied` (the plugin has no store).
 */
export class StoreError extends Error {
  constructor(kind, detail) {
    super(detail === undefined ? `store: ${kind}` : `store: ${kind}: ${detail}`);
    this.name = "StoreError";
    this.kind = kind;
    this.detail = detail;
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

function ttlOf(options, what = "kv.set") {
  const ttlMs = options?.ttlMs;
  if (ttlMs === undefined || ttlMs === null) {
    return undefined;
  }
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs < 0) {
    throw new TypeError(`${what}: ttlMs must be a non-negative number, got ${String(ttlMs)}`);
  }
  return Math.ceil(ttlMs);
}

function bytesOf(value, what) {
  if (typeof value === "string") {
    return encoder.encode(value);
  }
  if (value instanceof Uint8Array) {
    return value;
  }
  throw new TypeError(`${what}: the value must be a string or a Uint8Array (use ${what}JSON for other values)`);
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
    current.kvSet(key, bytesOf(value, "kv.set"), ttlOf(options));
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

/**
 * The plugin's key-value store, with failures thrown as StoreError (WIT 0.1.1):
 * shared by all its instances and, with `[store] url`, by every replica of the
 * proxy; private to the plugin. The same entries as `kv`.
 */
export const store = Object.freeze({
  /** The value as text (UTF-8), or `undefined` when absent or expired. */
  get(key) {
    const bytes = current.storeGet(key);
    return bytes === undefined ? undefined : decoder.decode(bytes);
  },
  /** The value as bytes, or `undefined`. */
  getBytes(key) {
    return current.storeGet(key);
  },
  /** The value parsed as JSON, or `undefined`. */
  getJSON(key) {
    const text = this.get(key);
    return text === undefined ? undefined : JSON.parse(text);
  },
  /** Stores text (as UTF-8) or bytes; `{ ttlMs }` makes the entry expire. */
  set(key, value, options) {
    current.storeSet(key, bytesOf(value, "store.set"), ttlOf(options, "store.set"));
  },
  /** Stores `JSON.stringify(value)`. */
  setJSON(key, value, options) {
    this.set(key, JSON.stringify(value), options);
  },
  /** Removes the entry; succeeds when it is absent. */
  delete(key) {
    current.storeDelete(key);
  },
  /**
   * Adds `delta` (default 1) to the integer at `key` and returns the sum (a
   * number), atomically across instances and replicas. A missing key counts as
   * 0 and is created expiring after `{ ttlMs }`; later increments keep that
   * expiry.
   */
  increment(key, delta = 1, options) {
    if (!Number.isSafeInteger(delta)) {
      throw new TypeError(`store.increment: delta must be a safe integer, got ${String(delta)}`);
    }
    return Number(current.storeIncrement(key, delta, ttlOf(options, "store.increment")));
  },
});
