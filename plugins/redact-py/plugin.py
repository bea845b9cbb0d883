"""interpose plugin: redacts secrets and personal data from what backends send
back: `tools/call` results (text blocks, embedded resources,
`structuredContent`), `resources/read` contents and `prompts/get` messages.
The Python twin of `plugins/redact`: same configuration, same results. See the
README for the configuration.

Most messages hold nothing to redact, so the plugin first runs cheap checks
over the raw JSON text and passes the message untouched when they find
nothing. Otherwise it scans the text, decodes the strings that matter, applies
the rules, and splices the changed strings back, re-encoded.
"""

from interpose_plugin import PASS, Plugin, Reject, Rewrite, RpcError, log, on_response

import redact_scan
from redact_rules import Rules

# Built at import, which componentize-py runs at build time: the compiled
# patterns and warmed caches are part of the component's memory image, so an
# instance's `init` has little left to do.
Rules("{}")

SPECS = {
    "tools/call": redact_scan.TOOL_RESULT,
    "resources/read": redact_scan.RESOURCE_RESULT,
    "prompts/get": redact_scan.PROMPT_RESULT,
}


class Redact(Plugin):
    name = "redact"
    version = "0.1.0"

    def init(self, config):
        # The rules read the configuration text themselves, for serde's errors.
        self.rules = Rules(config)

    @on_response("tools/call", "resources/read", "prompts/get")
    def redact(self, msg):
        payload = msg.payload
        if payload is None:
            return PASS
        spec = SPECS.get(msg.method)
        if spec is None or not self.rules.may_match_raw(payload):
            return PASS
        try:
            redacted = redact_scan.redact(payload, spec, self.rules)
        except redact_scan.ScanError as err:
            # Fail closed: a result that cannot be checked is not delivered.
            return Reject(RpcError.INTERNAL_ERROR, f"redact: the {msg.method} result was withheld: {err}")
        if redacted is None:
            return PASS
        log.debug(
            f"redacted {redacted.strings} string(s) in a {msg.method} result "
            f"(rules: {', '.join(self.rules.names(redacted.rules))})"
        )
        return Rewrite(redacted.payload)
