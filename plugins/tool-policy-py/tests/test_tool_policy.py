import json
from pathlib import Path

import pytest

from interpose_plugin import InitError, Interest, Kind, Message, PASS, Principal, Reject, Rewrite, RpcError
from interpose_plugin.testing import load_plugin

PLUGIN = Path(__file__).resolve().parents[1]
DENIED = -32001


def plugin(config):
    return load_plugin(PLUGIN, config)


def call(policy, params):
    return policy.intercept(Message.request("tools/call", params))


def listing(policy, tools):
    return policy.intercept(Message.response("tools/list", {"tools": tools}))


def tool(name):
    return {"name": name, "inputSchema": {"type": "object"}}


def listed_names(verdict):
    assert isinstance(verdict, Rewrite), verdict
    return [t["name"] for t in verdict.json()["tools"]]


def rejection(verdict):
    assert isinstance(verdict, Reject), verdict
    return verdict


def test_manifest_asks_for_tool_calls_and_lists():
    manifest = plugin({}).manifest
    assert manifest.name == "tool-policy"
    assert manifest.interests == (
        Interest(kinds=(Kind.REQUEST,), methods=("tools/call",)),
        Interest(kinds=(Kind.RESPONSE,), methods=("tools/list",)),
    )


def test_empty_policy_passes_everything():
    policy = plugin({})
    assert call(policy, {"name": "anything"}) == PASS
    assert listing(policy, [tool("a")]) == PASS


def test_deny_wins_over_allow_and_names_the_rule():
    policy = plugin({"allow": ["repo_*"], "deny": ["repo_delete*"]})
    assert call(policy, {"name": "repo_list", "arguments": {}}) == PASS
    err = rejection(call(policy, {"name": "repo_delete", "arguments": {}}))
    assert err.code == DENIED
    assert err.message == "tool `repo_delete` is denied by tool-policy: it matches deny pattern `repo_delete*`"
    assert err.data == '{"plugin":"tool-policy","tool":"repo_delete"}'
    err = rejection(call(policy, {"name": "shell"}))
    assert err.message == "tool `shell` is denied by tool-policy: it matches no allow pattern"


def test_denied_tools_are_hidden_from_the_list_unless_configured():
    tools = [tool("repo_list"), tool("repo_delete"), tool("shell")]
    assert listed_names(listing(plugin({"allow": ["repo_*"], "deny": ["*delete*"]}), tools)) == ["repo_list"]
    policy = plugin({"deny": ["*delete*"], "hide_denied": False})
    assert listing(policy, tools) == PASS
    assert rejection(call(policy, {"name": "repo_delete"})).code == DENIED


def test_hidden_tools_vanish_and_calls_to_them_are_unknown():
    policy = plugin({"hide": ["debug_*"], "hide_denied": False})
    assert listed_names(listing(policy, [tool("debug_dump"), tool("echo")])) == ["echo"]
    assert rejection(call(policy, {"name": "debug_dump"})) == Reject(-32602, "Unknown tool: debug_dump")


def test_rename_shows_the_new_name_and_calls_the_backend_name():
    policy = plugin({"rename": {"search": "brave_web_search"}})
    verdict = listing(policy, [tool("brave_web_search"), tool("search"), tool("echo")])
    assert listed_names(verdict) == ["search", "echo"], "the backend's own `search` is shadowed"
    verdict = call(policy, {"name": "search", "arguments": {"q": "x"}, "_meta": {"progressToken": 7}})
    assert verdict.text == '{"name":"brave_web_search","arguments":{"q":"x"},"_meta":{"progressToken":7}}'
    assert rejection(call(policy, {"name": "brave_web_search"})).message == "Unknown tool: brave_web_search"


def test_policies_match_exposed_or_backend_names():
    policy = plugin({"rename": {"search": "web_search"}, "deny": ["web_*"]})
    assert rejection(call(policy, {"name": "search"})).code == DENIED
    assert listing(policy, [tool("web_search")]).json() == {"tools": []}


def test_pinned_arguments_override_and_stripped_ones_go():
    policy = plugin({"pin_arguments": {"search": {"safe": True, "limit": 10}}, "strip_arguments": {"*": ["debug"]}})
    verdict = call(policy, {"name": "search", "arguments": {"q": "x", "safe": False, "debug": 1}})
    assert verdict.json() == {"name": "search", "arguments": {"q": "x", "safe": True, "limit": 10}}
    assert call(policy, {"name": "other"}).json() == {"name": "other", "arguments": {}}


def test_rewrites_are_written_as_serde_json_writes_them():
    policy = plugin({"pin_arguments": {"*": {"big": 1e16, "small": 1.5e-7, "z": {"b": 1, "a": [0.1]}}}})
    verdict = call(policy, '{"name":"x","_meta":{"b":1,"a":2},"arguments":{"y":1}}')
    assert verdict.text == (
        '{"name":"x","arguments":{"big":1e+16,"small":1.5e-7,"y":1,"z":{"a":[0.1],"b":1}},"_meta":{"a":2,"b":1}}'
    )


def test_duplicate_argument_keys_are_collapsed_when_the_policy_touches_arguments():
    policy = plugin({"pin_arguments": {"read": {"path": "/safe"}}})
    raw = '{"name":"read","arguments":{"path":"/etc/passwd","path":"/safe"}}'
    assert policy.intercept(Message.request("tools/call", raw)) == Rewrite('{"name":"read","arguments":{"path":"/safe"}}')


def test_duplicate_or_missing_name_is_invalid_params():
    policy = plugin({"deny": ["rm"]})
    err = rejection(policy.intercept(Message.request("tools/call", '{"name":"ls","name":"rm"}')))
    assert err == Reject(-32602, "invalid tools/call params: duplicate field `name` at line 1 column 19")
    err = rejection(call(policy, {"arguments": {}}))
    assert err.message == "invalid tools/call params: missing field `name` at line 1 column 16"
    err = rejection(policy.intercept(Message.request("tools/call", '{"name":"rm","name":"ls"}')))
    assert err.message.startswith("invalid tools/call params: duplicate field `name`")


def test_an_allowed_untouched_tool_passes_on_its_name_alone():
    policy = plugin({"deny": ["rm"], "rename": {"search": "web_search"}})
    # Arguments are the backend's to check: the name decides.
    assert call(policy, {"name": "ls", "arguments": 5}) == PASS
    # Any other tool gets the strict parse first: denied, renamed alike.
    for name in ("rm", "search"):
        err = rejection(call(policy, {"name": name, "arguments": 5}))
        assert err.message.startswith("invalid tools/call params"), err.message
    assert "denied" in rejection(call(policy, {"name": "rm"})).message


def test_list_schema_loses_pinned_and_stripped_arguments_and_keeps_the_rest():
    policy = plugin({"pin_arguments": {"search": {"safe": True}}, "strip_arguments": {"search": ["debug"]}})
    search = {
        "name": "search",
        "title": "Search",
        "inputSchema": {
            "type": "object",
            "properties": {"q": {"type": "string"}, "safe": {"type": "boolean"}, "debug": {"type": "integer"}},
            "required": ["q", "safe"],
        },
        "annotations": {"readOnlyHint": True},
    }
    verdict = policy.intercept(Message.response("tools/list", {"tools": [search], "nextCursor": "2"}))
    assert verdict.json() == {
        "tools": [
            {
                "name": "search",
                "title": "Search",
                "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
                "annotations": {"readOnlyHint": True},
            }
        ],
        "nextCursor": "2",
    }


def test_unreadable_list_fails_closed_and_other_messages_pass():
    policy = plugin({"hide": ["x"]})
    err = rejection(policy.intercept(Message.response("tools/list", '{"tools": 5}')))
    assert err.code == RpcError.INTERNAL_ERROR
    assert err.message == (
        "tool-policy could not read the tools/list result: invalid type: integer `5`, expected a sequence at line 1 column 11"
    )
    assert policy.intercept(Message.request("tools/list", "{}")) == PASS
    assert policy.intercept(Message.response("tools/call", '{"content": []}')) == PASS


def as_user(message, subject, scopes):
    message.principal = Principal(subject, "https://idp.test", scopes, {"sub": subject, "secret_claim": "never shown"})
    return message


def call_as(policy, name, subject, scopes):
    return policy.intercept(as_user(Message.request("tools/call", {"name": name, "arguments": {}}), subject, scopes))


def test_a_scope_rule_allows_only_principals_with_every_scope():
    policy = plugin({"require": [{"tools": ["delete_*"], "scopes": ["admin", "write"]}]})
    assert call_as(policy, "delete_repo", "alice", ["write", "admin"]) == PASS
    assert call_as(policy, "list_repos", "bob", []) == PASS, "no rule covers it"
    err = rejection(call_as(policy, "delete_repo", "bob", ["write"]))
    assert err.code == DENIED
    assert err.message == "tool `delete_repo` is denied by tool-policy: it requires scope `admin`"
    assert err.data == '{"plugin":"tool-policy","required":{"scopes":["admin"]},"tool":"delete_repo"}'
    err = rejection(call_as(policy, "delete_repo", "bob", []))
    assert err.message == "tool `delete_repo` is denied by tool-policy: it requires scopes `admin`, `write`"
    assert "never shown" not in err.data


def test_a_subject_rule_allows_only_those_subjects_and_every_matching_rule_must_hold():
    policy = plugin(
        {"require": [{"tools": ["deploy"], "subjects": ["alice", "carol"]}, {"tools": ["*"], "scopes": ["mcp:tools"]}]}
    )
    assert call_as(policy, "deploy", "alice", ["mcp:tools"]) == PASS
    err = rejection(call_as(policy, "deploy", "bob", ["mcp:tools"]))
    assert err.message == "tool `deploy` is denied by tool-policy: it is reserved for subjects `alice`, `carol`"
    assert err.data == '{"plugin":"tool-policy","required":{"subjects":["alice","carol"]},"tool":"deploy"}'
    err = rejection(call_as(policy, "deploy", "alice", []))
    assert err.message == "tool `deploy` is denied by tool-policy: it requires scope `mcp:tools`"


def test_a_session_without_a_principal_is_denied_by_require_rules():
    policy = plugin({"require": [{"tools": ["delete_*"], "scopes": ["admin"]}]})
    err = rejection(call(policy, {"name": "delete_repo"}))
    assert err.message == "tool `delete_repo` is denied by tool-policy: it requires an authenticated principal"
    assert err.data == '{"plugin":"tool-policy","required":{"scopes":["admin"]},"tool":"delete_repo"}'
    assert call(policy, {"name": "echo"}) == PASS
    anyone = plugin({"require": [{"tools": ["*"]}]})
    assert call_as(anyone, "echo", "bob", []) == PASS
    assert rejection(call(anyone, {"name": "echo"})).message == (
        "tool `echo` is denied by tool-policy: it requires an authenticated principal"
    )


def test_the_list_shows_each_principal_only_the_tools_it_may_call():
    policy = plugin(
        {"require": [{"tools": ["delete_*"], "scopes": ["admin"]}, {"tools": ["deploy"], "subjects": ["alice"]}]}
    )
    tools = [tool("echo"), tool("delete_repo"), tool("deploy")]

    def list_as(who):
        message = Message.response("tools/list", {"tools": tools})
        return policy.intercept(message if who is None else as_user(message, *who))

    assert list_as(("alice", ["admin"])) == PASS
    assert listed_names(list_as(("bob", ["admin"]))) == ["echo", "delete_repo"]
    assert listed_names(list_as(("alice", []))) == ["echo", "deploy"]
    assert listed_names(list_as(None)) == ["echo"]
    shown = plugin({"require": [{"tools": ["delete_*"], "scopes": ["admin"]}], "hide_denied": False})
    assert listing(shown, tools) == PASS


@pytest.mark.parametrize(
    "config, message",
    [
        ({"rename": {"a": "x", "b": "x"}}, "invalid config: `rename` maps both `a` and `b` to the backend tool `x`"),
        ({"deny": [""]}, "invalid config: an empty tool pattern"),
        ({"rename": {"": "x"}}, "invalid config: `rename` has an empty tool name"),
        (
            {"denied": []},
            "invalid config: unknown field `denied`, expected one of `allow`, `deny`, `hide`, `hide_denied`, "
            "`rename`, `pin_arguments`, `strip_arguments`, `require` at line 1 column 9",
        ),
        ({"require": [{"tools": [], "scopes": ["a"]}]}, "invalid config: a `require` rule names no tools"),
        ({"require": [{"tools": [""]}]}, "invalid config: an empty tool pattern"),
        (
            {"require": [{"tools": ["a"], "scope": ["x"]}]},
            "invalid config: unknown field `scope`, expected one of `tools`, `scopes`, `subjects` at line 1 column 34",
        ),
        ({"require": [{"scopes": ["x"]}]}, "invalid config: missing field `tools` at line 1 column 28"),
        ({"pin_arguments": {"a": 1}}, "invalid config: invalid type: integer `1`, expected a map at line 1 column 23"),
    ],
)
def test_config_errors(config, message):
    with pytest.raises(InitError) as err:
        plugin(config)
    assert str(err.value) == message


def test_globs():
    from importlib import import_module

    glob = import_module(load_plugin(PLUGIN, {}).instance.__module__).glob_matches
    assert glob("read_file", "read_file") and not glob("read_file", "read_files")
    assert glob("*", "") and glob("*", "anything")
    assert glob("delete_*", "delete_repo") and glob("delete_*", "delete_") and not glob("delete_*", "undelete_repo")
    assert glob("*_admin", "db_admin") and glob("*secret*", "get_secret_value")
    assert glob("a*b*c", "a--b--b--c") and not glob("a*b*c", "a--b--b--")
    assert glob("file_?", "file_1") and not glob("file_?", "file_12")
    assert glob("naïve_*", "naïve_tool")
