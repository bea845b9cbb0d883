// Test fixture: the JavaScript counterpart of fixture-http. A `tools/call` of
// `fetch` makes the outbound HTTP request its arguments describe (`url`,
// `method`, `body`) with the SDK's `http.fetch`, and is answered with a tool
// result whose text is `{"status": N, "body": "..."}`; a failed request is
// rejected with code -32050 and the error's text, or, with config
// `{"on_error": "panic"}`, its HttpError is thrown out of the handler, so that the
// plugin's failure policy applies. `capabilities.toml` declares `http`, so the
// build uses the WIT world with `wasi:http`.
import { ConfigError, createPlugin, expectKeys, http, HttpError, reject, respond } from "interpose-plugin";

const plugin = createPlugin({ name: "fixture-js-http", version: "0.1.0" });

let onError = "reject";
plugin.init((config) => {
  expectKeys(config, ["on_error"]);
  onError = config.on_error ?? "reject";
  if (onError !== "reject" && onError !== "panic") {
    throw new ConfigError(`on_error must be \`reject\` or \`panic\`, not \`${onError}\``);
  }
});

plugin.toolCall("fetch", (call) => {
  const { url, method, body } = call.arguments ?? {};
  let response;
  try {
    response = http.fetch(url, { method, body });
  } catch (error) {
    if (!(error instanceof HttpError) || onError === "panic") {
      throw error;
    }
    return reject(-32050, error.message);
  }
  const text = JSON.stringify({ status: response.status, body: response.text() });
  return respond({ content: [{ type: "text", text }] });
});

export default plugin;
