// The plugin's behaviour, the same cases as plugins/redact/src/lib.rs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ErrorCode, pass, reject } from "interpose-plugin";
import { request, response, takeLogs } from "interpose-plugin/testing";
import { Message } from "interpose-plugin";

import plugin from "../src/plugin.js";

function loaded(config = {}) {
  plugin.load(config);
  takeLogs();
  return plugin;
}

test("manifest asks only for results of the three methods", () => {
  assert.deepEqual(plugin.load({}), {
    name: "redact",
    version: "0.1.0",
    interests: [{ kinds: ["response"], methods: ["tools/call", "resources/read", "prompts/get"] }],
    wantsRequest: false,
  });
});

test("a secret in a tool result is rewritten", () => {
  const result = { content: [{ type: "text", text: "key=AKIAIOSFODNN7EXAMPLE" }], isError: false };
  const verdict = loaded().intercept(response("tools/call", result));
  assert.equal(verdict.tag, "rewrite");
  assert.deepEqual(JSON.parse(verdict.val), {
    content: [{ type: "text", text: "key=[REDACTED:aws-access-key]" }],
    isError: false,
  });
  assert.deepEqual(takeLogs(), [["debug", "redacted 1 string(s) in a tools/call result (rules: aws-access-key)"]]);
});

test("clean results and other messages pass", () => {
  const redact = loaded();
  const clean = JSON.stringify({ content: [{ type: "text", text: "all good" }] });
  assert.equal(redact.intercept(response("tools/call", clean)), pass());
  const secret = JSON.stringify({ content: [{ type: "text", text: "bob@example.com" }] });
  assert.equal(redact.intercept(request("tools/call", secret)), pass(), "requests");
  assert.equal(redact.intercept(response("tools/list", secret)), pass(), "other methods");
  const noPayload = new Message({ direction: "to-client", kind: "response", method: "tools/call" });
  assert.equal(redact.intercept(noPayload), pass());
});

test("defaults false without rules redacts nothing", () => {
  const secret = JSON.stringify({ content: [{ type: "text", text: "bob@example.com" }] });
  assert.equal(loaded({ defaults: false }).intercept(response("tools/call", secret)), pass());
});

test("an undecodable result fails closed", () => {
  const raw = String.raw`{"content":[{"type":"text","text":"\ud800 bob@example.com"}]}`;
  assert.deepEqual(
    loaded().intercept(response("tools/call", raw)),
    reject(ErrorCode.INTERNAL_ERROR, "redact: the tools/call result was withheld: a string at byte 34 does not decode"),
  );
});

test("a malformed result fails closed, with the byte offset", () => {
  const raw = '{"content":[{"type":"text","text":"é bob@example.com"}], }';
  assert.deepEqual(
    loaded().intercept(response("resources/read", raw.replace("content", "contents"))),
    reject(ErrorCode.INTERNAL_ERROR, "redact: the resources/read result was withheld: malformed JSON at byte 59"),
  );
});

test("config errors are reported", () => {
  assert.throws(() => plugin.load({ rule: [] }), {
    message: "invalid config: unknown field `rule`, expected `rules` or `defaults` at line 1 column 7",
  });
  assert.throws(() => plugin.load({ rules: [{ name: "a" }] }), {
    message: "invalid config: missing field `pattern` at line 1 column 22",
  });
  assert.throws(() => plugin.load('{"rules": 5}'), {
    message: "invalid config: invalid type: integer `5`, expected a sequence at line 1 column 11",
  });
});

test("the config arrives as JSON text in the component", () => {
  const manifest = plugin.load('{"defaults": ["email"]}');
  assert.equal(manifest.name, "redact");
  const secret = JSON.stringify({ content: [{ type: "text", text: "AKIAIOSFODNN7EXAMPLE bob@example.com" }] });
  const verdict = plugin.intercept(response("tools/call", secret));
  assert.equal(JSON.parse(verdict.val).content[0].text, "AKIAIOSFODNN7EXAMPLE [REDACTED:email]");
});
