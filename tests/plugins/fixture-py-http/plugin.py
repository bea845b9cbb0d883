"""Fixture: the Python counterpart of fixture-http. A `tools/call` of `fetch`
makes the outbound HTTP request its arguments describe (`url`, `method`,
`body`) with `interpose_plugin.http`, and is answered with a tool result whose
text is `{"status": N, "body": "..."}`; a failed request is rejected with code
-32050 and the error's text, or, with config `{"on_error": "panic"}`, its
`HttpError` is raised out of the handler, so that the plugin's failure policy
applies. `capabilities.toml` declares `http`, so the build uses the WIT world
with `wasi:http`."""

import json

from interpose_plugin import InitError, Plugin, Reject, Respond, http, tool_call


class FixturePyHttp(Plugin):
    name = "fixture-py-http"

    def init(self, config):
        self.on_error = config.get("on_error", "reject")
        if self.on_error not in ("reject", "panic"):
            raise InitError(f"invalid config: on_error must be `reject` or `panic`, not {self.on_error!r}")

    @tool_call
    def fetch(self, call, msg):
        if call is None or call.name != "fetch":
            return None
        url = call.argument("url")
        body = call.argument("body")
        method = call.argument("method") or ("POST" if body is not None else "GET")
        try:
            response = http.request(method, url, body=(body or "").encode())
        except http.HttpError as e:
            if self.on_error == "panic":
                raise
            return Reject(-32050, str(e))
        text = json.dumps({"status": response.status, "body": response.text()})
        return Respond({"content": [{"type": "text", "text": text}]})
