"""Hostile fixture: misbehaves on a `tools/call` of a tool named for what it
does, and passes other calls:

- `raise`: raises an exception (the component traps);
- `loop`: loops forever;
- `membomb`: allocates until memory runs out (each block is written to, so it
  is really committed).

With `phase = "init"` it does what `how` names (one of the three) in `init`
instead, so a plugin that fails to load can be tested."""

from interpose_plugin import ConfigError, Plugin, tool_call

BLOCK = 1 << 20


class Boom(Exception):
    pass


def raise_boom(where):
    raise Boom(f"raised in {where} on purpose")


def loop(where):
    turns = 0
    while True:
        turns += 1


def membomb(where):
    hoard = []
    while True:
        hoard.append(bytearray(b"x" * BLOCK))


MISBEHAVIOURS = {"raise": raise_boom, "loop": loop, "membomb": membomb}


class FixturePyHostile(Plugin):
    name = "fixture-py-hostile"

    def init(self, config):
        if config.get("phase", "intercept") == "init":
            how = config.get("how")
            if how not in MISBEHAVIOURS:
                raise ConfigError(f"`how` must be one of {sorted(MISBEHAVIOURS)}, not {how!r}")
            MISBEHAVIOURS[how]("init")

    @tool_call
    def misbehave(self, call, msg):
        if call is not None and call.name in MISBEHAVIOURS:
            MISBEHAVIOURS[call.name]("intercept")
