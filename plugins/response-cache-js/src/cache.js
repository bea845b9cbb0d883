// What the response cache decides, apart from the plugin glue: its
// configuration, cache keys, and which results may be stored.

import { canonicalJson, ConfigError, expectKeys, typeName } from "interpose-plugin";

export const DEFAULTS = Object.freeze({
  ttl_ms: 60_000,
  tools: Object.freeze(["*"]),
  max_entry_bytes: 65_536,
  per_session: false,
});

/** Checks the configuration; returns it with defaults filled in. */
export function parseConfig(config) {
  expectKeys(config, Object.keys(DEFAULTS));
  const ttlMs = config.ttl_ms ?? DEFAULTS.ttl_ms;
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) {
    throw new ConfigError(`\`ttl_ms\` must be a whole number of milliseconds, at least 1; got ${describe(ttlMs)}`);
  }
  const maxEntryBytes = config.max_entry_bytes ?? DEFAULTS.max_entry_bytes;
  if (!Number.isSafeInteger(maxEntryBytes) || maxEntryBytes < 1) {
    throw new ConfigError(`\`max_entry_bytes\` must be a whole number, at least 1; got ${describe(maxEntryBytes)}`);
  }
  const tools = config.tools ?? DEFAULTS.tools;
  if (!Array.isArray(tools) || tools.some((glob) => typeof glob !== "string" || glob === "")) {
    throw new ConfigError(`\`tools\` must be a list of tool names or globs (\`*\`, \`?\`); got ${describe(tools)}`);
  }
  const perSession = config.per_session ?? DEFAULTS.per_session;
  if (typeof perSession !== "boolean") {
    throw new ConfigError(`\`per_session\` must be true or false; got ${describe(perSession)}`);
  }
  return { ttlMs, maxEntryBytes, tools: [...tools], perSession, isCached: globMatcher(tools) };
}

function describe(value) {
  return typeName(value);
}

/** A predicate for tool names: `*` matches any run of characters, `?` any one character. */
export function globMatcher(globs) {
  if (globs.includes("*")) {
    return () => true;
  }
  const exact = new Set(globs.filter((glob) => !/[*?]/.test(glob)));
  const patterns = globs
    .filter((glob) => /[*?]/.test(glob))
    .map((glob) => new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[\\s\\S]*").replace(/\?/g, "[\\s\\S]")}$`, "u"));
  return (name) => exact.has(name) || patterns.some((re) => re.test(name));
}

/**
 * Where a call's result is cached: `key` (short, for the key-value store) and
 * `identity` (the whole call, stored with the result and compared on a hit, so
 * two calls whose keys collide never share a result).
 */
export function cacheKey(call, server, session, principal) {
  const parts = [server, session ?? null, call.name, call.arguments ?? {}];
  // A private result's: for this principal only (issuer and subject name one party).
  if (principal !== undefined) {
    parts.push([principal.issuer, principal.subject]);
  }
  const identity = canonicalJson(parts);
  if (identity.length <= SHORT_IDENTITY) {
    return { key: `tools/call:${identity}`, identity };
  }
  return { key: `tools/call#${hash(sample(identity))}`, identity };
}

/** Identities up to this many characters are their own key (no hashing at all). */
const SHORT_IDENTITY = 512;

/**
 * What a long identity's key is hashed from: its length, both ends, and every
 * 61st character. Hashing all of it would cost ~0.4 µs a character in the
 * component's interpreter; a collision costs only a miss (the stored identity
 * is compared on every hit).
 */
function sample(identity) {
  let out = `${identity.length}:${identity.slice(0, 64)}${identity.slice(-64)}`;
  for (let i = 64; i < identity.length - 64; i += 61) {
    out += identity[i];
  }
  return out;
}

/** Packs an identity and a result's JSON text into one stored value. */
export function entry(identity, resultText) {
  // canonicalJson never produces a raw newline, so the first one ends the identity.
  return `${identity}\n${resultText}`;
}

/** The result text stored for `identity`, or `undefined` (absent, or another call's). */
export function lookup(stored, identity) {
  if (stored === undefined) {
    return undefined;
  }
  const newline = stored.indexOf("\n");
  if (newline !== identity.length || !stored.startsWith(identity)) {
    return undefined;
  }
  return stored.slice(newline + 1);
}

const encoder = new TextEncoder();

/** Whether a result is cacheable: at most `maxBytes` of UTF-8, and not a tool error. */
export function cacheable(resultText, maxBytes) {
  // A UTF-16 unit is 1 to 3 bytes of UTF-8: decide without encoding when possible.
  if (resultText.length > maxBytes) {
    return false;
  }
  if (resultText.length * 3 > maxBytes && encoder.encode(resultText).length > maxBytes) {
    return false;
  }
  if (!resultText.includes('"isError"')) {
    return true;
  }
  let result;
  try {
    result = JSON.parse(resultText);
  } catch {
    return false;
  }
  return result === null || typeof result !== "object" || result.isError !== true;
}

/**
 * How a result may be cached, from what it says of itself (2026-07-28):
 * `{ ttlMs, private }`, or `undefined` when not at all. Its `ttlMs` shortens the
 * configured `ttlMs`, never lengthens it, and `0` keeps it out; `cacheScope:
 * "private"` means it is meant for one client: cached for its principal only.
 */
export function lifetime(resultText, ttlMs) {
  if (!resultText.includes('"ttlMs"') && !resultText.includes('"cacheScope"')) {
    return { ttlMs, private: false };
  }
  let result;
  try {
    result = JSON.parse(resultText);
  } catch {
    return undefined;
  }
  if (result === null || typeof result !== "object") {
    return undefined;
  }
  const scope = { private: result.cacheScope === "private" };
  const own = result.ttlMs;
  if (own === undefined) {
    return { ttlMs, ...scope };
  }
  if (!Number.isSafeInteger(own) || own <= 0) {
    return undefined;
  }
  return { ttlMs: Math.min(own, ttlMs), ...scope };
}

/**
 * Whether a call is the retry of an earlier one that asked the client for input
 * (2026-07-28: it carries `inputResponses` or `requestState`): its answer depends
 * on that input, so it is neither answered from the cache nor stored.
 */
export function isRetry(call) {
  return call.inputResponses !== undefined || call.requestState !== undefined;
}

/** cyrb53: a fast 53-bit string hash, as 14 hex digits. Not for security: hits are checked against the identity. */
export function hash(text) {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, "0");
}
