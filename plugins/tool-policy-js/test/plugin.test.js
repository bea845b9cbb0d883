// The plugin's behaviour, the same cases as plugins/tool-policy/src/lib.rs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ErrorCode, pass } from "interpose-plugin";
import { request, response } from "interpose-plugin/testing";

import plugin, { DENIED } from "../src/plugin.js";

function policy(config) {
  plugin.load(JSON.stringify(config));
  return plugin;
}

const call = (p, params) => p.intercept(request("tools/call", typeof params === "string" ? params : JSON.stringify(params)));
const list = (p, tools) => p.intercept(response("tools/list", JSON.stringify({ tools })));
const tool = (name) => ({ name, inputSchema: { type: "object" } });

function listedNames(verdict) {
  assert.equal(verdict.tag, "rewrite");
  return JSON.parse(verdict.val).tools.map((t) => t.name);
}

function rejection(verdict) {
  assert.equal(verdict.tag, "reject", JSON.stringify(verdict));
  return verdict.val;
}

test("manifest asks for tool calls and lists", () => {
  const manifest = plugin.load("{}");
  assert.equal(manifest.name, "tool-policy");
  assert.deepEqual(manifest.interests, [
    { kinds: ["response"], methods: ["tools/list"] },
    { kinds: ["request"], methods: ["tools/call"] },
  ]);
});

test("an empty policy passes everything", () => {
  const p = policy({});
  assert.equal(call(p, { name: "anything" }), pass());
  assert.equal(list(p, [tool("a")]), pass());
});

test("deny wins over allow and names the rule", () => {
  const p = policy({ allow: ["repo_*"], deny: ["repo_delete*"] });
  assert.equal(call(p, { name: "repo_list", arguments: {} }), pass());
  const err = rejection(call(p, { name: "repo_delete", arguments: {} }));
  assert.equal(err.code, DENIED);
  assert.equal(err.message, "tool `repo_delete` is denied by tool-policy: it matches deny pattern `repo_delete*`");
  assert.equal(err.data, '{"plugin":"tool-policy","tool":"repo_delete"}');
  assert.equal(
    rejection(call(p, { name: "shell" })).message,
    "tool `shell` is denied by tool-policy: it matches no allow pattern",
  );
});

test("denied tools are hidden from the list unless configured", () => {
  const tools = [tool("repo_list"), tool("repo_delete"), tool("shell")];
  assert.deepEqual(listedNames(list(policy({ allow: ["repo_*"], deny: ["*delete*"] }), tools)), ["repo_list"]);
  const p = policy({ deny: ["*delete*"], hide_denied: false });
  assert.equal(list(p, tools), pass());
  assert.equal(rejection(call(p, { name: "repo_delete" })).code, DENIED);
});

test("hidden tools vanish and calls to them are unknown", () => {
  const p = policy({ hide: ["debug_*"], hide_denied: false });
  assert.deepEqual(listedNames(list(p, [tool("debug_dump"), tool("echo")])), ["echo"]);
  const err = rejection(call(p, { name: "debug_dump" }));
  assert.deepEqual([err.code, err.message], [-32602, "Unknown tool: debug_dump"]);
});

test("rename shows the new name and calls the backend name", () => {
  const p = policy({ rename: { search: "brave_web_search" } });
  assert.deepEqual(listedNames(list(p, [tool("brave_web_search"), tool("search"), tool("echo")])), ["search", "echo"]);
  const verdict = call(p, { name: "search", arguments: { q: "x" }, _meta: { progressToken: 7 } });
  assert.equal(verdict.val, '{"name":"brave_web_search","arguments":{"q":"x"},"_meta":{"progressToken":7}}');
  assert.equal(rejection(call(p, { name: "brave_web_search" })).message, "Unknown tool: brave_web_search");
});

test("policies match exposed or backend names", () => {
  const p = policy({ rename: { search: "web_search" }, deny: ["web_*"] });
  assert.equal(rejection(call(p, { name: "search" })).code, DENIED);
  assert.equal(list(p, [tool("web_search")]).val, '{"tools":[]}');
});

test("pinned arguments override and stripped ones go", () => {
  const p = policy({ pin_arguments: { search: { safe: true, limit: 10 } }, strip_arguments: { "*": ["debug"] } });
  assert.equal(
    call(p, { name: "search", arguments: { q: "x", safe: false, debug: 1 } }).val,
    '{"name":"search","arguments":{"limit":10,"q":"x","safe":true}}',
  );
  assert.equal(call(p, { name: "other" }).val, '{"name":"other","arguments":{}}');
});

test("duplicate argument keys are collapsed when the policy touches arguments", () => {
  const p = policy({ pin_arguments: { read: { path: "/safe" } } });
  const raw = '{"name":"read","arguments":{"path":"/etc/passwd","path":"/safe"}}';
  assert.equal(call(p, raw).val, '{"name":"read","arguments":{"path":"/safe"}}');
});

test("an allowed untouched tool passes on its name alone", () => {
  const p = policy({ deny: ["rm"], rename: { search: "web_search" } });
  // Arguments are the backend's to check: the name decides.
  assert.equal(call(p, { name: "ls", arguments: 5 }), pass());
  // Any other tool gets the careful reader first: denied, renamed alike.
  for (const name of ["rm", "search"]) {
    assert.match(rejection(call(p, { name, arguments: 5 })).message, /^invalid tools\/call params/);
  }
  assert.match(rejection(call(p, { name: "rm" })).message, /denied/);
  assert.match(rejection(call(p, '{"name":"rm","name":"ls"}')).message, /^invalid tools\/call params: duplicate field `name`/);
});

test("duplicate or missing name is invalid params, with serde's position", () => {
  const p = policy({ deny: ["rm"] });
  const err = rejection(call(p, '{"name":"ls","name":"rm"}'));
  assert.equal(err.code, -32602);
  assert.equal(err.message, "invalid tools/call params: duplicate field `name` at line 1 column 19");
  assert.equal(
    rejection(call(p, { arguments: {} })).message,
    "invalid tools/call params: missing field `name` at line 1 column 16",
  );
  assert.equal(
    rejection(call(p, '{"name": 5}')).message,
    "invalid tools/call params: invalid type: integer `5`, expected a string at line 1 column 10",
  );
});

test("numbers and key order are written as serde_json writes them", () => {
  const p = policy({ rename: { s: "search" } });
  const raw = '{"name":"s","arguments":{"b":1.0,"a":[1e21,-0,0.5e-7,12345678901234567890],"é":1,"z":2}, "_meta":{}}';
  assert.equal(
    call(p, raw).val,
    '{"name":"search","arguments":{"a":[1e+21,-0.0,5e-8,12345678901234567890],"b":1.0,"z":2,"é":1},"_meta":{}}',
  );
});

test("the list schema loses pinned and stripped arguments and keeps the rest", () => {
  const p = policy({ pin_arguments: { search: { safe: true } }, strip_arguments: { search: ["debug"] } });
  const search = {
    name: "search",
    title: "Search",
    inputSchema: {
      type: "object",
      properties: { q: { type: "string" }, safe: { type: "boolean" }, debug: { type: "integer" } },
      required: ["q", "safe"],
    },
    annotations: { readOnlyHint: true },
  };
  const verdict = p.intercept(response("tools/list", JSON.stringify({ tools: [search], nextCursor: "2" })));
  assert.deepEqual(JSON.parse(verdict.val), {
    tools: [
      {
        name: "search",
        title: "Search",
        inputSchema: { type: "object", properties: { q: { type: "string" } }, required: ["q"] },
        annotations: { readOnlyHint: true },
      },
    ],
    nextCursor: "2",
  });
  assert.equal(
    verdict.val,
    '{"tools":[{"name":"search","inputSchema":{"properties":{"q":{"type":"string"}},"required":["q"],"type":"object"},"annotations":{"readOnlyHint":true},"title":"Search"}],"nextCursor":"2"}',
  );
});

test("an unreadable list fails closed and other messages pass", () => {
  const p = policy({ hide: ["x"] });
  const err = rejection(p.intercept(response("tools/list", '{"tools": 5}')));
  assert.equal(err.code, ErrorCode.INTERNAL_ERROR);
  assert.equal(err.message, "tool-policy could not read the tools/list result: invalid type: integer `5`, expected a sequence at line 1 column 11");
  assert.equal(p.intercept(request("tools/list", "{}")), pass());
  assert.equal(p.intercept(response("tools/call", '{"content": []}')), pass());
});

const asUser = (subject, scopes) => ({
  principal: { subject, issuer: "https://idp.test", scopes, claims: { sub: subject, secret_claim: "never shown" } },
});
const callAs = (p, name, subject, scopes) =>
  p.intercept(request("tools/call", JSON.stringify({ name, arguments: {} }), asUser(subject, scopes)));

test("a scope rule allows only principals with every scope", () => {
  const p = policy({ require: [{ tools: ["delete_*"], scopes: ["admin", "write"] }] });
  assert.equal(callAs(p, "delete_repo", "alice", ["write", "admin"]), pass());
  assert.equal(callAs(p, "list_repos", "bob", []), pass(), "no rule covers it");
  let err = rejection(callAs(p, "delete_repo", "bob", ["write"]));
  assert.equal(err.code, DENIED);
  assert.equal(err.message, "tool `delete_repo` is denied by tool-policy: it requires scope `admin`");
  assert.equal(err.data, '{"plugin":"tool-policy","required":{"scopes":["admin"]},"tool":"delete_repo"}');
  err = rejection(callAs(p, "delete_repo", "bob", []));
  assert.equal(err.message, "tool `delete_repo` is denied by tool-policy: it requires scopes `admin`, `write`");
  assert.ok(!err.data.includes("never shown"));
});

test("a subject rule allows only those subjects and every matching rule must hold", () => {
  const p = policy({
    require: [
      { tools: ["deploy"], subjects: ["alice", "carol"] },
      { tools: ["*"], scopes: ["mcp:tools"] },
    ],
  });
  assert.equal(callAs(p, "deploy", "alice", ["mcp:tools"]), pass());
  let err = rejection(callAs(p, "deploy", "bob", ["mcp:tools"]));
  assert.equal(err.message, "tool `deploy` is denied by tool-policy: it is reserved for subjects `alice`, `carol`");
  assert.equal(err.data, '{"plugin":"tool-policy","required":{"subjects":["alice","carol"]},"tool":"deploy"}');
  err = rejection(callAs(p, "deploy", "alice", []));
  assert.equal(err.message, "tool `deploy` is denied by tool-policy: it requires scope `mcp:tools`");
});

test("a session without a principal is denied by require rules", () => {
  const p = policy({ require: [{ tools: ["delete_*"], scopes: ["admin"] }] });
  const err = rejection(call(p, { name: "delete_repo" }));
  assert.equal(err.message, "tool `delete_repo` is denied by tool-policy: it requires an authenticated principal");
  assert.equal(err.data, '{"plugin":"tool-policy","required":{"scopes":["admin"]},"tool":"delete_repo"}');
  assert.equal(call(p, { name: "echo" }), pass());
  const anyone = policy({ require: [{ tools: ["*"] }] });
  assert.equal(callAs(anyone, "echo", "bob", []), pass());
  assert.equal(
    rejection(call(anyone, { name: "echo" })).message,
    "tool `echo` is denied by tool-policy: it requires an authenticated principal",
  );
});

test("the list shows each principal only the tools it may call", () => {
  const p = policy({
    require: [
      { tools: ["delete_*"], scopes: ["admin"] },
      { tools: ["deploy"], subjects: ["alice"] },
    ],
  });
  const tools = [tool("echo"), tool("delete_repo"), tool("deploy")];
  const listAs = (who) => p.intercept(response("tools/list", JSON.stringify({ tools }), who === undefined ? {} : asUser(...who)));
  assert.equal(listAs(["alice", ["admin"]]), pass());
  assert.deepEqual(listedNames(listAs(["bob", ["admin"]])), ["echo", "delete_repo"]);
  assert.deepEqual(listedNames(listAs(["alice", []])), ["echo", "deploy"]);
  assert.deepEqual(listedNames(listAs(undefined)), ["echo"]);
  const shown = policy({ require: [{ tools: ["delete_*"], scopes: ["admin"] }], hide_denied: false });
  assert.equal(list(shown, tools), pass());
});

test("config errors", () => {
  const err = (config) => {
    try {
      plugin.load(JSON.stringify(config));
    } catch (error) {
      return error.message;
    }
    assert.fail("expected an error");
  };
  assert.equal(err({ rename: { a: "x", b: "x" } }), "invalid config: `rename` maps both `a` and `b` to the backend tool `x`");
  assert.equal(err({ deny: [""] }), "invalid config: an empty tool pattern");
  assert.equal(
    err({ denied: [] }),
    "invalid config: unknown field `denied`, expected one of `allow`, `deny`, `hide`, `hide_denied`, `rename`, `pin_arguments`, `strip_arguments`, `require` at line 1 column 9",
  );
  assert.equal(err({ require: [{ tools: [], scopes: ["a"] }] }), "invalid config: a `require` rule names no tools");
  assert.equal(err({ require: [{ tools: [""] }] }), "invalid config: an empty tool pattern");
  assert.equal(
    err({ require: [{ tools: ["a"], scope: ["x"] }] }),
    "invalid config: unknown field `scope`, expected one of `tools`, `scopes`, `subjects` at line 1 column 34",
  );
  assert.equal(err({ require: [{ scopes: ["x"] }] }), "invalid config: missing field `tools` at line 1 column 28");
  assert.equal(err({ require: "x" }), 'invalid config: invalid type: string "x", expected a sequence at line 1 column 14');
  assert.equal(err({ pin_arguments: { a: 1 } }), "invalid config: invalid type: integer `1`, expected a map at line 1 column 23");
  assert.equal(err({ allow: "x" }), 'invalid config: invalid type: string "x", expected a sequence at line 1 column 12');
});
