// Test fixture: never returns from intercept on a `tools/call` request (the
// host's deadline must stop it); passes the rest.
import { createPlugin } from "interpose-plugin";

const plugin = createPlugin({ name: "fixture-js-loop", version: "0.1.0" });

let spins = 0;

plugin.toolCall(() => {
  for (;;) {
    spins++;
  }
});

export default plugin;
