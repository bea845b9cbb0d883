// Test fixture: throws an exception from intercept on every `tools/call`
// request (an uncaught exception traps the instance); passes the rest.
import { createPlugin } from "interpose-plugin";

const plugin = createPlugin({ name: "fixture-js-throw", version: "0.1.0" });

plugin.toolCall((call) => {
  throw new Error(`fixture-js-throw: deliberate failure on tool \`${call.name}\``);
});

export default plugin;
