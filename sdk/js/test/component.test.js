// The component glue (src/component.js) against a fake of the WIT host
// interface, in the shapes componentize-js uses: s64 and u64 as BigInt,
// result<_, string> as { tag, val }, variants as { tag, val }.
import assert from "node:assert/strict";
import { register } from "node:module";
import { test } from "node:test";

register("./support/wit-host-hooks.mjs", import.meta.url);

const { interceptorFor } = await import("interpose-plugin/component");
const { createPlugin, kv, log, reject, respond } = await import("interpose-plugin");

const plugin = createPlugin({ name: "glue", version: "0.2.0" });
plugin.init((config) => {
  if (config.refuse) {
    throw new Error("invalid config: refused");
  }
  if (config.throwString) {
    throw "plain string";
  }
});
plugin.toolCall((call) => {
  log.info(`call ${call.name}`);
  kv.set("last", call.name, { ttlMs: 1500 });
  if (call.name === "no") {
    return reject(-32602, "refused", { tool: call.name });
  }
  return respond({ content: [], last: kv.get("last") });
});
plugin.onError((msg) => (msg.error.code === -32000 ? reject(msg.error.code - 1, `${msg.error.message}!`) : undefined));

const interceptor = interceptorFor(plugin);

const witMessage = (fields) => ({
  direction: "to-server",
  kind: "request",
  method: "tools/call",
  id: "1",
  payload: undefined,
  error: undefined,
  requestPayload: undefined,
  session: "s",
  server: "b",
  ...fields,
});

test("init returns ok(manifest) or err(text), never throws", () => {
  assert.deepEqual(interceptor.init("{}"), {
    tag: "ok",
    val: { name: "glue", version: "0.2.0", methods: [], kinds: ["request", "error"], wantsRequest: false },
  });
  assert.deepEqual(interceptor.init('{"refuse": true}'), { tag: "err", val: "invalid config: refused" });
  assert.deepEqual(interceptor.init('{"throwString": true}'), { tag: "err", val: "plain string" });
  assert.equal(interceptor.init("{oops").tag, "err");
});

test("intercept converts verdicts and host calls to the WIT shapes", () => {
  interceptor.init("{}");
  globalThis.witCalls.length = 0;
  const verdict = interceptor.intercept(witMessage({ payload: '{"name":"yes"}' }));
  assert.deepEqual(verdict, { tag: "respond", val: '{"content":[],"last":"yes"}' });
  const [logCall, setCall, getCall] = globalThis.witCalls;
  assert.deepEqual(logCall, ["log", "info", "call yes"]);
  assert.equal(setCall[0], "kvSet");
  assert.deepEqual([...setCall[2]], [...new TextEncoder().encode("yes")]);
  assert.equal(setCall[3], 1500n, "ttl-ms is a u64: a BigInt");
  assert.deepEqual(getCall, ["kvGet", "last"]);

  assert.deepEqual(interceptor.intercept(witMessage({ payload: '{"name":"no"}' })), {
    tag: "reject",
    val: { code: -32602n, message: "refused", data: '{"tool":"no"}' },
  });
  assert.deepEqual(interceptor.intercept(witMessage({ method: "tools/list", payload: "{}" })), { tag: "pass" });
});

test("error answers arrive with a BigInt code and leave with one", () => {
  const error = witMessage({ kind: "error", direction: "to-client", error: { code: -32000n, message: "busy", data: undefined } });
  assert.deepEqual(interceptor.intercept(error), {
    tag: "reject",
    val: { code: -32001n, message: "busy!", data: undefined },
  });
});
