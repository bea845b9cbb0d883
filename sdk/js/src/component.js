// The component glue: connects a Plugin to the WIT world `interceptor-plugin`.
// Only the bundle built by scripts/build-js-plugin.sh imports this module; the
// rest of the SDK never touches the WIT imports, so plugin logic runs under
// plain Node.
//
// The top level of the bundle runs once, at build time (componentize-js
// snapshots the initialized engine), so anything a plugin prepares at module
// level, such as compiled regular expressions, costs nothing per instance.

import { kvDelete, kvGet, kvSet, log } from "interpose:plugin/host@0.1.1";
import * as witStore from "interpose:plugin/store@0.1.1";

import { installHost, StoreError } from "./host.js";
import { HttpError, installHttp } from "./http.js";
import { endLoan, lentMessage } from "./message.js";

installHost({
  log,
  kvGet,
  kvSet(key, value, ttlMs) {
    kvSet(key, value, ttlMs === undefined ? undefined : BigInt(ttlMs));
  },
  kvDelete,
  storeGet: (key) => storeCall(() => witStore.get(key)),
  storeSet: (key, value, ttlMs) => storeCall(() => witStore.set(key, value, ttlOf(ttlMs))),
  storeDelete: (key) => storeCall(() => witStore.delete(key)),
  storeIncrement: (key, delta, ttlMs) => storeCall(() => witStore.increment(key, BigInt(delta), ttlOf(ttlMs))),
});

// Replaced by ./component-http.js in a component built with `wasi:http`.
installHttp(() => {
  throw new HttpError(
    "HTTP request failed: the plugin was built without wasi:http; declare `http` in its capabilities.toml and build it again",
  );
});

function ttlOf(ttlMs) {
  return ttlMs === undefined ? undefined : BigInt(ttlMs);
}

// A WIT `result` import throws its `err` case, wrapped (as jco's ComponentError,
// the case in `payload`) or not; either way it becomes a StoreError.
function storeCall(call) {
  try {
    return call();
  } catch (error) {
    const payload = error !== null && typeof error === "object" && "payload" in error ? error.payload : error;
    if (payload !== null && typeof payload === "object" && typeof payload.tag === "string") {
      throw new StoreError(payload.tag, payload.val);
    }
    throw error;
  }
}

const WIT_PASS = { tag: "pass" };

/** The `interceptor` export for a plugin. */
export function interceptorFor(plugin) {
  return {
    init(config) {
      try {
        return { tag: "ok", val: plugin.load(config) };
      } catch (error) {
        // componentize-js traps on a thrown Error instead of returning `err`.
        return { tag: "err", val: errorText(error) };
      }
    },

    // Direction, kind and method arrive as arguments (no host call); `resource`
    // is the rest of the WIT `message`, borrowed for this call, from which
    // handlers fetch the parts they read.
    intercept(direction, kind, method, resource) {
      const handlers = plugin._handlersFor(kind);
      if (handlers.length === 0) {
        return WIT_PASS;
      }
      const msg = lentMessage(direction, kind, method, resource);
      let verdict;
      try {
        verdict = plugin._run(handlers, msg);
      } finally {
        endLoan(msg);
      }
      switch (verdict.tag) {
        case "pass":
          return WIT_PASS;
        case "reject":
          return {
            tag: "reject",
            val: { code: BigInt(verdict.val.code), message: verdict.val.message, data: verdict.val.data },
          };
        default:
          return verdict;
      }
    },
  };
}

function errorText(error) {
  if (error instanceof Error) {
    return error.message;
  }
  return typeof error === "string" ? error : String(error);
}
