from pathlib import Path

import pytest

from interpose_plugin import InitError, Interest, Kind, Message, Pass, Reject
from interpose_plugin.testing import kv_store, load_plugin, reset

PLUGIN = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_host():
    reset()


def test_manifest_asks_only_for_tool_calls():
    manifest = load_plugin(PLUGIN).manifest
    assert manifest.interests == (Interest(kinds=(Kind.REQUEST,), methods=("tools/call",)),)


def test_denied_tool_is_refused():
    plugin = load_plugin(PLUGIN, {"deny": ["delete_repo"]})
    verdict = plugin.intercept(Message.request("tools/call", {"name": "delete_repo", "arguments": {}}))
    assert verdict == Reject(-32602, "tool `delete_repo` is not allowed here")


def test_other_tools_pass_and_are_counted():
    plugin = load_plugin(PLUGIN, {"deny": ["delete_repo"]})
    for _ in range(2):
        assert plugin.intercept(Message.request("tools/call", {"name": "list_repos"})) == Pass()
    assert kv_store() == {"calls": b"2"}


def test_bad_config_is_refused():
    with pytest.raises(InitError, match="`deny` is a list of tool names"):
        load_plugin(PLUGIN, {"deny": "delete_repo"})
