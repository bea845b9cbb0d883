// The component glue: connects a Plugin to the WIT world `interceptor-plugin`.
// Only the bundle built by scripts/build-js-plugin.sh imports this module; the
// rest of the SDK never touches the WIT imports, so plugin logic runs under
// plain Node.
//
// The top level of the bundle runs once, at build time (componentize-js
// snapshots the initialized engine), so anything a plugin prepares at module
// level, such as compiled regular expressions, costs nothing per instance.

import { kvDelete, kvGet, kvSet, log } from "interpose:plugin/host@0.1.0";

import { installHost } from "./host.js";

installHost({
  log,
  kvGet,
  kvSet(key, value, ttlMs) {
    kvSet(key, value, ttlMs === undefined ? undefined : BigInt(ttlMs));
  },
  kvDelete,
});

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

    intercept(fields) {
      const verdict = plugin.intercept(fields);
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
