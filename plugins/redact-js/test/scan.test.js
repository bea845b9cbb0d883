// The scanner, the same cases as plugins/redact/src/scan.rs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseConfig, Rules } from "../src/rules.js";
import { PROMPT_RESULT, redact, RESOURCE_RESULT, TOOL_RESULT } from "../src/scan.js";

function rules() {
  return new Rules(
    parseConfig(JSON.parse(String.raw`{"defaults": ["email"], "rules": [{"name": "word", "pattern": "secret", "replacement": "\"\\"}]}`)),
  );
}

function run(raw, spec) {
  const redacted = redact(raw, spec, rules());
  return redacted === undefined ? undefined : JSON.parse(redacted.payload);
}

test("tool result text, embedded resource and structured content are redacted", () => {
  const raw = `{"content": [
      {"type": "text", "text": "mail bob@example.com"},
      {"type": "image", "data": "bob@example.com", "mimeType": "image/png"},
      {"type": "resource", "resource": {"uri": "file:///bob@example.com", "text": "bob@example.com"}}
    ],
    "structuredContent": {"owner": {"email": "bob@example.com"}, "bob@example.com": [1, "bob@example.com", true, null]},
    "_meta": {"note": "bob@example.com"}}`;
  assert.deepEqual(run(raw, TOOL_RESULT), {
    content: [
      { type: "text", text: "mail [REDACTED:email]" },
      { type: "image", data: "bob@example.com", mimeType: "image/png" },
      { type: "resource", resource: { uri: "file:///bob@example.com", text: "[REDACTED:email]" } },
    ],
    structuredContent: { owner: { email: "[REDACTED:email]" }, "bob@example.com": [1, "[REDACTED:email]", true, null] },
    _meta: { note: "bob@example.com" },
  });
});

test("untouched characters are kept exactly", () => {
  const raw = '{ "z":1, "content" : [ {"text":"a secret" ,"type":"text"} ] }';
  const redacted = redact(raw, TOOL_RESULT, rules());
  assert.equal(redacted.strings, 1);
  assert.deepEqual(redacted.rules, [0]);
  assert.equal(redacted.payload, '{ "z":1, "content" : [ {"text":"a \\"\\\\" ,"type":"text"} ] }');
});

test("escapes are decoded before matching and re-encoded after", () => {
  // `\n` before the address: on raw text an email pattern would start at the
  // `n` and the replacement would leave a dangling backslash.
  const raw = String.raw`{"content":[{"type":"text","text":"line\nbob@example.com\t\u0073ecret \"q\""}]}`;
  assert.equal(run(raw, TOOL_RESULT).content[0].text, 'line\n[REDACTED:email]\t"\\ "q"');
});

test("control characters are re-encoded the way serde_json does", () => {
  const raw = String.raw`{"content":[{"type":"text","text":"\u0001\b\f/ bob@example.com é"}]}`;
  const redacted = redact(raw, TOOL_RESULT, rules());
  assert.equal(redacted.payload, String.raw`{"content":[{"type":"text","text":"\u0001\b\f/ [REDACTED:email] é"}]}`);
});

test("resource and prompt results", () => {
  assert.deepEqual(run('{"contents":[{"uri":"a","text":"bob@example.com"},{"uri":"b","blob":"Ym9i"}]}', RESOURCE_RESULT), {
    contents: [
      { uri: "a", text: "[REDACTED:email]" },
      { uri: "b", blob: "Ym9i" },
    ],
  });
  const raw =
    '{"description":"bob@example.com","messages":[{"role":"user","content":{"type":"text","text":"hi bob@example.com"}}]}';
  assert.deepEqual(run(raw, PROMPT_RESULT), {
    description: "bob@example.com",
    messages: [{ role: "user", content: { type: "text", text: "hi [REDACTED:email]" } }],
  });
});

test("nothing to redact gives undefined", () => {
  assert.equal(run('{"content":[{"type":"text","text":"clean"}],"isError":false}', TOOL_RESULT), undefined);
  assert.equal(run('[1,2,{"a":"bob@example.com"}]', TOOL_RESULT), undefined, "not an object: left alone");
});

test("deep nesting is walked without recursion", () => {
  const depth = 100_000;
  const raw = `{"structuredContent":${"[".repeat(depth)}"bob@example.com"${"]".repeat(depth)}}`;
  const redacted = redact(raw, TOOL_RESULT, rules());
  assert.equal(redacted.strings, 1);
  assert.ok(redacted.payload.includes('"[REDACTED:email]"'));
});

test("malformed and undecodable input is an error", () => {
  const error = (raw) => {
    try {
      redact(raw, TOOL_RESULT, rules());
    } catch (e) {
      return String(e);
    }
    assert.fail("expected an error");
  };
  assert.equal(error('{"content": [}'), "malformed JSON at byte 13");
  assert.equal(error('{"content": "abc'), "malformed JSON at byte 12");
  assert.equal(error(String.raw`{"content":[{"text":"\ud800 bob@example.com"}]}`), "a string at byte 20 does not decode");
  assert.equal(error('{"é": 1, "content": [}'), "malformed JSON at byte 22", "offsets count UTF-8 bytes");
});

test("compact and spaced payloads give the same result", () => {
  const value = {
    content: [
      { type: "text", text: "a bob@example.com \"q\" \n secret" },
      { type: "resource", resource: { uri: "u", text: "bob@example.com" } },
    ],
    structuredContent: { list: ["bob@example.com", 1.5, null, { "bob@example.com": "secret" }] },
    _meta: { x: "bob@example.com" },
  };
  const compact = JSON.stringify(value);
  const spaced = JSON.stringify(value, null, 1);
  const fast = redact(compact, TOOL_RESULT, rules());
  const scanned = redact(spaced, TOOL_RESULT, rules());
  assert.deepEqual(JSON.parse(fast.payload), JSON.parse(scanned.payload));
  assert.equal(fast.strings, scanned.strings);
  assert.deepEqual(fast.rules, scanned.rules);
  assert.equal(fast.payload, JSON.stringify(JSON.parse(scanned.payload)), "compact in, compact out");
});
