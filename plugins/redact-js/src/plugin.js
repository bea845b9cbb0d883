// interpose plugin: redacts secrets and personal data from what backends send
// back: `tools/call` results (text blocks, embedded resources,
// `structuredContent`), `resources/read` contents and `prompts/get` messages.
// The JavaScript twin of plugins/redact (same config, same results, same
// errors). See the README for the configuration.
//
// Most messages hold nothing to redact, so the plugin first runs the rules'
// raw-text filters over the payload and passes it untouched when none finds
// anything. Otherwise it scans the text, decodes the strings that matter,
// applies the rules, and splices the changed strings back, re-encoded.

import { createPlugin, ErrorCode, log, reject, rewrite } from "interpose-plugin";

import { parseConfig, Rules } from "./rules.js";
import { PROMPT_RESULT, redact, RESOURCE_RESULT, ScanError, TOOL_RESULT } from "./scan.js";

const SPECS = new Map([
  ["tools/call", TOOL_RESULT],
  ["resources/read", RESOURCE_RESULT],
  ["prompts/get", PROMPT_RESULT],
]);

// Built at module level, so in the component the default rules are compiled
// and warmed up once, at build time (the snapshot keeps them), not per instance.
const DEFAULT_RULES = new Rules(parseConfig({}));
DEFAULT_RULES.mayMatchRaw("warm up the filters: bob@example.com sk-0123456789abcdefghij0123");
redact('{"content":[{"type":"text","text":"bob@example.com 4111 1111 1111 1111"}]}', TOOL_RESULT, DEFAULT_RULES);

const plugin = createPlugin({ name: "redact", version: "0.1.0" });

let rules = DEFAULT_RULES;

plugin.init((_config, text) => {
  const parsed = parseConfig(text);
  const isDefault = parsed.rules.length === 0 && parsed.defaults === true;
  rules = isDefault ? DEFAULT_RULES : new Rules(parsed);
});

plugin.onResponse([...SPECS.keys()], (msg) => {
  const payload = msg.payload;
  if (payload === undefined || !rules.mayMatchRaw(payload)) {
    return undefined;
  }
  let redacted;
  try {
    redacted = redact(payload, SPECS.get(msg.method), rules);
  } catch (error) {
    if (error instanceof ScanError) {
      // Fail closed: a result that cannot be checked is not delivered.
      return reject(ErrorCode.INTERNAL_ERROR, `redact: the ${msg.method} result was withheld: ${error}`);
    }
    throw error;
  }
  if (redacted === undefined) {
    return undefined;
  }
  log.debug(
    `redacted ${redacted.strings} string(s) in a ${msg.method} result (rules: ${rules.names(redacted.rules).join(", ")})`,
  );
  return rewrite(redacted.payload);
});

export default plugin;
