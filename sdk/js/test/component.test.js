// The component glue (src/component.js) against a fake of the WIT host
// interface, in the shapes componentize-js uses: s64 and u64 as BigInt,
// result<_, string> as { tag, val }, variants as { tag, val }.
import assert from "node:assert/strict";
import { register } from "node:module";
import { test } from "node:test";

register("./support/wit-host-hooks.mjs", import.meta.url);

const { interceptorFor } = await import("interpose-plugin/component");
const { createPlugin, kv, log, reject, respond, rewrite } = await import("interpose-plugin");

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

// A fake of the WIT `message` resource as componentize-js lends it to the
// export: an object with one method per part. It records which parts were
// fetched, and stops answering when the loan ends, as the real one does.
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
      session: "s",
      server: "b",
      ...fields,
    };
    this.fetched = [];
    this.lent = true;
    for (const part of Object.keys(this.fields)) {
      this[part] = () => {
        assert.ok(this.lent, `${part} fetched after the call`);
        this.fetched.push(part);
        return this.fields[part];
      };
    }
  }
}

const intercept = (resource) => {
  try {
    return interceptor.intercept(resource);
  } finally {
    resource.lent = false;
  }
};
const witMessage = (fields) => new WitMessage(fields);

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

test("a plugin taking every method fetches only the kind", () => {
  const every = interceptorFor(createPlugin({ name: "every" }).onRequest(() => undefined));
  const msg = witMessage({ payload: '{"name":"x"}' });
  assert.deepEqual(every.intercept(msg), { tag: "pass" });
  assert.deepEqual(msg.fetched, ["kind"]);
});

test("handlers fetch each part they read, once; the method only when a handler is narrowed to some", () => {
  const seen = [];
  const narrowed = createPlugin({ name: "narrowed" })
    .onResponse("tools/call", (msg) => {
      seen.push(msg.payload, msg.payload.length, msg.json().n, msg.direction);
    })
    .onResponse("tools/*", () => undefined);
  const glue = interceptorFor(narrowed);
  const msg = witMessage({ kind: "response", direction: "to-client", payload: '{"n":1}' });
  assert.deepEqual(glue.intercept(msg), { tag: "pass" });
  assert.deepEqual(seen, ['{"n":1}', 7, 1, "to-client"]);
  assert.deepEqual(msg.fetched, ["kind", "method", "payload", "direction"]);
  const other = witMessage({ kind: "notification", method: "notifications/progress" });
  assert.deepEqual(glue.intercept(other), { tag: "pass" });
  assert.deepEqual(other.fetched, ["kind"], "no handler for the kind: nothing else fetched");
});

test("a rewrite is checked against the payload only when the handler read it", () => {
  const rewriter = createPlugin({ name: "rewriter" })
    .onRequest("same", (msg) => rewrite(msg.payload))
    .onRequest("blind", () => rewrite({ n: 2 }));
  const glue = interceptorFor(rewriter);
  const same = witMessage({ method: "same", payload: '{"n":2}' });
  assert.deepEqual(glue.intercept(same), { tag: "pass" }, "the same text again is a pass");
  const blind = witMessage({ method: "blind", payload: '{"n":2}' });
  assert.deepEqual(glue.intercept(blind), { tag: "rewrite", val: '{"n":2}' });
  assert.deepEqual(blind.fetched, ["kind", "method"]);
});

test("a message kept past its call keeps the parts read and refuses the others", () => {
  let kept;
  const keeper = createPlugin({ name: "keeper" }).onRequest((msg) => {
    kept = msg;
    assert.equal(msg.payload, '{"name":"x"}');
  });
  const msg = witMessage({ payload: '{"name":"x"}' });
  interceptorFor(keeper).intercept(msg);
  msg.lent = false;
  assert.equal(kept.payload, '{"name":"x"}');
  assert.equal(kept.kind, "request");
  assert.deepEqual(kept.json(), { name: "x" });
  assert.throws(() => kept.id, /^Error: msg\.id read after the intercept call that received the message returned/);
  assert.throws(() => kept.toolCall(), /msg\.method read after/);
  assert.deepEqual(msg.fetched, ["kind", "payload"]);
});

test("after init, a handler taking every method of the manifest runs without fetching the method", () => {
  const seen = [];
  const covering = createPlugin({ name: "covering" })
    .onResponse(["tools/call", "resources/*"], (msg) => {
      seen.push(msg.payload);
    })
    .onRequest("resources/*", () => undefined);
  const glue = interceptorFor(covering);
  assert.equal(glue.init("{}").tag, "ok");
  const response = witMessage({ kind: "response", payload: "{}" });
  glue.intercept(response);
  assert.deepEqual(response.fetched, ["kind", "payload"]);
  assert.deepEqual(seen, ["{}"]);
  // The manifest (for every kind) names tools/call too: the request handler must look.
  const request = witMessage({ method: "tools/call" });
  glue.intercept(request);
  assert.deepEqual(request.fetched, ["kind", "method"]);
  // Without a host in front, intercept checks every method.
  assert.equal(covering.intercept({ kind: "response", method: "prompts/get", payload: "{}" }).tag, "pass");
  assert.deepEqual(seen, ["{}"]);
});
