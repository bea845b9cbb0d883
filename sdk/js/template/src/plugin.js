// An interpose plugin: refuses calls to tools whose names start with a
// configured prefix, and logs the calls it lets through.
import { createPlugin, ErrorCode, expectKeys, log, reject } from "interpose-plugin";

const plugin = createPlugin({ name: "my-plugin", version: "0.1.0" });

// Module state belongs to one instance; the host runs init in each instance.
let prefix = "delete_";

plugin.init((config) => {
  expectKeys(config, ["prefix"]);
  prefix = config.prefix ?? "delete_";
});

// Only `tools/call` requests reach this plugin: the manifest is derived from the
// handlers, and the host skips the plugin for everything else.
plugin.toolCall((call) => {
  if (call.name.startsWith(prefix)) {
    return reject(ErrorCode.INVALID_PARAMS, `tool \`${call.name}\` is not allowed here`);
  }
  log.debug(`allowed ${call.name}`);
  // Returning nothing passes the message on unchanged (and costs nothing).
});

export default plugin;
