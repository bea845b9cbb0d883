// interpose plugin: caches `tools/call` results in the host's key-value store
// and answers repeated calls (same tool, same arguments) from it, without
// reaching the backend. Tool errors (`isError: true`) and JSON-RPC errors are
// never cached; a result's own `ttlMs` and `cacheScope` (2026-07-28) are
// honoured, and retries carrying client input never touch the cache. See the
// README for the configuration.

import { createPlugin, kv, log, respond } from "interpose-plugin";

import { cacheable, cacheKey, entry, isRetry, lifetime, lookup, parseConfig } from "./cache.js";

const plugin = createPlugin({ name: "response-cache", version: "0.1.0" });

let config = parseConfig({});

plugin.init((value) => {
  config = parseConfig(value);
});

function keyFor(call, msg) {
  return cacheKey(call, msg.server, config.perSession ? msg.session : undefined);
}

// A call: answer from the cache when its result is there.
plugin.toolCall((call, msg) => {
  if (!config.isCached(call.name) || isRetry(call)) {
    return undefined;
  }
  const { key, identity } = keyFor(call, msg);
  const result = lookup(kv.get(key), identity);
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
    const ttlMs = lifetime(result, config.ttlMs);
    if (ttlMs === undefined) {
      return undefined;
    }
    const { key, identity } = keyFor(call, msg);
    kv.set(key, entry(identity, result), { ttlMs });
    return undefined;
  },
  { withRequest: true },
);

export default plugin;
