"""The componentize-py glue (`interpose_plugin._component`) under plain CPython,
against stand-ins for the modules componentize-py generates: which parts of
the host's message each call reads, and what a plugin sees."""

import copy
import dataclasses
import enum
import importlib
import sys
import types
import weakref

import pytest

from interpose_plugin import (
    Direction,
    Kind,
    Message,
    Plugin,
    Principal,
    Reject,
    Rewrite,
    method,
    on_notification,
    on_request,
    on_response,
    tool_call,
    tool_result,
)
from interpose_plugin import message as message_module
from interpose_plugin.plugin import _ALL_KINDS, load


def _fake_wit_modules():
    """The few names the glue uses from `wit_world`, `componentize_py_types`
    and `componentize_py_runtime`, shaped like componentize-py's."""
    wit = types.ModuleType("wit_world.imports.types")
    wit.Direction = enum.Enum("Direction", [("TO_SERVER", 0), ("TO_CLIENT", 1)])
    wit.Kind = enum.Enum("Kind", [("REQUEST", 0), ("RESPONSE", 1), ("ERROR", 2), ("NOTIFICATION", 3)])
    wit.RpcError = dataclasses.make_dataclass("RpcError", ["code", "message", "data"])
    wit.Principal = dataclasses.make_dataclass("Principal", ["subject", "issuer", "scopes", "claims"])
    wit.Message = type("Message", (), {"__exit__": lambda self, *exc: None})
    wit.Verdict_Pass = dataclasses.make_dataclass("Verdict_Pass", [])
    wit.Verdict_Rewrite = dataclasses.make_dataclass("Verdict_Rewrite", ["value"])
    wit.Verdict_Respond = dataclasses.make_dataclass("Verdict_Respond", ["value"])
    wit.Verdict_Reject = dataclasses.make_dataclass("Verdict_Reject", ["value"])

    host = types.ModuleType("wit_world.imports.host")
    host.Level = enum.Enum("Level", ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"])
    host.logs = []
    host.log = lambda level, text: host.logs.append((level, text))
    host.kv_get = host.kv_set = host.kv_delete = None

    componentize_types = types.ModuleType("componentize_py_types")
    componentize_types.Err = type("Err", (Exception,), {"__init__": lambda self, value: setattr(self, "value", value)})

    # The WIT `store`: `fault` (a `StoreError_*` case) makes every call raise it
    # in `Err`, as componentize-py raises a result's error.
    store = types.ModuleType("wit_world.imports.store")
    store.StoreError_Unavailable = dataclasses.make_dataclass("StoreError_Unavailable", ["value"])
    for case in ("Timeout", "TooLarge", "NotANumber", "Denied"):
        setattr(store, f"StoreError_{case}", dataclasses.make_dataclass(f"StoreError_{case}", []))
    store.fault = None
    store.calls = []

    def store_call(name, result):
        def call(*args):
            store.calls.append((name, *args))
            if store.fault is not None:
                raise componentize_types.Err(store.fault)
            return result

        return call

    store.get = store_call("get", b"7")
    store.set = store_call("set", None)
    store.delete = store_call("delete", None)
    store.increment = store_call("increment", 8)

    interceptor = types.ModuleType("wit_world.exports.interceptor")
    interceptor.Manifest = dataclasses.make_dataclass("Manifest", ["name", "version", "interests", "wants_request"])
    interceptor.Interest = dataclasses.make_dataclass("Interest", ["kinds", "methods"])
    exports = types.ModuleType("wit_world.exports")
    exports.Interceptor = type("Interceptor", (), {})
    exports.interceptor = interceptor
    imports = types.ModuleType("wit_world.imports")
    imports.types, imports.host, imports.store = wit, host, store
    world = types.ModuleType("wit_world")
    world.exports, world.imports = exports, imports

    # A resource of another interface, as in the world with `wasi:http`.
    streams = types.ModuleType("wit_world.imports.streams")
    streams.InputStream = type(
        "InputStream", (), {"__module__": streams.__name__, "__exit__": lambda self, *exc: None}
    )

    runtime = types.ModuleType("componentize_py_runtime")
    runtime.dropped = []
    runtime.drop_resource = lambda index, handle: runtime.dropped.append((index, handle))
    return {
        "wit_world": world,
        "wit_world.exports": exports,
        "wit_world.exports.interceptor": interceptor,
        "wit_world.imports": imports,
        "wit_world.imports.types": wit,
        "wit_world.imports.host": host,
        "wit_world.imports.store": store,
        "wit_world.imports.streams": streams,
        "componentize_py_types": componentize_types,
        "componentize_py_runtime": runtime,
    }


@pytest.fixture
def glue():
    """The glue module, imported against new stand-ins; everything it changes
    in the process (readers, `weakref.finalize`, the host backend) is put back
    afterwards."""
    fakes = _fake_wit_modules()
    saved_readers = dict(message_module._READERS)
    saved_finalize = weakref.finalize
    sys.modules.update(fakes)
    try:
        yield importlib.import_module("interpose_plugin._component")
    finally:
        for name in [*fakes, "interpose_plugin._component"]:
            sys.modules.pop(name, None)
        message_module._READERS.clear()
        message_module._READERS.update(saved_readers)
        weakref.finalize = saved_finalize
        from interpose_plugin.testing import reset

        reset()


KINDS = ["REQUEST", "RESPONSE", "ERROR", "NOTIFICATION"]


class Lent:
    """The host's message as componentize-py lifts it, counting getter calls,
    with the arguments `intercept` receives alongside it (the enums lifted as
    the runtime does, by calling what the bindings hold with the discriminant)."""

    def __init__(self, wit, kind="REQUEST", method="tools/call", payload='{"name":"x"}', to_client=False):
        self.args = (wit.Direction(int(to_client)), wit.Kind(KINDS.index(kind)), method)
        self.values = {
            "id": "7",
            "payload": payload,
            "error": None,
            "request_payload": None,
            "elapsed_us": None,
            "subject": None,
            "payload_size": None,
            "session": "s",
            "server": "b",
            "principal": None,
        }
        self.calls = []
        self.lent = True

    def __getattr__(self, name):
        if name not in self.values:
            raise AttributeError(name)

        def getter():
            assert self.lent, f"{name}() called after the call returned: that traps a component"
            self.calls.append(name)
            return self.values[name]

        return getter


def intercept(glue, entry, lent, config="{}"):
    # componentize-py makes one instance of the exported class per export.
    exported = glue.bind(entry)
    exported().init(config)
    verdict = exported().intercept(*lent.args, lent)
    lent.lent = False  # the runtime ends the borrow here
    return verdict


class PassEverything(Plugin):
    """Like tests/plugins/fixture-py-pass."""

    def on_request(self, msg):
        return None

    def on_response(self, msg):
        return None

    def on_error(self, msg):
        return None

    def on_notification(self, msg):
        return None


def test_passing_reads_nothing_from_the_host(glue):
    wit = sys.modules["wit_world.imports.types"]
    lent = Lent(wit, payload="x" * 100_000)
    verdict = intercept(glue, PassEverything, lent)
    assert isinstance(verdict, wit.Verdict_Pass)
    assert lent.calls == []


def test_handlers_are_routed_by_kind_and_method(glue):
    seen = []

    class Split(Plugin):
        @tool_call
        def call(self, call, msg):
            seen.append(("call", call.name, msg.kind))

        @on_request("resources/read")
        def read(self, msg):
            seen.append(("read", msg.method, msg.direction))

        @on_response("tools/call")
        def answer(self, msg):
            seen.append(("answer", msg.kind))

    wit = sys.modules["wit_world.imports.types"]
    lent = Lent(wit, method="resources/read")
    intercept(glue, Split, lent)
    assert lent.calls == []
    assert seen == [("read", "resources/read", Direction.TO_SERVER)]

    lent = Lent(wit)
    intercept(glue, Split, lent)
    assert lent.calls == ["payload"]
    assert seen[-1] == ("call", "x", Kind.REQUEST)

    intercept(glue, Split, Lent(wit, kind="RESPONSE", to_client=True))
    assert seen[-1] == ("answer", Kind.RESPONSE)


def test_parts_are_read_once_on_first_access(glue):
    class Redact(Plugin):
        @on_response("tools/call")
        def redact(self, msg):
            if "secret" in msg.payload and msg.payload.startswith("{"):
                return Rewrite(msg.payload.replace("secret", "[redacted]"))

    wit = sys.modules["wit_world.imports.types"]
    lent = Lent(wit, kind="RESPONSE", payload='{"t":"a secret"}', to_client=True)
    verdict = intercept(glue, Redact, lent)
    assert verdict == wit.Verdict_Rewrite('{"t":"a [redacted]"}')
    assert lent.calls == ["payload"]


PARTS, LENT_PARTS = message_module._PARTS, message_module._LENT_PARTS


def test_every_part_reads_converted_from_wit_types(glue):
    parts = {}

    class Reader(Plugin):
        def on_error(self, msg):
            for name in PARTS:
                parts[name] = getattr(msg, name)

    wit = sys.modules["wit_world.imports.types"]
    lent = Lent(wit, kind="ERROR", payload=None, to_client=True)
    lent.values["error"] = wit.RpcError(-32000, "boom", '{"a":1}')
    lent.values["request_payload"] = '{"q":1}'
    lent.values["elapsed_us"] = 1250
    lent.values["subject"] = "search"
    lent.values["principal"] = wit.Principal("alice", "https://idp.test", ["admin"], '{"sub":"alice","n":[1]}')
    intercept(glue, Reader, lent)
    assert parts["elapsed_us"] == 1250 and parts["subject"] == "search"
    assert parts["principal"] == Principal("alice", "https://idp.test", ["admin"], {"sub": "alice", "n": [1]})
    assert parts["payload"] is None and parts["request_payload"] == '{"q":1}'
    assert parts["direction"] is Direction.TO_CLIENT
    assert parts["kind"] is Kind.ERROR
    assert parts["error"].code == -32000 and parts["error"].data == '{"a":1}'
    assert (parts["method"], parts["id"], parts["session"], parts["server"]) == ("tools/call", "7", "s", "b")
    # Each part not given with the call, once; an error has no payload.
    assert sorted(lent.calls) == sorted(set(LENT_PARTS) - {"payload"})


def test_parts_a_kind_never_has_are_none_without_a_host_call(glue):
    parts = []

    class Reader(Plugin):
        def on_request(self, msg):
            parts.append((msg.error, msg.request_payload, msg.elapsed_us))

        def on_error(self, msg):
            parts.append((msg.payload, msg.payload_size))

        def on_notification(self, msg):
            parts.append((msg.id, msg.error, msg.request_payload, msg.elapsed_us))

    wit = sys.modules["wit_world.imports.types"]
    for kind in ("REQUEST", "ERROR", "NOTIFICATION"):
        lent = Lent(wit, kind=kind)
        lent.values.update(
            id="1", payload="{}", error=wit.RpcError(1, "x", None), request_payload="{}", elapsed_us=5, payload_size=2
        )
        intercept(glue, Reader, lent)
        assert lent.calls == [], kind
    assert parts == [(None, None, None), (None, 0), (None, None, None, None)]


def test_the_payload_size_comes_from_the_host_until_the_payload_is_read(glue):
    sizes = []

    class Sizer(Plugin):
        def on_response(self, msg):
            sizes.append(msg.payload_size)
            sizes.append(len(msg.payload))
            sizes.append(msg.payload_size)

    wit = sys.modules["wit_world.imports.types"]
    lent = Lent(wit, kind="RESPONSE", payload='{"t":"é"}', to_client=True)
    lent.values["payload_size"] = 10
    intercept(glue, Sizer, lent)
    assert sizes == [10, 9, 10], "the size is in UTF-8 bytes, from the host or the payload read"
    assert lent.calls == ["payload_size", "payload"]


def test_a_message_kept_after_the_call_is_read_whole_before_it_returns(glue):
    class Keeper(Plugin):
        kept = None

        @on_response("tools/call")
        def keep(self, msg):
            Keeper.kept = msg

    wit = sys.modules["wit_world.imports.types"]
    lent = Lent(wit, kind="RESPONSE", payload='{"x":1}')
    intercept(glue, Keeper, lent)
    assert Keeper.kept.payload == '{"x":1}' and Keeper.kept.session == "s"
    assert Keeper.kept.json() == {"x": 1}
    assert sorted(lent.calls) == sorted(set(LENT_PARTS) - {"error"}), "a response has no error"


def test_a_copy_of_a_lent_message_is_whole(glue):
    copies = []

    class Copier(Plugin):
        @on_response("tools/call")
        def keep_a_copy(self, msg):
            copies.append(copy.copy(msg))

    wit = sys.modules["wit_world.imports.types"]
    lent = Lent(wit, kind="RESPONSE", payload='{"x":1}')
    intercept(glue, Copier, lent)
    assert copies[0].payload == '{"x":1}' and copies[0].kind is Kind.RESPONSE and copies[0]._lent is None
    assert sorted(lent.calls) == sorted(set(LENT_PARTS) - {"error"})


def test_a_part_not_read_during_the_call_is_an_error_not_a_trap():
    msg = Message.__new__(Message)
    msg._lent = None
    with pytest.raises(RuntimeError, match="msg.payload was not read while the host lent the message"):
        msg.payload
    with pytest.raises(AttributeError):
        msg.no_such_part


def test_the_runtime_lends_every_message_through_one_object_and_no_finalizer(glue):
    # What componentize-py does around each `intercept`, with what it looked
    # up once the app was imported.
    wit = sys.modules["wit_world.imports.types"]
    finalize, lend = weakref.finalize, wit.Message.__new__
    drop = sys.modules["componentize_py_runtime"].drop_resource
    lent = lend(wit.Message)
    for handle in (7, 8):
        assert lend(wit.Message) is lent
        lent.handle = handle
        lent.finalizer = finalize(lent, drop, 12, handle)
        del lent.handle
        lent.finalizer.detach()
    assert not hasattr(lent, "handle") and not vars(lent)
    # `init` puts the real `weakref.finalize` back before plugin code runs.
    glue.bind(PassEverything)().init("{}")
    assert weakref.finalize is glue._FINALIZE and weakref.finalize.__module__ == "weakref"
    # A runtime that lent the message with a real finalizer would trap at once.
    real = weakref.finalize(lent, drop, 12, 9)
    with pytest.raises(TypeError):
        lent.finalizer = real
    real.detach()


def test_other_resources_get_real_finalizers_from_what_the_runtime_hands_them(glue):
    # What componentize-py does when a `wasi:http` call returns a resource, with
    # the `weakref.finalize` it looked up once the app was imported.
    streams = sys.modules["wit_world.imports.streams"]
    runtime = sys.modules["componentize_py_runtime"]
    finalize = weakref.finalize
    glue.bind(PassEverything)().init("{}")

    stream = streams.InputStream.__new__(streams.InputStream)
    stream.handle = 5
    stream.finalizer = finalize(stream, runtime.drop_resource, 12, 5)
    # Moved to the host (an owned argument): detached, never dropped here.
    assert stream.finalizer.detach() == (stream, runtime.drop_resource, (12, 5), {})
    del stream
    assert runtime.dropped == []

    # Collected while the plugin owns it: dropped once.
    stream = streams.InputStream.__new__(streams.InputStream)
    stream.handle = 6
    stream.finalizer = finalize(stream, runtime.drop_resource, 12, 6)
    del stream
    assert runtime.dropped == [(12, 6)]

    # A bindings constructor sets a real finalizer itself (after `init`): kept.
    made = streams.InputStream.__new__(streams.InputStream)
    made.handle = 7
    made.finalizer = weakref.finalize(made, runtime.drop_resource, 12, 7)
    made.finalizer()
    assert runtime.dropped == [(12, 6), (12, 7)]


def test_handlers_of_every_method_answer_without_a_route(glue):
    class Verdicts(Plugin):
        def on_request(self, msg):
            return Rewrite(msg.payload)  # the same text: a pass

        def on_response(self, msg):
            return Reject(-32000, "no")

    wit = sys.modules["wit_world.imports.types"]
    lent = Lent(wit)
    assert isinstance(intercept(glue, Verdicts, lent), wit.Verdict_Pass)
    assert lent.calls == ["payload"]
    verdict = intercept(glue, Verdicts, Lent(wit, kind="RESPONSE", to_client=True))
    assert verdict == wit.Verdict_Reject(wit.RpcError(-32000, "no", None))


class Mixed(Plugin):
    @tool_call
    def call(self, call, msg):
        pass

    @on_response("resources/*", "tools/call")
    def answer(self, msg):
        pass

    @method("resources/read", kinds=["request", "error"])
    def read(self, msg):
        pass


@pytest.mark.parametrize("entry", [PassEverything, Mixed])
def test_routes_are_the_matching_handlers(entry):
    plugin = load(entry)
    for kind in _ALL_KINDS:
        for name in ["tools/call", "resources/read", "resources/list", "x"]:
            routed, single = plugin.route(kind, name)
            assert routed == plugin.handlers_for(kind, name), (kind, name)
            assert single == (routed[0][0] if len(routed) == 1 and routed[0][1] == "message" else None)


def test_a_direct_handler_is_the_only_one_of_its_kind_for_every_method():
    class Some(Plugin):
        @method("*", kinds=["request", "error"])
        def every(self, msg):
            pass

        @on_request("tools/call")
        def call(self, msg):
            pass

        @on_notification
        def note(self, msg):
            pass

        @tool_result
        def result(self, result, msg):
            pass

    plugin = load(Some)
    direct = [plugin.direct_handler(kind) for kind in _ALL_KINDS]
    assert direct == [None, None, plugin.instance.every, plugin.instance.note]
    passing = load(PassEverything)
    assert passing.direct_handler(Kind.RESPONSE) == passing.instance.on_response


def test_wit_enums_lift_straight_into_the_sdk_members(glue):
    wit = sys.modules["wit_world.imports.types"]
    assert [wit.Kind(i) for i in range(4)] == list(_ALL_KINDS)
    assert [wit.Direction(i) for i in range(2)] == [Direction.TO_SERVER, Direction.TO_CLIENT]
    assert [(kind.name, wit_kind._value_) for kind, wit_kind in glue._KIND_TO_WIT.items()] == [
        ("REQUEST", 0),
        ("RESPONSE", 1),
        ("ERROR", 2),
        ("NOTIFICATION", 3),
    ]


def test_init_returns_one_wit_interest_per_kind_the_handlers_take(glue):
    class Policy(Plugin):
        @on_request("tools/call")
        def call(self, msg):
            pass

        @on_response("tools/list")
        def listed(self, msg):
            pass

    manifest = glue.bind(Policy)().init("{}")
    interceptor = sys.modules["wit_world.exports.interceptor"]
    to_wit = glue._KIND_TO_WIT
    assert manifest.interests == [
        interceptor.Interest(kinds=[to_wit[Kind.REQUEST]], methods=["tools/call"]),
        interceptor.Interest(kinds=[to_wit[Kind.RESPONSE]], methods=["tools/list"]),
    ]


def test_store_calls_reach_the_wit_store_and_its_errors_become_store_errors(glue):
    from interpose_plugin import StoreError, store

    wit_store = sys.modules["wit_world.imports.store"]
    assert store.increment("n", 1, ttl_ms=60_000) == 8
    store.set("k", "v")
    assert store.get("k") == b"7"
    store.delete("k")
    assert wit_store.calls == [
        ("increment", "n", 1, 60_000),
        ("set", "k", b"v", None),
        ("get", "k"),
        ("delete", "k"),
    ]
    wit_store.fault = wit_store.StoreError_Unavailable("connection refused")
    with pytest.raises(StoreError) as err:
        store.increment("n")
    assert (err.value.kind, err.value.detail) == ("unavailable", "connection refused")
    wit_store.fault = wit_store.StoreError_NotANumber()
    with pytest.raises(StoreError) as err:
        store.get("n")
    assert (err.value.kind, err.value.detail) == ("not-a-number", None)
