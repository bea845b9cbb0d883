// The component glue (src/component.js) against a fake of the WIT host
// interface, in the shapes componentize-js uses: s64 and u64 as BigInt,
// result<_, string> as { tag, val }, variants as { tag, val }.
import assert from "node:assert/strict";
import { register } from "node:module";
import { test } from "node:test";

register("./support/wit-host-hooks.mjs", import.meta.url);

const { interceptorFor } = await import("interpose-plugin/component");
const { Message, StoreError, createPlugin, http, kv, log, reject, respond, rewrite, store } = await import("interpose-plugin");

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

// A fake of what componentize-js hands the export: direction, kind and method
// as values, and the WIT `message` resource (the other parts) as an object with
// one method per part. It records which parts were fetched, and stops
// answering when the loan ends, as the real one does.
const ARGUMENTS = ["direction", "kind", "method"];

class WitMessage {
  constructor(fields) {
    this.fields = {
      direction: "to-server",
      kind: "request",
      method: "tools/call",
      id: "1",
      payload: undefined,
      error: undefined,
      requestPayload: undefined,
      elapsedUs: undefined,
      subject: undefined,
      payloadSize: undefined,
      session: "s",
      server: "b",
      principal: undefined,
      ...fields,
    };
    this.fetched = [];
    this.lent = true;
    for (const part of Object.keys(this.fields)) {
      if (ARGUMENTS.includes(part)) {
        continue;
      }
      this[part] = () => {
        assert.ok(this.lent, `${part} fetched after the call`);
        this.fetched.push(part);
        return this.fields[part];
      };
    }
  }

  /** Calls `glue.intercept` the way the bindings do, lending this message for the call. */
  lendTo(glue) {
    const { direction, kind, method } = this.fields;
    try {
      return glue.intercept(direction, kind, method, this);
    } finally {
      this.lent = false;
    }
  }
}

const intercept = (msg) => msg.lendTo(interceptor);
const witMessage = (fields) => new WitMessage(fields);

test("init returns ok(manifest) or err(text), never throws", () => {
  assert.deepEqual(interceptor.init("{}"), {
    tag: "ok",
    val: {
      name: "glue",
      version: "0.2.0",
      interests: [
        { kinds: ["request"], methods: ["tools/call"] },
        { kinds: ["error"], methods: [] },
      ],
      wantsRequest: false,
    },
  });
  assert.deepEqual(interceptor.init('{"refuse": true}'), { tag: "err", val: "invalid config: refused" });
  assert.deepEqual(interceptor.init('{"throwString": true}'), { tag: "err", val: "plain string" });
  assert.equal(interceptor.init("{oops").tag, "err");
});

test("intercept converts verdicts and host calls to the WIT shapes", () => {
  interceptor.init("{}");
  globalThis.witCalls.length = 0;
  const verdict = intercept(witMessage({ payload: '{"name":"yes"}' }));
  assert.deepEqual(verdict, { tag: "respond", val: '{"content":[],"last":"yes"}' });
  const [logCall, setCall, getCall] = globalThis.witCalls;
  assert.deepEqual(logCall, ["log", "info", "call yes"]);
  assert.equal(setCall[0], "kvSet");
  assert.deepEqual([...setCall[2]], [...new TextEncoder().encode("yes")]);
  assert.equal(setCall[3], 1500n, "ttl-ms is a u64: a BigInt");
  assert.deepEqual(getCall, ["kvGet", "last"]);

  assert.deepEqual(intercept(witMessage({ payload: '{"name":"no"}' })), {
    tag: "reject",
    val: { code: -32602n, message: "refused", data: '{"tool":"no"}' },
  });
  assert.deepEqual(intercept(witMessage({ method: "tools/list", payload: "{}" })), { tag: "pass" });
});

test("error answers arrive with a BigInt code and leave with one", () => {
  const error = witMessage({ kind: "error", direction: "to-client", error: { code: -32000n, message: "busy", data: undefined } });
  assert.deepEqual(intercept(error), {
    tag: "reject",
    val: { code: -32001n, message: "busy!", data: undefined },
  });
});

test("a plugin taking every method fetches nothing", () => {
  const every = interceptorFor(createPlugin({ name: "every" }).onRequest(() => undefined));
  const msg = witMessage({ payload: '{"name":"x"}' });
  assert.deepEqual(msg.lendTo(every), { tag: "pass" });
  assert.deepEqual(msg.fetched, []);
});

test("direction, kind and method come from the arguments; handlers fetch each other part they read, once", () => {
  const seen = [];
  const narrowed = createPlugin({ name: "narrowed" })
    .onResponse("tools/call", (msg) => {
      seen.push(msg.payload, msg.payload.length, msg.json().n, msg.direction, msg.kind, msg.method);
    })
    .onResponse("tools/*", () => undefined);
  const glue = interceptorFor(narrowed);
  const msg = witMessage({ kind: "response", direction: "to-client", payload: '{"n":1}' });
  assert.deepEqual(msg.lendTo(glue), { tag: "pass" });
  assert.deepEqual(seen, ['{"n":1}', 7, 1, "to-client", "response", "tools/call"]);
  assert.deepEqual(msg.fetched, ["payload"]);
  const other = witMessage({ kind: "response", method: "resources/read", payload: "{}" });
  assert.deepEqual(other.lendTo(glue), { tag: "pass" });
  assert.deepEqual(other.fetched, [], "no handler for the method: nothing fetched");
  assert.deepEqual(seen.length, 6);
});

test("the payload's size and the answer's wait come from the host as numbers, the size without the payload", () => {
  const seen = [];
  const glue = interceptorFor(
    createPlugin({ name: "sizes" }).onResponse((msg) => {
      seen.push(msg.payloadSize, msg.elapsedUs);
      seen.push(msg.payload, msg.payloadSize);
    }),
  );
  const msg = witMessage({ kind: "response", direction: "to-client", payload: '{"t":"é"}', payloadSize: 10n, elapsedUs: 1250n });
  assert.deepEqual(msg.lendTo(glue), { tag: "pass" });
  assert.deepEqual(seen, [10, 1250, '{"t":"é"}', 10]);
  assert.deepEqual(msg.fetched, ["payloadSize", "elapsedUs", "payload"], "the size once read from the payload");
  const plain = new Message({ kind: "response", method: "x", payload: '{"a":"😀€é"}', elapsedUs: 7 });
  assert.deepEqual([plain.payloadSize, plain.elapsedUs], [Buffer.byteLength('{"a":"😀€é"}'), 7]);
  assert.equal(new Message({ kind: "request", method: "x" }).payloadSize, 0);
});

test("the subject comes from the host once, or from a plain message's params", () => {
  const seen = [];
  const glue = interceptorFor(
    createPlugin({ name: "subjects" }).onResponse((msg) => {
      seen.push(msg.subject, msg.subject);
    }),
  );
  const msg = witMessage({ kind: "response", direction: "to-client", subject: "search" });
  assert.deepEqual(msg.lendTo(glue), { tag: "pass" });
  assert.deepEqual(seen, ["search", "search"]);
  assert.deepEqual(msg.fetched, ["subject"]);
  const call = new Message({ kind: "request", method: "tools/call", payload: '{"arguments":{"name":"x"},"name":"echo"}' });
  assert.equal(call.subject, "echo");
  const answer = new Message({ kind: "response", method: "tools/call", payload: "{}", requestPayload: '{"name":"echo"}' });
  assert.equal(answer.subject, "echo");
  assert.equal(new Message({ kind: "response", method: "tools/call", payload: "{}" }).subject, undefined);
  assert.equal(new Message({ kind: "request", method: "resources/read", payload: '{"uri":"file:///a"}' }).subject, "file:///a");
  assert.equal(new Message({ kind: "request", method: "tools/list", payload: '{"name":"x"}' }).subject, undefined);
  assert.equal(new Message({ kind: "request", method: "tools/call", payload: '{"name":"a"}', subject: "b" }).subject, "b");
  const plain = (payload) => new Message({ kind: "request", method: "tools/call", payload }).subject;
  assert.equal(plain('{"name":"rm", "name" :"ls"}'), undefined, "a duplicate, as serde");
  assert.equal(plain('{"name":"a","uri":3}'), undefined, "as serde");
  assert.equal(plain('{"a":{"name":"x"},"b":["\\"name\\":"],"name":"ok"}'), "ok", "nested and quoted names do not count");
  assert.equal(plain("[1]"), undefined);
});

test("the principal comes from the host once with its claims parsed, or from a test message", () => {
  const seen = [];
  const glue = interceptorFor(
    createPlugin({ name: "principals" }).onRequest((msg) => {
      seen.push(msg.principal, msg.principal);
    }),
  );
  const alice = { subject: "alice", issuer: "https://idp.test", scopes: ["admin"], claims: '{"sub":"alice","n":[1]}' };
  const msg = witMessage({ principal: alice });
  assert.deepEqual(msg.lendTo(glue), { tag: "pass" });
  assert.deepEqual(msg.fetched, ["principal"]);
  assert.equal(seen[0], seen[1], "read once");
  assert.deepEqual(seen[0], { subject: "alice", issuer: "https://idp.test", scopes: ["admin"], claims: { sub: "alice", n: [1] } });
  assert.ok(Object.isFrozen(seen[0]) && Object.isFrozen(seen[0].scopes));
  const none = witMessage({});
  none.lendTo(glue);
  assert.equal(seen[2], undefined);
  assert.equal(new Message({ kind: "request", method: "tools/call" }).principal, undefined);
  const built = new Message({ kind: "request", method: "tools/call", principal: { subject: "bob", issuer: "i", claims: { a: 1 } } });
  assert.deepEqual(built.principal, { subject: "bob", issuer: "i", scopes: [], claims: { a: 1 } });
});

test("a rewrite is checked against the payload only when the handler read it", () => {
  const rewriter = createPlugin({ name: "rewriter" })
    .onRequest("same", (msg) => rewrite(msg.payload))
    .onRequest("blind", () => rewrite({ n: 2 }));
  const glue = interceptorFor(rewriter);
  const same = witMessage({ method: "same", payload: '{"n":2}' });
  assert.deepEqual(same.lendTo(glue), { tag: "pass" }, "the same text again is a pass");
  const blind = witMessage({ method: "blind", payload: '{"n":2}' });
  assert.deepEqual(blind.lendTo(glue), { tag: "rewrite", val: '{"n":2}' });
  assert.deepEqual(blind.fetched, []);
});

test("a message kept past its call keeps the parts read and refuses the others", () => {
  let kept;
  const keeper = createPlugin({ name: "keeper" }).onRequest((msg) => {
    kept = msg;
    assert.equal(msg.payload, '{"name":"x"}');
  });
  const msg = witMessage({ payload: '{"name":"x"}' });
  msg.lendTo(interceptorFor(keeper));
  assert.equal(kept.payload, '{"name":"x"}');
  assert.equal(kept.kind, "request");
  assert.equal(kept.method, "tools/call");
  assert.equal(kept.direction, "to-server");
  assert.deepEqual(kept.json(), { name: "x" });
  assert.deepEqual(kept.toolCall(), { name: "x" });
  assert.throws(() => kept.id, /^Error: msg\.id read after the intercept call that received the message returned/);
  assert.throws(() => kept.session, /msg\.session read after/);
  assert.deepEqual(msg.fetched, ["payload"]);
});

test("handlers narrowed to methods run only for those, after init as without a host", () => {
  const seen = [];
  const covering = createPlugin({ name: "covering" })
    .onResponse(["tools/call", "resources/*"], (msg) => {
      seen.push(msg.method);
    })
    .onRequest("resources/*", (msg) => {
      seen.push(`request ${msg.method}`);
    });
  const glue = interceptorFor(covering);
  assert.equal(glue.init("{}").tag, "ok");
  witMessage({ kind: "response", method: "resources/read" }).lendTo(glue);
  // The manifest (for every kind) names tools/call too: the request handler must not take it.
  witMessage({ method: "tools/call" }).lendTo(glue);
  witMessage({ method: "resources/list" }).lendTo(glue);
  assert.equal(covering.intercept({ kind: "response", method: "prompts/get", payload: "{}" }).tag, "pass");
  assert.deepEqual(seen, ["resources/read", "request resources/list"]);
});

test("store calls reach the WIT store with BigInt numbers, and its errors become StoreErrors", () => {
  globalThis.witCalls.length = 0;
  assert.equal(store.increment("hits", 2, { ttlMs: 1000 }), 2);
  store.set("k", "v");
  assert.equal(store.get("k"), "v");
  store.delete("k");
  assert.deepEqual(globalThis.witCalls.slice(0, 2), [
    ["store.increment", "hits", 2n, 1000n],
    ["store.set", "k", new TextEncoder().encode("v"), undefined],
  ]);
  globalThis.witStoreFault = { tag: "unavailable", val: "connection refused" };
  try {
    assert.throws(
      () => store.increment("hits"),
      (e) => e instanceof StoreError && e.kind === "unavailable" && e.detail === "connection refused",
    );
    globalThis.witStoreFault = { tag: "timeout" };
    assert.throws(() => store.get("hits"), (e) => e instanceof StoreError && e.kind === "timeout");
  } finally {
    globalThis.witStoreFault = undefined;
  }
});

test("a component built without wasi:http says how to get it", () => {
  assert.throws(() => http.get("https://api.example.com/"), {
    name: "HttpError",
    message:
      "HTTP request failed: the plugin was built without wasi:http; declare `http` in its capabilities.toml and build it again",
  });
});
