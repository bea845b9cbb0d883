// Test fixture: the `store` API through the real component glue. A call to
// `incr_js` increments `n` (and writes it to `last`), answering
// `structuredContent: {"count": N, "last": "N"}`; a store error is answered as
// `{"error": KIND, "detail": TEXT or null}`.
import { createPlugin, respond, store, StoreError } from "interpose-plugin";

const plugin = createPlugin({ name: "fixture-js-store", version: "0.1.0" });

plugin.toolCall((call) => {
  if (call.name !== "incr_js") {
    return undefined;
  }
  let answer;
  try {
    const count = store.increment("n", 1, { ttlMs: 600000 });
    store.set("last", String(count));
    answer = { count, last: store.get("last") };
  } catch (error) {
    if (!(error instanceof StoreError)) {
      throw error;
    }
    answer = { error: error.kind, detail: error.detail ?? null };
  }
  return respond({ content: [], structuredContent: answer });
});

export default plugin;
