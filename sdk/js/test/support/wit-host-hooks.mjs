// Module hooks for the component-glue test: resolve the WIT imports
// `interpose:plugin/host` and `interpose:plugin/store` (provided by
// componentize-js inside a component) to fakes that record calls in
// `globalThis.witCalls`. Setting `globalThis.witStoreFault` to a `store-error`
// case ({ tag, val }) makes the store fake throw it as componentize-js throws a
// result's `err` (a ComponentError carrying it in `payload`).
const HOST = `
const calls = (globalThis.witCalls ??= []);
const store = (globalThis.witStore ??= new Map());
export function log(level, message) { calls.push(["log", level, message]); }
export function kvGet(key) { calls.push(["kvGet", key]); return store.get(key); }
export function kvSet(key, value, ttl) { calls.push(["kvSet", key, value, ttl]); store.set(key, value); }
export function kvDelete(key) { calls.push(["kvDelete", key]); store.delete(key); }
`;

const STORE = `
const calls = (globalThis.witCalls ??= []);
const store = (globalThis.witStore ??= new Map());
function fault() {
  if (globalThis.witStoreFault !== undefined) {
    const error = new Error("store error");
    error.payload = globalThis.witStoreFault;
    throw error;
  }
}
export function get(key) { calls.push(["store.get", key]); fault(); return store.get(key); }
function set(key, value, ttl) { calls.push(["store.set", key, value, ttl]); fault(); store.set(key, value); }
function remove(key) { calls.push(["store.delete", key]); fault(); store.delete(key); }
export { set, remove as delete };
export function increment(key, delta, ttl) {
  calls.push(["store.increment", key, delta, ttl]);
  fault();
  const sum = BigInt(new TextDecoder().decode(store.get(key) ?? new TextEncoder().encode("0"))) + delta;
  store.set(key, new TextEncoder().encode(String(sum)));
  return sum;
}
`;

const FAKES = { host: HOST, store: STORE };

export async function resolve(specifier, context, nextResolve) {
  const match = /^interpose:plugin\/(host|store)@0\.1\.[0-9]+$/.exec(specifier);
  if (match) {
    return { url: `data:text/javascript,${encodeURIComponent(FAKES[match[1]])}`, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
