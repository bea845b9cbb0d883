"""Write interpose interceptor plugins in Python.

A plugin is a module with a `Plugin` subclass (or module-level functions)
whose handlers return verdicts::

    from interpose_plugin import Plugin, Pass, Reject, tool_call

    class NoDeletes(Plugin):
        name = "no-deletes"

        def init(self, config):
            self.prefix = config.get("prefix", "delete_")

        @tool_call
        def check(self, call, msg):
            if call and call.name.startswith(self.prefix):
                return Reject(-32602, f"tool `{call.name}` is not allowed here")
            return Pass()

`scripts/build-python-plugin.sh DIR` turns `DIR/plugin.py` into a component;
`interpose_plugin.testing.load_plugin` runs the same code under CPython.
"""

from . import http, mcp
from .host import StoreError, kv, log, store
from .message import Direction, Kind, Message, Principal, RawJson, RpcError, to_json
from .plugin import (
    ConfigError,
    InitError,
    Interest,
    Manifest,
    Plugin,
    init,
    method,
    on_error,
    on_notification,
    on_request,
    on_response,
    tool_call,
    tool_result,
)
from .verdict import PASS, Pass, Reject, Respond, Rewrite, Verdict

__version__ = "0.1.0"

__all__ = [
    "http",
    "mcp",
    "kv",
    "log",
    "store",
    "StoreError",
    "Direction",
    "Kind",
    "Message",
    "Principal",
    "RawJson",
    "RpcError",
    "to_json",
    "ConfigError",
    "InitError",
    "Interest",
    "Manifest",
    "Plugin",
    "init",
    "method",
    "on_error",
    "on_notification",
    "on_request",
    "on_response",
    "tool_call",
    "tool_result",
    "PASS",
    "Pass",
    "Reject",
    "Respond",
    "Rewrite",
    "Verdict",
]
