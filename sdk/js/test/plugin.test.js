import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import {
  createPlugin,
  ErrorCode,
  expectKeys,
  kv,
  log,
  mcp,
  pass,
  reject,
  respond,
  rewrite,
  store,
  StoreError,
} from "interpose-plugin";
import {
  advanceClock,
  errorResponse,
  failStore,
  kvKeys,
  notification,
  request,
  resetHost,
  response,
  takeLogs,
} from "interpose-plugin/testing";

beforeEach(() => {
  resetHost();
});

test("the manifest is derived from the handlers", () => {
  const plugin = createPlugin({ name: "p", version: "1.2.3" });
  plugin.toolCall(() => undefined);
  plugin.onResponse(["resources/read", "prompts/*"], () => undefined);
  assert.deepEqual(plugin.load(), {
    name: "p",
    version: "1.2.3",
    interests: [
      { kinds: ["request"], methods: ["tools/call"] },
      { kinds: ["response"], methods: ["resources/read", "prompts/*"] },
    ],
    wantsRequest: false,
  });

  const everything = createPlugin({ name: "all" });
  everything.onNotification(() => undefined);
  everything.method("tools/call", () => undefined);
  assert.deepEqual(everything.load(), {
    name: "all",
    version: "0.0.0",
    interests: [{ kinds: ["notification"], methods: [] }, { kinds: [], methods: ["tools/call"] }],
    wantsRequest: false,
  });

  const anything = createPlugin({ name: "any" });
  anything.method("*", () => undefined);
  anything.onRequest("tools/call", () => undefined);
  assert.deepEqual(anything.load().interests, [], "a handler for every message: no interests, which means all");

  const cache = createPlugin({ name: "c" });
  cache.toolResult(["get_*"], () => undefined);
  assert.deepEqual(cache.load().wantsRequest, true, "a tool-name filter on results needs the request");
});

test("createPlugin and setManifest override the derived manifest", () => {
  const plugin = createPlugin({ name: "p", kinds: ["request"] });
  plugin.onRequest(() => undefined);
  plugin.onResponse(() => undefined);
  plugin.init((config) => {
    if (config.only) {
      plugin.setManifest({ methods: config.only });
    }
  });
  assert.deepEqual(plugin.load({ only: ["tools/call"] }).interests, [{ kinds: ["request"], methods: ["tools/call"] }]);
  assert.deepEqual(plugin.load({}).interests, [{ kinds: ["request"], methods: [] }], "load starts afresh");
  assert.throws(() => plugin.setManifest({ methods: ["a*b"] }), /`\*` may only end a pattern/);
  assert.throws(() => plugin.setManifest({ kinds: ["reply"] }), /unknown kind "reply"/);
});

test("init gets the config as an object; a throw refuses it", () => {
  const plugin = createPlugin({ name: "p" });
  const seen = [];
  plugin.init((config) => {
    seen.push(config);
    expectKeys(config, ["limit"]);
  });
  plugin.load('{"limit": 3}');
  plugin.load("");
  plugin.load();
  assert.deepEqual(seen, [{ limit: 3 }, {}, {}]);
  assert.throws(() => plugin.load('{"limt": 3}'), {
    message: "invalid config: unknown field `limt`, expected `limit`",
  });
  assert.throws(() => plugin.load("{"), /^Error: invalid config: /);
});

test("handlers run in order until one decides; undefined and pass() continue", () => {
  const plugin = createPlugin({ name: "p" });
  const calls = [];
  plugin.onRequest((msg) => {
    calls.push(`any:${msg.method}`);
  });
  plugin.onRequest("tools/*", () => {
    calls.push("tools");
    return pass();
  });
  plugin.toolCall("danger_*", (call) => reject(ErrorCode.INVALID_PARAMS, `no ${call.name}`));
  plugin.toolCall(() => {
    calls.push("after");
    return respond(mcp.toolResult("from the plugin"));
  });
  plugin.load();

  assert.deepEqual(plugin.intercept(request("tools/call", { name: "danger_zone" })), {
    tag: "reject",
    val: { code: -32602, message: "no danger_zone", data: undefined },
  });
  assert.deepEqual(calls, ["any:tools/call", "tools"]);
  calls.length = 0;
  assert.deepEqual(plugin.intercept(request("tools/call", { name: "safe" })), {
    tag: "respond",
    val: '{"content":[{"type":"text","text":"from the plugin"}]}',
  });
  assert.deepEqual(calls, ["any:tools/call", "tools", "after"]);
  calls.length = 0;
  assert.equal(plugin.intercept(request("resources/list", {})), pass());
  assert.deepEqual(calls, ["any:resources/list"]);
  assert.equal(plugin.intercept(notification("notifications/initialized")), pass(), "no handler for the kind");
});

test("verdict helpers", () => {
  assert.equal(pass(), pass());
  assert.deepEqual(rewrite({ a: 1 }), { tag: "rewrite", val: '{"a":1}' });
  assert.deepEqual(rewrite('{"a": 1}'), { tag: "rewrite", val: '{"a": 1}' }, "strings are JSON text");
  assert.deepEqual(reject(-32000, "nope", { why: "policy" }), {
    tag: "reject",
    val: { code: -32000, message: "nope", data: '{"why":"policy"}' },
  });
  assert.throws(() => reject("x", "y"), TypeError);
  assert.throws(() => rewrite(undefined), TypeError);
});

test("rewriting to the same text passes instead", () => {
  const plugin = createPlugin({ name: "p" });
  plugin.onResponse((msg) => rewrite(msg.payload));
  plugin.load();
  assert.equal(plugin.intercept(response("tools/call", '{"content":[]}')), pass());
});

test("a handler that returns something other than a verdict is a bug, reported loudly", () => {
  const plugin = createPlugin({ name: "p" });
  plugin.onRequest(() => ({ content: [] }));
  plugin.load();
  assert.throws(() => plugin.intercept(request("tools/call", {})), /returned an object that is not a verdict/);
  const asyncPlugin = createPlugin({ name: "q" });
  asyncPlugin.onRequest(async () => undefined);
  asyncPlugin.load();
  assert.throws(() => asyncPlugin.intercept(request("x", {})), /handlers must be synchronous/);
});

test("messages parse their payloads lazily and once", () => {
  const msg = response("tools/call", '{"content":[{"type":"text","text":"hi"}]}', { request: { name: "t", arguments: { a: 1 } } });
  assert.equal(msg.json(), msg.json());
  assert.deepEqual(msg.toolCall(), { name: "t", arguments: { a: 1 } });
  assert.deepEqual(mcp.textsOf(msg.toolResult()), ["hi"]);
  assert.ok(msg.isResponse && !msg.isRequest);
  const error = errorResponse("tools/call", -32601, "unknown");
  assert.deepEqual(error.error, { code: -32601, message: "unknown", data: undefined });
  assert.equal(error.toolResult(), undefined);
  assert.equal(request("tools/list", {}).toolCall(), undefined);
});

test("toolResult handlers get the parsed result", () => {
  const plugin = createPlugin({ name: "p" });
  plugin.toolResult((result, msg) => {
    if (mcp.editTexts(result, (text) => text.toUpperCase())) {
      return rewrite(result);
    }
    return msg.kind === "response" ? undefined : pass();
  });
  plugin.load();
  const verdict = plugin.intercept(response("tools/call", { content: [{ type: "text", text: "quiet" }, { type: "image", data: "" }] }));
  assert.deepEqual(JSON.parse(verdict.val).content[0], { type: "text", text: "QUIET" });
  assert.equal(plugin.intercept(response("tools/call", { content: [] })), pass());
});

test("log and kv use the in-memory host outside the component", () => {
  log.info("hello", { n: 1 }, 2);
  log.warn("careful");
  assert.deepEqual(takeLogs(), [
    ["info", 'hello {"n":1} 2'],
    ["warn", "careful"],
  ]);
  kv.set("a", "héllo");
  kv.setJSON("b", { x: [1] }, { ttlMs: 50 });
  kv.set("c", new Uint8Array([1, 2, 3]));
  assert.equal(kv.get("a"), "héllo");
  assert.deepEqual(kv.getJSON("b"), { x: [1] });
  assert.deepEqual([...kv.getBytes("c")], [1, 2, 3]);
  assert.deepEqual(kvKeys().sort(), ["a", "b", "c"]);
  advanceClock(50);
  assert.equal(kv.get("b"), undefined, "expired");
  kv.delete("a");
  kv.delete("missing");
  assert.equal(kv.get("a"), undefined);
  assert.throws(() => kv.set("x", 5), TypeError);
  assert.throws(() => kv.set("x", "v", { ttlMs: -1 }), TypeError);
});

test("store increments and throws StoreError in the in-memory host", () => {
  assert.equal(store.increment("n", 1, { ttlMs: 100 }), 1);
  assert.equal(store.increment("n", 4), 5);
  assert.equal(store.get("n"), "5");
  assert.equal(kv.get("n"), "5", "one store behind both");
  advanceClock(100);
  assert.equal(store.get("n"), undefined, "the first increment's TTL holds");
  store.setJSON("j", { a: 1 });
  assert.deepEqual(store.getJSON("j"), { a: 1 });
  assert.throws(() => store.increment("j"), (e) => e instanceof StoreError && e.kind === "not-a-number");
  failStore("unavailable", "connection refused");
  assert.throws(
    () => store.get("j"),
    (e) => e instanceof StoreError && e.kind === "unavailable" && e.detail === "connection refused",
  );
  assert.deepEqual(kv.getJSON("j"), { a: 1 }, "kv never throws");
  failStore(undefined);
  store.delete("j");
  assert.equal(store.get("j"), undefined);
  assert.throws(() => store.increment("k", 0.5), TypeError);
});

test("mcp helpers", () => {
  assert.deepEqual(mcp.toolError("bad"), { content: [{ type: "text", text: "bad" }], isError: true });
  assert.deepEqual(mcp.toolResult([mcp.text("a")], { structuredContent: { a: 1 } }), {
    content: [{ type: "text", text: "a" }],
    structuredContent: { a: 1 },
  });
  const prompt = { messages: [{ role: "user", content: { type: "resource", resource: { uri: "x", text: "t" } } }] };
  assert.deepEqual(mcp.textsOf(prompt), ["t"]);
  assert.deepEqual(mcp.textsOf({ contents: [{ uri: "a", text: "1" }, { uri: "b", blob: "" }] }), ["1"]);
  assert.equal(mcp.canonicalJson({ b: [2, { d: 1, c: null }], a: "x", u: undefined }), '{"a":"x","b":[2,{"c":null,"d":1}]}');
});

test("registration mistakes are reported at once", () => {
  const plugin = createPlugin({ name: "p" });
  assert.throws(() => plugin.onRequest("tools/call"), /expected a handler function/);
  assert.throws(() => plugin.onRequest([], () => undefined), /non-empty list/);
  assert.throws(() => plugin.method(() => undefined), /name the method/);
  assert.throws(() => createPlugin({}), /`name` is required/);
});
