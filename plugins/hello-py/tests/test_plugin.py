from pathlib import Path

from interpose_plugin import Message, Pass, Reject
from interpose_plugin.testing import load_plugin, take_logs

PLUGIN = Path(__file__).resolve().parents[1]


def test_denied_tool_is_refused():
    hello = load_plugin(PLUGIN, {"deny": ["rm"]})
    verdict = hello.intercept(Message.request("tools/call", {"name": "rm", "arguments": {}}))
    assert verdict == Reject(-32602, "tool `rm` is not allowed here")
    assert take_logs() == [("info", "refused rm")]
    assert hello.intercept(Message.request("tools/call", {"name": "ls"})) == Pass()


def test_results_are_tagged():
    hello = load_plugin(PLUGIN)
    result = {"content": [{"type": "text", "text": "hi"}]}
    verdict = hello.intercept(Message.response("tools/call", result))
    assert verdict.json() == {"content": [{"type": "text", "text": "[checked] hi"}]}
