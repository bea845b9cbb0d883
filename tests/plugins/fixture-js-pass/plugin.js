// Test and benchmark fixture: passes every message without looking at it.
// Config: `{"methods": [...]}` narrows the manifest (default: every method).
import { createPlugin, expectKeys } from "interpose-plugin";

const plugin = createPlugin({ name: "fixture-js-pass", version: "0.1.0" });

plugin.init((config) => {
  expectKeys(config, ["methods"]);
  if (config.methods !== undefined) {
    plugin.setManifest({ methods: config.methods });
  }
});

plugin.onRequest(() => undefined);
plugin.onResponse(() => undefined);
plugin.onError(() => undefined);
plugin.onNotification(() => undefined);

export default plugin;
