import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { pass, respond } from "interpose-plugin";
import { advanceClock, errorResponse, kvKeys, request, resetHost, response, takeLogs } from "interpose-plugin/testing";

import { cacheable, cacheKey, hash, lookup, entry, parseConfig } from "../src/cache.js";
import plugin from "../src/plugin.js";

const call = (name, args) => request("tools/call", { name, arguments: args }, { server: "b1", session: "s1" });
const result = (name, args, value, fields = {}) =>
  response("tools/call", value, { request: { name, arguments: args }, server: "b1", session: "s1", ...fields });
const ok = (text) => ({ content: [{ type: "text", text }] });

beforeEach(() => {
  resetHost();
});

test("manifest: tools/call requests and responses, with the request", () => {
  assert.deepEqual(plugin.load({}), {
    name: "response-cache",
    version: "0.1.0",
    interests: [
      { kinds: ["request"], methods: ["tools/call"] },
      { kinds: ["response"], methods: ["tools/call"] },
    ],
    wantsRequest: true,
  });
});

test("a repeated call is answered from the cache, byte for byte", () => {
  plugin.load({});
  assert.equal(plugin.intercept(call("weather", { city: "Oslo", units: "C" })), pass(), "miss");
  const text = '{"content":[{"type":"text","text":"rain, 4°C"}],  "structuredContent":{"t":4}}';
  assert.equal(plugin.intercept(result("weather", { city: "Oslo", units: "C" }, text)), pass(), "responses pass");
  // Same arguments in another order: the same call.
  assert.deepEqual(plugin.intercept(call("weather", { units: "C", city: "Oslo" })), respond(text));
  assert.deepEqual(takeLogs(), [["debug", "answered tools/call `weather` from the cache"]]);
  assert.equal(plugin.intercept(call("weather", { city: "Bergen", units: "C" })), pass(), "other arguments");
  assert.equal(plugin.intercept(call("forecast", { city: "Oslo", units: "C" })), pass(), "other tool");
});

test("entries expire after ttl_ms", () => {
  plugin.load({ ttl_ms: 1000 });
  plugin.intercept(result("t", {}, ok("x")));
  advanceClock(999);
  assert.equal(plugin.intercept(call("t", {})).tag, "respond");
  advanceClock(1);
  assert.equal(plugin.intercept(call("t", {})), pass());
});

test("tool errors and JSON-RPC errors are never cached", () => {
  plugin.load({});
  plugin.intercept(result("t", { a: 1 }, { content: [{ type: "text", text: "boom" }], isError: true }));
  plugin.intercept(errorResponse("tools/call", -32603, "backend failed", { request: { name: "t", arguments: { a: 1 } } }));
  assert.deepEqual(kvKeys(), []);
  assert.equal(plugin.intercept(call("t", { a: 1 })), pass());
  plugin.intercept(result("t", { a: 1 }, { content: [], isError: false }));
  assert.equal(plugin.intercept(call("t", { a: 1 })).tag, "respond", "isError: false is a success");
});

test("only the configured tools are cached", () => {
  plugin.load({ tools: ["get_*", "search"] });
  for (const name of ["get_user", "search", "delete_user", "searches"]) {
    plugin.intercept(result(name, {}, ok(name)));
  }
  assert.equal(kvKeys().length, 2);
  assert.equal(plugin.intercept(call("get_user", {})).tag, "respond");
  assert.equal(plugin.intercept(call("delete_user", {})), pass());
});

test("results larger than max_entry_bytes are not cached", () => {
  plugin.load({ max_entry_bytes: 50 }); // ok("0123456789") is 45 bytes
  plugin.intercept(result("small", {}, ok("0123456789")));
  plugin.intercept(result("big", {}, ok("0123456789".repeat(3))));
  plugin.intercept(result("wide", {}, ok("éééééééééééé"))); // 47 characters, 59 bytes
  assert.equal(plugin.intercept(call("small", {})).tag, "respond");
  assert.equal(plugin.intercept(call("big", {})), pass());
  assert.equal(plugin.intercept(call("wide", {})), pass());
});

test("entries are per backend, and per session when asked", () => {
  plugin.load({});
  plugin.intercept(result("t", {}, ok("x")));
  assert.equal(plugin.intercept(request("tools/call", { name: "t" }, { server: "b2", session: "s1" })), pass());
  assert.equal(plugin.intercept(request("tools/call", { name: "t" }, { server: "b1", session: "s2" })).tag, "respond");
  resetHost();
  plugin.load({ per_session: true });
  plugin.intercept(result("t", {}, ok("x")));
  assert.equal(plugin.intercept(request("tools/call", { name: "t" }, { server: "b1", session: "s2" })), pass());
  assert.equal(plugin.intercept(request("tools/call", { name: "t" }, { server: "b1", session: "s1" })).tag, "respond");
});

test("missing arguments and empty arguments are the same call", () => {
  plugin.load({});
  plugin.intercept(response("tools/call", ok("x"), { request: { name: "t" }, server: "b1" }));
  assert.equal(plugin.intercept(request("tools/call", { name: "t", arguments: {} }, { server: "b1" })).tag, "respond");
});

test("a colliding key never returns another call's result", () => {
  const { identity } = cacheKey({ name: "t", arguments: { a: 1 } }, "b", undefined);
  const other = cacheKey({ name: "t", arguments: { a: 2 } }, "b", undefined).identity;
  assert.equal(lookup(entry(identity, "{}"), identity), "{}");
  assert.equal(lookup(entry(identity, "{}"), other), undefined);
  assert.equal(lookup(undefined, identity), undefined);
  assert.equal(hash("abc"), hash("abc"));
  assert.notEqual(hash("abc"), hash("abd"));
});

test("cacheable looks at the top-level isError only", () => {
  assert.ok(cacheable('{"content":[{"type":"text","text":"\\"isError\\": true"}]}', 1000));
  assert.ok(cacheable('{"structuredContent":{"isError":true},"content":[]}', 1000));
  assert.ok(!cacheable('{"content":[], "isError" : true}', 1000));
});

test("config errors", () => {
  assert.throws(() => parseConfig({ ttl: 5 }), {
    message: "invalid config: unknown field `ttl`, expected one of `ttl_ms`, `tools`, `max_entry_bytes`, `per_session`",
  });
  assert.throws(() => parseConfig({ ttl_ms: 0 }), {
    message: "invalid config: `ttl_ms` must be a whole number of milliseconds, at least 1; got integer `0`",
  });
  assert.throws(() => parseConfig({ tools: "get_*" }), {
    message: 'invalid config: `tools` must be a list of tool names or globs (`*`, `?`); got string "get_*"',
  });
  assert.throws(() => parseConfig({ max_entry_bytes: 1.5 }), {
    message: "invalid config: `max_entry_bytes` must be a whole number, at least 1; got floating point `1.5`",
  });
  assert.throws(() => plugin.load({ per_session: "yes" }), {
    message: 'invalid config: `per_session` must be true or false; got string "yes"',
  });
});

test("long arguments are keyed by a sample and still never confused", () => {
  plugin.load({});
  const long = (c) => ({ text: "a".repeat(300) + c + "a".repeat(300) });
  plugin.intercept(result("t", long("x"), ok("for x")));
  const hit = plugin.intercept(call("t", long("x")));
  assert.equal(JSON.parse(hit.val).content[0].text, "for x");
  // Differs only at a character the sample skips: same key, other identity.
  assert.equal(plugin.intercept(call("t", long("y"))), pass());
  plugin.intercept(result("t", long("y"), ok("for y")));
  assert.equal(JSON.parse(plugin.intercept(call("t", long("y"))).val).content[0].text, "for y");
  assert.equal(plugin.intercept(call("t", long("x"))), pass(), "overwritten, not confused");
});

test("a result's own ttlMs shortens the configured one, never lengthens it; 0 keeps it out", () => {
  plugin.load({ ttl_ms: 1000 });
  plugin.intercept(result("short", {}, { ...ok("x"), ttlMs: 300 }));
  plugin.intercept(result("long", {}, { ...ok("y"), ttlMs: 60_000 }));
  plugin.intercept(result("never", {}, { ...ok("z"), ttlMs: 0 }));
  assert.equal(plugin.intercept(call("never", {})), pass(), "ttlMs 0 is not cached");
  advanceClock(299);
  assert.equal(plugin.intercept(call("short", {})).tag, "respond");
  advanceClock(1);
  assert.equal(plugin.intercept(call("short", {})), pass(), "gone after the result's 300 ms");
  advanceClock(699);
  assert.equal(plugin.intercept(call("long", {})).tag, "respond");
  advanceClock(1);
  assert.equal(plugin.intercept(call("long", {})), pass(), "gone after the configured 1000 ms");
});

test("without a principal a private result is never cached; a public one is", () => {
  plugin.load({ per_session: true });
  plugin.intercept(result("mine", {}, { ...ok("secret"), cacheScope: "private" }));
  plugin.intercept(result("ours", {}, { ...ok("shared"), cacheScope: "public" }));
  assert.equal(plugin.intercept(call("mine", {})), pass());
  assert.equal(plugin.intercept(call("ours", {})).tag, "respond");
  assert.deepEqual(kvKeys().length, 1);
});

const principal = (subject, issuer = "https://idp.test") => ({ principal: { subject, issuer, scopes: [], claims: {} } });
const callAs = (name, who) => request("tools/call", { name, arguments: {} }, { server: "b1", session: "s1", ...who });

test("a private result is cached for its principal alone, never shared", () => {
  plugin.load({});
  const alice = principal("alice");
  plugin.intercept(result("mine", {}, { ...ok("alice's"), cacheScope: "private", ttlMs: 500 }, alice));
  assert.deepEqual(plugin.intercept(callAs("mine", alice)), respond(JSON.stringify({ ...ok("alice's"), cacheScope: "private", ttlMs: 500 })));
  assert.equal(plugin.intercept(callAs("mine", principal("bob"))), pass(), "another subject");
  assert.equal(plugin.intercept(callAs("mine", principal("alice", "https://other.idp"))), pass(), "the same subject of another issuer");
  assert.equal(plugin.intercept(call("mine", {})), pass(), "a session without a principal");
  // Bob's own private answer is his, and Alice's stays hers.
  plugin.intercept(result("mine", {}, { ...ok("bob's"), cacheScope: "private" }, principal("bob")));
  assert.equal(JSON.parse(plugin.intercept(callAs("mine", principal("bob"))).val).content[0].text, "bob's");
  assert.equal(JSON.parse(plugin.intercept(callAs("mine", alice)).val).content[0].text, "alice's");
  advanceClock(500);
  assert.equal(plugin.intercept(callAs("mine", alice)), pass(), "the result's own ttlMs holds");
  // A public result stays shared by everyone, principal or not.
  plugin.intercept(result("ours", {}, ok("shared"), alice));
  assert.equal(plugin.intercept(callAs("ours", principal("bob"))).tag, "respond");
  assert.equal(plugin.intercept(call("ours", {})).tag, "respond");
});

test("a retry carrying client input is neither answered from the cache nor stored", () => {
  plugin.load({});
  plugin.intercept(result("t", { a: 1 }, ok("first")));
  for (const retry of [{ inputResponses: { elicit: { action: "accept" } } }, { requestState: "opaque" }]) {
    const msg = request("tools/call", { name: "t", arguments: { a: 1 }, ...retry }, { server: "b1", session: "s1" });
    assert.equal(plugin.intercept(msg), pass(), JSON.stringify(retry));
    const answered = response("tools/call", ok("after input"), {
      request: { name: "t", arguments: { a: 1 }, ...retry },
      server: "b1",
      session: "s1",
    });
    plugin.intercept(answered);
  }
  assert.deepEqual(plugin.intercept(call("t", { a: 1 })), respond(JSON.stringify(ok("first"))), "the plain call's entry stands");
});
