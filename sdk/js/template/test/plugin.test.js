import assert from "node:assert/strict";
import { test } from "node:test";

import { ErrorCode, pass, reject } from "interpose-plugin";
import { request, response, takeLogs } from "interpose-plugin/testing";

import plugin from "../src/plugin.js";

test("asks only for tools/call requests", () => {
  const manifest = plugin.load({});
  assert.deepEqual(manifest, {
    name: "my-plugin",
    version: "0.1.0",
    interests: [{ kinds: ["request"], methods: ["tools/call"] }],
    wantsRequest: false,
  });
});

test("refuses tools with the prefix and passes the others", () => {
  plugin.load({ prefix: "rm_" });
  const refused = plugin.intercept(request("tools/call", { name: "rm_repo", arguments: {} }));
  assert.deepEqual(refused, reject(ErrorCode.INVALID_PARAMS, "tool `rm_repo` is not allowed here"));
  assert.equal(plugin.intercept(request("tools/call", { name: "list_repos" })), pass());
  assert.deepEqual(takeLogs(), [["debug", "allowed list_repos"]]);
  assert.equal(plugin.intercept(response("tools/call", { content: [] })), pass(), "responses are not touched");
});

test("refuses unknown config keys", () => {
  assert.throws(() => plugin.load({ prefixes: [] }), {
    message: "invalid config: unknown field `prefixes`, expected `prefix`",
  });
});
