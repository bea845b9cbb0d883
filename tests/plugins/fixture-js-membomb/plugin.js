// Test fixture: on a `tools/call` request, allocates (and touches) memory
// until the instance runs out (the host's memory cap must stop it); passes
// the rest.
import { createPlugin } from "interpose-plugin";

const plugin = createPlugin({ name: "fixture-js-membomb", version: "0.1.0" });

// Kept at module level so nothing can be collected.
const hoard = [];

plugin.toolCall(() => {
  for (;;) {
    const chunk = new Uint8Array(1 << 20);
    chunk.fill(hoard.length & 0xff);
    hoard.push(chunk);
  }
});

export default plugin;
