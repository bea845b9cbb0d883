"""my-plugin: an interpose plugin written in Python.

It refuses calls to the tools named in its `deny` setting and counts the calls
it lets through, in the plugin's key-value store (shared by all instances).
Edit the handlers below; `interpose plugin build .` builds it.
"""

from interpose_plugin import ConfigError, Pass, Plugin, Reject, RpcError, kv, log, tool_call


class MyPlugin(Plugin):
    name = "my-plugin"
    version = "0.1.0"

    def init(self, config):
        # `config` is the plugin's `config` table from interpose.toml, as a dict.
        deny = config.get("deny", [])
        if not isinstance(deny, list) or not all(isinstance(name, str) for name in deny):
            raise ConfigError("invalid config: `deny` is a list of tool names")
        self.deny = set(deny)

    # Only `tools/call` requests reach this plugin: the manifest, derived from
    # the handlers, tells the proxy to skip it for everything else.
    @tool_call
    def check(self, call, msg):
        if call is None:
            return Pass()
        if call.name in self.deny:
            log.info(f"refused a call to {call.name}")
            return Reject(RpcError.INVALID_PARAMS, f"tool `{call.name}` is not allowed here")
        calls = int(kv.get_str("calls") or "0") + 1
        kv.set("calls", str(calls))
        return Pass()
