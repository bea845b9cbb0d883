"""Hostile fixture: allocates until memory runs out on `tools/call` of its
tool (config `tool`, default `membomb`), or in `init` with `phase = "init"`.
Other calls pass. Each block is written to, so it is really committed."""

from interpose_plugin import Plugin, tool_call

BLOCK = 1 << 20


def allocate_forever():
    hoard = []
    while True:
        hoard.append(bytearray(b"x" * BLOCK))


class FixturePyMembomb(Plugin):
    name = "fixture-py-membomb"

    def init(self, config):
        self.tool = config.get("tool", "membomb")
        if config.get("phase", "intercept") == "init":
            allocate_forever()

    @tool_call
    def maybe_allocate(self, call, msg):
        if call is not None and call.name == self.tool:
            allocate_forever()
