// interpose-plugin: write interpose interceptor plugins in JavaScript.
// See ../README.md for a walkthrough and ../index.d.ts for the types.

export { createPlugin, Plugin } from "./plugin.js";
export { Message } from "./message.js";
export { ErrorCode, pass, rewrite, respond, reject, isVerdict } from "./verdict.js";
export { log, kv, store, StoreError } from "./host.js";
export { http, HttpError } from "./http.js";
export { ConfigError, expectKeys, expectObject, typeName } from "./config.js";
export * as mcp from "./mcp.js";
export { canonicalJson } from "./mcp.js";
export { matcher } from "./methods.js";
