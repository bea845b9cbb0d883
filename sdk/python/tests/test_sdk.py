"""The SDK under plain CPython: declaring plugins, the derived manifest,
dispatch, verdicts, host stand-ins, typed views and serde-style reading."""

import copy
import json
import types

import pytest

from interpose_plugin import (
    PASS,
    ConfigError,
    Direction,
    InitError,
    Interest,
    Kind,
    Message,
    Pass,
    Plugin,
    Principal,
    RawJson,
    Reject,
    Respond,
    Rewrite,
    RpcError,
    init,
    StoreError,
    kv,
    log,
    method,
    store,
    on_notification,
    on_request,
    on_response,
    tool_call,
    tool_result,
)
from interpose_plugin import mcp, schema
from interpose_plugin.plugin import load
from interpose_plugin.testing import fail_store, kv_store, reset, take_logs


@pytest.fixture(autouse=True)
def fresh_host():
    reset()


class Policy(Plugin):
    name = "policy"
    version = "1.2.3"

    def init(self, config):
        self.blocked = config.get("blocked", "rm")

    @tool_call
    def call(self, call, msg):
        if call and call.name == self.blocked:
            return Reject(RpcError.INVALID_PARAMS, f"no {call.name}", {"tool": call.name})
        return None

    @method("resources/*", kinds="response")
    def resource(self, msg):
        return Rewrite({"contents": []})

    def on_notification(self, msg):
        return Reject(0, "dropped")


def test_class_plugin_manifest_is_derived_from_its_handlers():
    manifest = load(Policy).manifest
    assert (manifest.name, manifest.version) == ("policy", "1.2.3")
    assert manifest.interests == (
        Interest(kinds=(Kind.REQUEST,), methods=("tools/call",)),
        Interest(kinds=(Kind.RESPONSE,), methods=("resources/*",)),
        Interest(kinds=(Kind.NOTIFICATION,), methods=()),
    ), "one interest per kind a handler takes; on_notification takes every method"
    assert not manifest.wants_request


def test_narrow_handlers_give_a_narrow_manifest():
    class Narrow(Plugin):
        wants_request = True

        @tool_call
        def a(self, call, msg):
            pass

        @tool_result
        def b(self, result, msg):
            pass

        @on_request("resources/read", "prompts/*")
        def c(self, msg):
            pass

    manifest = load(Narrow).manifest
    assert manifest.name == "narrow"
    assert manifest.interests == (
        Interest(kinds=(Kind.REQUEST,), methods=("tools/call", "resources/read", "prompts/*")),
        Interest(kinds=(Kind.RESPONSE,), methods=("tools/call",)),
    )
    assert manifest.wants_request


def test_dispatch_by_kind_and_method():
    plugin = load(Policy, {"blocked": "drop"})
    assert plugin.intercept(Message.request("tools/call", {"name": "ls"})) == PASS
    verdict = plugin.intercept(Message.request("tools/call", {"name": "drop"}))
    assert verdict == Reject(-32602, "no drop", {"tool": "drop"})
    assert verdict.data == '{"tool":"drop"}'
    assert plugin.intercept(Message.response("resources/read", {"contents": [1]})) == Rewrite('{"contents":[]}')
    assert plugin.intercept(Message.request("resources/read", {})) == PASS, "kind not asked for"
    assert plugin.intercept(Message.notification("notifications/progress", {})) == Reject(0, "dropped")
    assert plugin.intercept(Message.response("tools/call", {})) == PASS


def test_first_handler_with_a_verdict_wins_and_rewrites_to_the_same_text_pass():
    seen = []

    class Two(Plugin):
        @on_request
        def first(self, msg):
            seen.append("first")
            return Rewrite(msg.payload)  # unchanged: becomes a pass

        @on_request("x")
        def second(self, msg):
            seen.append("second")
            return Respond({"ok": True})

    plugin = load(Two)
    assert plugin.intercept(Message.request("x", {"a": 1})) == Respond('{"ok":true}')
    assert seen == ["first", "second"]
    assert plugin.intercept(Message.request("y", {"a": 1})) == PASS


def test_module_plugins_use_module_level_handlers():
    module = types.ModuleType("my_guard")
    module.NAME = "guard"
    exec(
        "from interpose_plugin import init, on_response, Pass, Reject\n"
        "STATE = {}\n"
        "@init\n"
        "def setup(config):\n"
        "    STATE['word'] = config['word']\n"
        "@on_response('tools/call')\n"
        "def check(msg):\n"
        "    return Reject(1, 'no') if STATE['word'] in msg.payload else Pass()\n",
        module.__dict__,
    )
    plugin = load(module, '{"word": "secret"}')
    assert plugin.manifest.name == "guard"
    assert plugin.manifest.interests == (Interest(kinds=(Kind.RESPONSE,), methods=("tools/call",)),)
    assert plugin.intercept(Message.response("tools/call", {"t": "a secret"})) == Reject(1, "no")
    assert plugin.intercept(Message.response("tools/call", {"t": "fine"})) == PASS


def test_init_errors_become_the_users_message():
    class Picky(Plugin):
        def init(self, config):
            if "x" not in config:
                raise ConfigError("invalid config: `x` is required")
            config["x"] + 1

        def on_request(self, msg):
            pass

    with pytest.raises(InitError, match=r"^invalid config: `x` is required$"):
        load(Picky, "{}")
    with pytest.raises(InitError, match=r"^init failed: TypeError: "):
        load(Picky, {"x": "1"})
    with pytest.raises(InitError, match="invalid config: expected a table"):
        load(Picky, "[1]")


def test_a_plugin_without_handlers_is_an_error():
    class Empty(Plugin):
        pass

    with pytest.raises(TypeError, match="has no handlers"):
        load(Empty)


def test_handlers_must_return_verdicts():
    class Wrong(Plugin):
        def on_request(self, msg):
            return "pass"

    with pytest.raises(TypeError, match="a handler returned str"):
        load(Wrong).intercept(Message.request("x"))


def test_verdict_payloads_serialize_values_and_views():
    assert Rewrite({"é": [1, 2.5]}).text == '{"é":[1,2.5]}'
    assert Rewrite('{"raw": true}').text == '{"raw": true}'
    assert Respond(mcp.ToolResult.of_text("hi")).json() == {"content": [{"type": "text", "text": "hi"}]}
    assert Reject(1, "m", "text").data == '"text"'
    assert Reject(1, "m", RawJson('{"a":1}')).data == '{"a":1}'
    assert Pass() == PASS and Pass().is_pass


def test_host_stand_ins_record_logs_and_keep_values():
    log.info("hello")
    log.warn("careful")
    log("debug", "detail")
    assert take_logs() == [("info", "hello"), ("warn", "careful"), ("debug", "detail")]
    kv.set("a", "text")
    kv.set("b", b"\x00\x01", ttl_ms=60_000)
    kv.set_json("c", {"n": 1})
    assert kv.get("a") == b"text" and kv.get_str("a") == "text" and kv.get_json("c") == {"n": 1}
    kv.delete("a")
    assert kv.get("a") is None
    kv.set("gone", "x", ttl_ms=0)
    assert kv.get("gone") is None
    assert kv_store() == {"b": b"\x00\x01", "c": b'{"n":1}'}


def test_store_stand_in_increments_and_raises_store_errors():
    assert store.increment("n", ttl_ms=60_000) == 1
    assert store.increment("n", 4) == 5
    assert store.get("n") == b"5" and kv.get("n") == b"5", "one store behind both"
    store.set("t", "text")
    with pytest.raises(StoreError) as err:
        store.increment("t")
    assert err.value.kind == "not-a-number"
    fail_store("unavailable", "connection refused")
    with pytest.raises(StoreError) as err:
        store.get("n")
    assert (err.value.kind, err.value.detail, str(err.value)) == (
        "unavailable",
        "connection refused",
        "unavailable: connection refused",
    )
    assert kv.get("n") == b"5", "kv never raises"
    fail_store(None)
    store.delete("n")
    assert store.get("n") is None


def test_typed_views_keep_unknown_fields():
    msg = Message.request("tools/call", {"name": "echo", "arguments": {"text": "hi"}, "_meta": {"progressToken": 1}})
    call = msg.tool_call()
    assert (call.name, call.argument("text"), call.extra) == ("echo", "hi", {"_meta": {"progressToken": 1}})
    assert call.to_dict() == msg.json()

    result = Message.response(
        "tools/call",
        {"content": [{"type": "text", "text": "a"}, {"type": "image", "data": "x"}], "isError": False, "_meta": {}},
    ).tool_result()
    assert list(result.texts()) == ["a"]
    assert result.edit_texts(str.upper)
    assert result.to_dict() == {
        "content": [{"type": "text", "text": "A"}, {"type": "image", "data": "x"}],
        "isError": False,
        "_meta": {},
    }

    answer = Message.response("tools/call", {"content": []}, request={"name": "echo"})
    assert answer.tool_call().name == "echo"
    assert Message.response("resources/read", {"contents": [{"uri": "u", "text": "t"}]}).resource_contents().contents[0].text == "t"
    prompt = Message.response("prompts/get", {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}]}).prompt()
    assert prompt.messages[0].content.as_text() == "hi"
    tools = Message.response("tools/list", {"tools": [{"name": "a", "title": "A"}], "nextCursor": "2"}).tools_list()
    assert tools.tools[0].extra == {"title": "A"} and tools.next_cursor == "2"
    assert Message.request("tools/list").tool_call() is None


def test_messages_describe_themselves():
    msg = Message.error_answer("tools/call", -32000, "boom", {"why": 1})
    assert msg.is_error and msg.is_answer and msg.direction is Direction.TO_CLIENT
    assert msg.error == RpcError(-32000, "boom", '{"why":1}')
    assert msg.error.data_json() == {"why": 1}
    assert Message.notification("n", to_client=True).direction is Direction.TO_CLIENT


def test_schema_reads_like_serde_json():
    shape = schema.Struct(
        "Config",
        [schema.Field("name", schema.Str()), schema.Field("count", schema.Int(), default=1)],
        deny_unknown=True,
    )
    assert schema.parse('{"name": "a"}', shape) == {"name": "a", "count": 1}
    with pytest.raises(schema.SchemaError, match=r"^missing field `name` at line 1 column 2$"):
        schema.parse("{}", shape)
    with pytest.raises(schema.SchemaError, match=r"^unknown field `nam`, expected `name` or `count` at line 1 column 6$"):
        schema.parse('{"nam": 1}', shape)
    with pytest.raises(schema.SchemaError, match=r'^invalid type: string "x", expected u64 at line 2 column 12$'):
        schema.parse('{"name": "a",\n"count": "x"}', shape)
    with pytest.raises(ConfigError, match=r"^invalid config: duplicate field `name` at line 1 column 18$"):
        schema.parse_config('{"name":"a","name":"b"}', shape)


def test_schema_writes_like_serde_json():
    assert schema.dumps({"b": [1.0, 1e16, 1.5e-7, 0.00001, -0.0], "a": "é\n"}) == '{"a":"é\\n","b":[1.0,1e+16,1.5e-7,0.00001,-0.0]}'
    assert schema.dumps_struct([("z", 1), ("a", {"y": 2, "x": 1})]) == '{"z":1,"a":{"x":1,"y":2}}'


def test_answers_carry_their_wait_and_payload_size():
    answer = Message.response("tools/call", '{"t":"é"}', elapsed_us=1250)
    assert (answer.elapsed_us, answer.payload_size) == (1250, 10)


def test_a_built_message_has_a_principal_only_when_given_one():
    assert Message.request("tools/call", {"name": "x"}).principal is None
    alice = Principal("alice", "https://idp.test", ["mcp:tools", "admin"], {"email": "a@example.com"})
    msg = Message.request("tools/call", {"name": "x"}, principal=alice)
    assert msg.principal is alice
    assert (alice.subject, alice.issuer, alice.scopes) == ("alice", "https://idp.test", ("mcp:tools", "admin"))
    assert alice.has_scope("admin") and not alice.has_scope("root")
    assert alice.claims["email"] == "a@example.com"
    assert Principal("s", "i").claims == {} and Principal("s", "i").scopes == ()
    assert "a@example.com" not in repr(alice), "claims stay out of logs"
    assert copy.copy(msg).principal == alice, "a copy keeps it"


def test_the_subject_of_a_built_message_is_read_as_the_host_reads_it():
    call = Message.request("tools/call", {"arguments": {"name": "x"}, "name": "echo"})
    assert call.subject == "echo"
    assert Message.response("tools/call", {}).subject is None, "no request payload"
    assert Message.response("tools/call", {}, request={"name": "echo"}).subject == "echo"
    assert Message.request("resources/read", {"uri": "file:///a"}).subject == "file:///a"
    assert Message.request("tools/list", {}).subject is None
    assert Message.request("tools/call", {"name": 7}).subject is None
    assert Message.request("tools/call", '{"name":"rm","name":"ls"}').subject is None, "a duplicate, as serde"
    assert Message.request("tools/call", '{"name":"a","uri":3}').subject is None, "as serde"
    assert Message.request("tools/call", "[1]").subject is None
    assert Message.request("tools/call", {"name": "a"}, subject="b").subject == "b"
    assert Message.request("tools/call").payload_size == 0
