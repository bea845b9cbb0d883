// The rules, the same cases as plugins/redact/src/rules.rs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { luhn, parseConfig, Rules } from "../src/rules.js";
import { translate } from "../src/rust-regex.js";

function rules(config) {
  return new Rules(parseConfig(typeof config === "string" ? JSON.parse(config) : config));
}

function safe(pattern) {
  return translate(pattern).escapeSafe;
}

test("escape safety of user patterns", () => {
  assert.ok(safe("secret-[0-9a-f]{32}"));
  assert.ok(safe("(?i)password=[A-Za-z0-9]+"));
  assert.ok(safe("Müller"));
  assert.ok(!safe(String.raw`password:\s*\S+`), "\\s matches a newline");
  assert.ok(!safe("a.b"), ". matches a quote");
  assert.ok(!safe(String.raw`\bword\b`), "assertions");
  assert.ok(!safe("https://x"), "a slash may be escaped");
  assert.ok(!safe("[^,]+"));
});

test("luhn accepts test card numbers and rejects others", () => {
  const digits = (s) => [...s].map(Number);
  assert.ok(luhn(digits("4111111111111111")));
  assert.ok(luhn(digits("378282246310005")));
  assert.ok(luhn(digits("5555555555554444")));
  assert.ok(!luhn(digits("4111111111111112")));
});

test("each built-in redacts its example and nothing else", () => {
  const all = rules({});
  const cases = [
    ["key AKIAIOSFODNN7EXAMPLE here", "key [REDACTED:aws-access-key] here"],
    ["Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "Authorization: [REDACTED:bearer-token]"],
    ["OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuv1234", "OPENAI_API_KEY=[REDACTED:api-key]"],
    ["token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB", "token [REDACTED:api-key]"],
    ["mail alice.smith+tag@example.co.uk now", "mail [REDACTED:email] now"],
    ["card 4111 1111 1111 1111.", "card [REDACTED:card-number]."],
    ["card 4111-1111-1111-1111", "card [REDACTED:card-number]"],
    [
      "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA==\n-----END RSA PRIVATE KEY-----\ny",
      "x\n[REDACTED:private-key]\ny",
    ],
    ["-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN", "[REDACTED:private-key]"],
  ];
  for (const [input, expected] of cases) {
    assert.equal(all.redact(input, []), expected, input);
  }
  for (const clean of [
    "the bearer of bad news",
    "order 4111111111111112 (bad checksum)",
    "timestamp 1700000000000123",
    "pi 3.4111111111111111",
    "risk-assessment-framework-version-two",
    "plain text with no secrets @ all",
  ]) {
    assert.equal(all.redact(clean, []), undefined, clean);
  }
});

test("built-in word boundaries are ASCII, as in Rust (?-u:\\b)", () => {
  const all = rules({ defaults: ["aws-access-key", "card-number"] });
  assert.equal(all.redact("éAKIAIOSFODNN7EXAMPLE", []), "é[REDACTED:aws-access-key]", "é is not an ASCII word character");
  assert.equal(all.redact("«AKIAIOSFODNN7EXAMPLE»", []), "«[REDACTED:aws-access-key]»");
  assert.equal(all.redact("x4111111111111111", []), undefined);
});

test("user rules come first and expand captures", () => {
  const r = rules({
    defaults: ["email"],
    rules: [
      { name: "ticket", pattern: String.raw`TICKET-(\d+)`, replacement: "TICKET-#$1#" },
      { name: "codename", pattern: String.raw`(?i)project\s+falcon` },
    ],
  });
  const hits = [];
  assert.equal(
    r.redact("TICKET-42 by bob@example.com on Project Falcon", hits),
    "TICKET-#42# by [REDACTED:email] on [REDACTED:codename]",
  );
  assert.deepEqual(r.names(hits), ["ticket", "codename", "email"]);
  assert.equal(r.redact("key AKIAIOSFODNN7EXAMPLE", hits), undefined, "aws rule not chosen");
});

test("replacement templates follow Rust's expansion rules", () => {
  const expand = (pattern, replacement, text) =>
    rules({ defaults: false, rules: [{ name: "r", pattern, replacement }] }).redact(text, []);
  assert.equal(expand("(?P<user>[a-z]+)@(\\w+)", "${user} at $2", "bob@host"), "bob at host");
  assert.equal(expand("(a)(b)", "$1a|$2", "ab"), "|b", "$1a names group `1a`, which does not exist");
  assert.equal(expand("(a)(b)", "${1}a|$$|$|$9|${x", "ab"), "aa|$|$||${x");
  assert.equal(expand("a", "$0$0", "a"), "aa");
});

test("the raw filter is dropped for patterns it cannot check", () => {
  const filtered = rules({ rules: [{ name: "n", pattern: "secret[0-9]+" }] });
  assert.notEqual(filtered.rawFilters, undefined);
  assert.ok(!filtered.mayMatchRaw('{"text": "nothing here"}'));
  assert.ok(filtered.mayMatchRaw('{"text": "secret42"}'));
  assert.ok(filtered.mayMatchRaw(String.raw`{"text": "\u0073ecret42"}`), "\\u escapes force a scan");

  const unfiltered = rules({ rules: [{ name: "n", pattern: String.raw`secret:\s+\S+` }] });
  assert.equal(unfiltered.rawFilters, undefined);
  assert.ok(unfiltered.mayMatchRaw('{"text": "nothing here"}'));
});

test("the default raw filters find each built-in's example", () => {
  const all = rules({});
  for (const text of [
    "AKIAIOSFODNN7EXAMPLE",
    "BEARER x",
    "sk-abcdefghijklmnopqrst",
    "a@b",
    "4111 1111 1111 1111",
    "-----BEGIN EC PRIVATE KEY-----",
  ]) {
    assert.ok(all.mayMatchRaw(JSON.stringify({ text })), text);
  }
  assert.ok(!all.mayMatchRaw(JSON.stringify({ text: "nothing to see, 2024-01-01, @ home" })));
});

test("config errors name the problem", () => {
  const err = (config) => {
    try {
      rules(config);
    } catch (error) {
      return error.message;
    }
    assert.fail("expected an error");
  };
  assert.equal(
    err({ defaults: ["emails"] }),
    "invalid config: `defaults` names an unknown rule `emails`; the built-in rules are: " +
      "private-key, aws-access-key, bearer-token, api-key, email, card-number",
  );
  assert.equal(
    err({ rules: [{ name: "x", pattern: "a*" }] }),
    "invalid config: rule `x`: the pattern matches the empty string",
  );
  assert.match(err({ rules: [{ name: "x", pattern: "(" }] }), /^invalid config: rule `x`: invalid pattern:/);
  assert.equal(err({ rules: [{ name: "", pattern: "x" }] }), "invalid config: a rule has an empty `name`");
  assert.match(err({ defaults: "yes" }), /expected true, false, or a list of built-in rule names/);
  assert.equal(
    err({ rules: [{ name: "x", pattern: "y", replace: "z" }] }),
    "invalid config: unknown field `replace`, expected one of `name`, `pattern`, `replacement` at line 1 column 45",
  );
});

test("only rules that match the original text apply, each to the previous output", () => {
  const r = rules({
    defaults: ["email"],
    rules: [
      { name: "makes-email", pattern: "MAKE", replacement: "a@b.cd" },
      { name: "eats-x", pattern: "x+", replacement: "" },
    ],
  });
  const hits = [];
  assert.equal(r.redact("MAKE x", hits), "a@b.cd ", "the email made by the first rule is not redacted");
  assert.deepEqual(r.names(hits), ["makes-email", "eats-x"]);
  assert.equal(r.redact("MAKE bob@example.com", []), "[REDACTED:email] [REDACTED:email]", "a matching rule applies to the previous output");
});
