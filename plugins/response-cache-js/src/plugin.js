// interpose plugin: caches `tools/call` results in the host's key-value store
// and answers repeated calls (same tool, same arguments) from it, without
// reaching the backend. Tool errors (`isError: true`) and JSON-RPC errors are
// never cached; a result's own `ttlMs` and `cacheScope` (2026-07-28) are
// honoured (a private result is cached for its principal alone), and retries
// carrying client input never touch the cache. See the README for the
// configuration.

import { createPlugin, kv, log, respond } from "interpose-plugin";

import { cacheable, cacheKey, entry, isRetry, lifetime, lookup, parseConfig } from "./cache.js";

const plugin = createPlugin({ name: "response-cache", version: "0.1.0" });

let config = parseConfig({});

plugin.init((value) => {
  config = parseConfig(value);
});

/** The shared entry's key, or with `principal` that principal's own. */
function keyFor(call, msg, principal) {
  return cacheKey(call, msg.server, config.perSession ? msg.session : undefined, principal);
}

function cached(call, msg, principal) {
  const { key, identity } = keyFor(call, msg, principal);
  return lookup(kv.get(key), identity);
}

// A call: answer from the cache when its result is there: a shared one, else one
// private to the session's principal.
plugin.toolCall((call, msg) => {
  if (!config.isCached(call.name) || isRetry(call)) {
    return undefined;
  }
  let result = cached(call, msg, undefined);
  if (result === undefined) {
    const principal = msg.principal;
    result = principal === undefined ? undefined : cached(call, msg, principal);
  }
  if (result === undefined) {
    return undefined;
  }
  log.debug(`answered tools/call \`${call.name}\` from the cache`);
  return respond(result);
});

// A result: store it. The request comes with the response (`withRequest`),
// so the plugin keeps no state of its own between the two.
plugin.onResponse(
  "tools/call",
  (msg) => {
    const call = msg.toolCall();
    const result = msg.payload;
    if (call === undefined || result === undefined || !config.isCached(call.name) || isRetry(call)) {
      return undefined;
    }
    if (!cacheable(result, config.maxEntryBytes)) {
      return undefined;
    }
    const life = lifetime(result, config.ttlMs);
    if (life === undefined) {
      return undefined;
    }
    // Without a principal, a private result has no one to be kept for.
    const principal = life.private ? msg.principal : undefined;
    if (life.private && principal === undefined) {
      return undefined;
    }
    const { key, identity } = keyFor(call, msg, principal);
    kv.set(key, entry(identity, result), { ttlMs: life.ttlMs });
    return undefined;
  },
  { withRequest: true },
);

export default plugin;
