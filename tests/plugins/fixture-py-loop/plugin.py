"""Hostile fixture: loops forever on `tools/call` of its tool (config `tool`,
default `loop`), or in `init` with `phase = "init"`. Other calls pass."""

from interpose_plugin import Plugin, tool_call


def spin():
    turns = 0
    while True:
        turns += 1


class FixturePyLoop(Plugin):
    name = "fixture-py-loop"

    def init(self, config):
        self.tool = config.get("tool", "loop")
        if config.get("phase", "intercept") == "init":
            spin()

    @tool_call
    def maybe_spin(self, call, msg):
        if call is not None and call.name == self.tool:
            spin()
