"""Hostile fixture: raises an exception (the component traps) on `tools/call`
of its tool (config `tool`, default `raise`), or in `init` with
`phase = "init"`. Other calls pass."""

from interpose_plugin import Plugin, tool_call


class Boom(Exception):
    pass


class FixturePyRaise(Plugin):
    name = "fixture-py-raise"

    def init(self, config):
        self.tool = config.get("tool", "raise")
        if config.get("phase", "intercept") == "init":
            raise Boom("raised in init on purpose")

    @tool_call
    def maybe_raise(self, call, msg):
        if call is not None and call.name == self.tool:
            raise Boom("raised in intercept on purpose")
