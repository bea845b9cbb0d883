// Test fixture: on a `tools/call` request, allocates memory in 16 MiB chunks,
// touching every page, until the instance runs out (the host's memory cap
// must stop it, well before its deadline); passes the rest.
import { createPlugin } from "interpose-plugin";

const plugin = createPlugin({ name: "fixture-js-membomb", version: "0.1.0" });

// Kept at module level so nothing can be collected.
const hoard = [];

plugin.toolCall(() => {
  for (;;) {
    const chunk = new Uint8Array(16 << 20);
    for (let page = 0; page < chunk.length; page += 65536) {
      chunk[page] = 1;
    }
    hoard.push(chunk);
  }
});

export default plugin;
