// Module hooks for the component-glue test: resolve the WIT import
// `interpose:plugin/host@0.1.1` (provided by componentize-js inside a
// component) to a fake that records calls in `globalThis.witCalls`.
const FAKE = `
const calls = (globalThis.witCalls ??= []);
const store = (globalThis.witStore ??= new Map());
export function log(level, message) { calls.push(["log", level, message]); }
export function kvGet(key) { calls.push(["kvGet", key]); return store.get(key); }
export function kvSet(key, value, ttl) { calls.push(["kvSet", key, value, ttl]); store.set(key, value); }
export function kvDelete(key) { calls.push(["kvDelete", key]); store.delete(key); }
`;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === "interpose:plugin/host@0.1.1") {
    return { url: `data:text/javascript,${encodeURIComponent(FAKE)}`, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
