// The `http` helper under plain Node: the request `http.fetch` hands to the
// handler (defaults, headers, bodies), the stand-in tests install, errors, the
// response's readers and URL splitting. (The `wasi:http` path runs only inside a
// component; see host/tests/plugins/plugin_http.rs.)
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { http, HttpError } from "interpose-plugin";
import { setHttpHandler } from "interpose-plugin/testing";

import { splitUrl } from "../src/http.js";

afterEach(() => setHttpHandler(undefined));

/** Installs a handler that records each request and answers `answer`. */
function recording(answer = new http.Response(200)) {
  const seen = [];
  setHttpHandler((request) => {
    seen.push({ ...request, body: new TextDecoder().decode(request.body) });
    return answer;
  });
  return seen;
}

test("without a handler, requests throw an HttpError", () => {
  assert.throws(() => http.get("https://api.example.com/v1/x"), {
    name: "HttpError",
    message: "HTTP request failed: no wasi:http outside the component (GET https://api.example.com/v1/x)",
  });
});

test("fetch sends GET without a body and POST with one, headers as pairs", () => {
  const seen = recording();
  http.fetch("https://api.example.com/a", { headers: { accept: "text/plain" } });
  http.fetch("https://api.example.com/b", { body: "ping", headers: [["x-one", "1"]], timeoutMs: 250 });
  http.fetch("https://api.example.com/c", { method: "PUT", body: new Uint8Array([104, 105]) });
  assert.deepEqual(seen, [
    { method: "GET", url: "https://api.example.com/a", headers: [["accept", "text/plain"]], body: "", timeoutMs: undefined },
    { method: "POST", url: "https://api.example.com/b", headers: [["x-one", "1"]], body: "ping", timeoutMs: 250 },
    { method: "PUT", url: "https://api.example.com/c", headers: [], body: "hi", timeoutMs: undefined },
  ]);
});

test("postJson sends JSON and the response reads as JSON", () => {
  const body = new TextEncoder().encode('{"flagged": false}');
  const seen = recording(new http.Response(200, [["Content-Type", "application/json"]], body));
  const answer = http.postJson("https://api.example.com/v1/check", { text: "hi" }, { headers: { "x-key": "k" } });
  assert.equal(answer.status, 200);
  assert.equal(answer.ok, true);
  assert.equal(answer.header("content-type"), "application/json");
  assert.equal(answer.header("x-missing"), undefined);
  assert.deepEqual(answer.json(), { flagged: false });
  assert.deepEqual(seen, [
    {
      method: "POST",
      url: "https://api.example.com/v1/check",
      headers: [["content-type", "application/json"], ["x-key", "k"]],
      body: '{"text":"hi"}',
      timeoutMs: undefined,
    },
  ]);
});

test("a response of any status is returned, not thrown", () => {
  recording(new http.Response(404, [], new TextEncoder().encode("no")));
  const answer = http.get("https://api.example.com/gone");
  assert.equal(answer.ok, false);
  assert.equal(answer.text(), "no");
});

test("refusals reach the plugin as HttpError with the wasi:http code", () => {
  setHttpHandler(() => {
    throw new HttpError("HTTP request failed: HttpRequestDenied", "HttpRequestDenied");
  });
  assert.throws(() => http.get("https://elsewhere.example.com/"), (error) => {
    assert.ok(error instanceof HttpError && error instanceof Error);
    assert.equal(error.code, "HttpRequestDenied");
    assert.equal(error.message, "HTTP request failed: HttpRequestDenied");
    return true;
  });
});

test("bad arguments are TypeErrors, before any request", () => {
  const seen = recording();
  assert.throws(() => http.fetch(undefined), TypeError);
  assert.throws(() => http.fetch("https://h/", { body: { a: 1 } }), /use http.postJson/);
  assert.throws(() => http.fetch("https://h/", { headers: { n: 1 } }), /headers must be/);
  assert.throws(() => http.fetch("https://h/", { timeoutMs: -1 }), /timeoutMs/);
  assert.deepEqual(seen, []);
});

test("URLs split into the parts wasi:http takes", () => {
  assert.deepEqual(splitUrl("HTTPS://api.example.com:8443/v1/x?q=1"), ["https", "api.example.com:8443", "/v1/x?q=1"]);
  assert.deepEqual(splitUrl("http://127.0.0.1:8080"), ["http", "127.0.0.1:8080", "/"]);
  assert.deepEqual(splitUrl("http://h?q=1"), ["http", "h", "/?q=1"]);
  assert.throws(() => splitUrl("/relative"), { name: "HttpError", message: /not an absolute URL/ });
  assert.throws(() => splitUrl("http:///path"), { name: "HttpError", message: /has no host/ });
});
