"""The Python SDK client against tests/servers/full_server.py, directly and through interpose.

Each test runs a scenario with the typed `mcp` client, asserts on what it got,
and (in proxy mode) asserts that it got exactly what the direct run got, in
wire form (`model_dump(mode="json", by_alias=True, exclude_none=True)`).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))

from full_server import BIG_DEFAULT_SIZE, big_text  # noqa: E402
from sdk import Callbacks, dump, open_session  # noqa: E402

pytestmark = pytest.mark.anyio


def tool_text(result: types.CallToolResult) -> str:
    assert result.content and isinstance(result.content[0], types.TextContent), result
    return result.content[0].text


def tool_json(result: types.CallToolResult) -> object:
    return json.loads(tool_text(result))


async def test_initialize_and_lists(observe):
    """initialize passes through; tools, resources (all pages), templates and prompts lists are identical."""

    async def scenario(argv):
        async with open_session(argv) as (s, _):
            pages = []
            cursor = None
            while True:
                page = await s.list_resources(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
                pages.append(dump(page))
                cursor = page.next_cursor
                if cursor is None:
                    break
            return {
                "initialize": dump(s.initialize_result),
                "tools": dump(await s.list_tools()),
                "resource_pages": pages,
                "templates": dump(await s.list_resource_templates()),
                "prompts": dump(await s.list_prompts()),
            }

    obs = await observe(scenario)
    init = obs["initialize"]
    assert init["serverInfo"]["name"] == "interpose-full-server"
    assert init["protocolVersion"] == "2025-11-25"
    assert init["capabilities"]["tools"] == {"listChanged": True}
    assert init["capabilities"]["resources"] == {"listChanged": True, "subscribe": True}
    tool_names = [t["name"] for t in obs["tools"]["tools"]]
    assert tool_names[:3] == ["echo", "add", "fail"] and "meta_echo" in tool_names
    assert [p.get("nextCursor") for p in obs["resource_pages"]] == ["page:2", "page:4", None]
    uris = [r["uri"] for p in obs["resource_pages"] for r in p["resources"]]
    assert uris == [f"test://static/{i}" for i in range(5)] + ["test://static/blob"]
    assert obs["templates"]["resourceTemplates"][0]["uriTemplate"] == "test://items/{id}"
    assert [p["name"] for p in obs["prompts"]["prompts"]] == ["greet", "simple"]


async def test_tool_results(observe):
    """Plain text, structuredContent with an outputSchema, and an isError result."""

    async def scenario(argv):
        async with open_session(argv) as (s, _):
            await s.list_tools()  # lets the client validate structuredContent against outputSchema
            return {
                "echo": dump(await s.call_tool("echo", {"text": "héllo ✓"})),
                "add": dump(await s.call_tool("add", {"a": 2, "b": 3.5})),
                "fail": dump(await s.call_tool("fail", {})),
            }

    obs = await observe(scenario)
    assert obs["echo"]["content"] == [{"type": "text", "text": "héllo ✓"}]
    assert obs["add"]["structuredContent"] == {"sum": 5.5, "operands": [2, 3.5]}
    assert obs["fail"]["isError"] is True
    assert obs["fail"]["content"][0]["text"] == "the tool failed on purpose"


async def test_jsonrpc_error_unchanged(observe):
    """A JSON-RPC error from the backend keeps its code, message and data."""

    async def scenario(argv):
        async with open_session(argv) as (s, _):
            with pytest.raises(MCPError) as tool_err:
                await s.call_tool("raise_error", {})
            with pytest.raises(MCPError) as read_err:
                await s.read_resource("test://nowhere/1")
            with pytest.raises(MCPError) as prompt_err:
                await s.get_prompt("greet", {})
            return {
                "tool": dump(tool_err.value.error),
                "read": dump(read_err.value.error),
                "prompt": dump(prompt_err.value.error),
            }

    obs = await observe(scenario)
    assert obs["tool"] == {
        "code": -32042,
        "message": "custom failure from full_server",
        "data": {"reason": "on purpose", "nested": {"list": [1, 2.5, "three", None, True]}, "unicode": "é✓"},
    }
    assert obs["read"] == {"code": -32002, "message": "Resource not found", "data": {"uri": "test://nowhere/1"}}
    assert obs["prompt"]["code"] == types.INVALID_PARAMS


async def test_resources_prompts_completion(observe):
    """resources/read (text, blob, template), prompts/get and completion/complete."""

    async def scenario(argv):
        async with open_session(argv) as (s, _):
            return {
                "static": dump(await s.read_resource("test://static/3")),
                "blob": dump(await s.read_resource("test://static/blob")),
                "item": dump(await s.read_resource("test://items/42")),
                "greet": dump(await s.get_prompt("greet", {"name": "Ada", "style": "formal"})),
                "simple": dump(await s.get_prompt("simple")),
                "complete_prompt": dump(
                    await s.complete(types.PromptReference(type="ref/prompt", name="greet"), {"name": "style", "value": "f"})
                ),
                "complete_template": dump(
                    await s.complete(
                        types.ResourceTemplateReference(type="ref/resource", uri="test://items/{id}"),
                        {"name": "id", "value": "1"},
                    )
                ),
            }

    obs = await observe(scenario)
    assert obs["static"]["contents"][0]["text"] == "contents of test://static/3"
    assert obs["blob"]["contents"][0]["blob"] == "AAEC/w=="
    assert json.loads(obs["item"]["contents"][0]["text"]) == {"id": "42", "kind": "item"}
    assert obs["greet"]["messages"][0]["content"]["text"] == "Greet Ada in a formal way."
    assert obs["complete_prompt"]["completion"]["values"] == ["fancy", "formal", "friendly", "funny"]
    assert obs["complete_template"]["completion"]["values"] == ["1", "10", "11"]


async def test_logging_set_level(observe):
    """logging/setLevel reaches the backend and the log notifications reach the client."""

    async def scenario(argv):
        async with open_session(argv) as (s, rec):
            everything = tool_json(await s.call_tool("log", {}))
            await s.set_logging_level("warning")
            filtered = tool_json(await s.call_tool("log", {}))
            with anyio.fail_after(5):
                while len(rec.logs) < 7:
                    await anyio.sleep(0.01)
            return {"sent": [everything, filtered], "logs": [dump(p) for p in rec.logs]}

    obs = await observe(scenario)
    assert obs["sent"][1] == {"sent": ["warning", "error"]}
    assert [entry["level"] for entry in obs["logs"]] == ["debug", "info", "notice", "warning", "error", "warning", "error"]
    assert obs["logs"][3] == {"level": "warning", "logger": "full-server", "data": {"n": 3, "msg": "warning message"}}


async def test_progress(observe):
    """notifications/progress for the caller's token reach the progress callback, in order."""

    async def scenario(argv):
        seen = []

        async def on_progress(progress, total, message):
            seen.append([progress, total, message])

        async with open_session(argv) as (s, _):
            result = await s.call_tool("progress", {"steps": 4}, progress_callback=on_progress)
            return {"result": dump(result), "progress": seen}

    obs = await observe(scenario)
    assert obs["progress"] == [[i, 4, f"step {i} of 4"] for i in range(1, 5)]
    assert obs["result"]["content"][0]["text"] == "progressed 4 steps"


async def test_cancellation_reaches_backend(observe):
    """Cancelling a call in flight sends notifications/cancelled, and it reaches the backend's handler."""

    async def scenario(argv):
        async with open_session(argv) as (s, _):
            started = anyio.Event()

            async def on_progress(progress, total, message):
                started.set()

            async def call_slow():
                await s.call_tool("slow", {"label": "cancel-me"}, progress_callback=on_progress)

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call_slow)
                    await started.wait()
                    tg.cancel_scope.cancel()
                # The cancellation is a notification: poll until the backend has seen it.
                status = None
                while True:
                    status = tool_json(await s.call_tool("cancel_status", {}))
                    if status["cancelled"]:
                        break
                    await anyio.sleep(0.05)
            echo = dump(await s.call_tool("echo", {"text": "still alive"}))
            return {"status": status, "echo_after": echo}

    obs = await observe(scenario)
    assert obs["status"] == {"cancelled": ["cancel-me"]}
    assert obs["echo_after"]["content"][0]["text"] == "still alive"


async def test_sampling_full_result(observe):
    """sampling/createMessage: the server's request reaches the client and the client's full result reaches the server."""

    async def scenario(argv):
        cb = Callbacks()
        cb.sampling_result = types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="A sampled answer ✓", _meta={"interpose-test/c": 1}),
            model="e2e-model-1",
            stop_reason="maxTokens",
            _meta={"interpose-test/sampling": {"kept": True}},
        )
        async with open_session(argv, callbacks=cb) as (s, rec):
            result = await s.call_tool("sample", {"prompt": "Say something"})
            return {"result": dump(result), "server_requests": rec.server_requests}

    obs = await observe(scenario)
    method, params = obs["server_requests"][0]
    assert method == "sampling/createMessage"
    assert params["messages"] == [{"role": "user", "content": {"type": "text", "text": "Say something"}}]
    assert params["systemPrompt"] == "You are a test." and params["maxTokens"] == 64
    assert params["metadata"] == {"interpose-test": "sampling-metadata"}
    assert json.loads(obs["result"]["content"][0]["text"]) == {
        "_meta": {"interpose-test/sampling": {"kept": True}},
        "content": {"_meta": {"interpose-test/c": 1}, "text": "A sampled answer ✓", "type": "text"},
        "model": "e2e-model-1",
        "role": "assistant",
        "stopReason": "maxTokens",
    }


async def test_elicitation_form(observe):
    async def scenario(argv):
        cb = Callbacks()
        cb.elicitation_result = types.ElicitResult(action="accept", content={"name": "Ada", "age": 36, "color": "red"})
        async with open_session(argv, callbacks=cb) as (s, rec):
            result = await s.call_tool("elicit_form", {})
            cb.elicitation_result = types.ElicitResult(action="decline")
            declined = await s.call_tool("elicit_form", {})
            return {"accept": dump(result), "decline": dump(declined), "server_requests": rec.server_requests}

    obs = await observe(scenario)
    method, params = obs["server_requests"][0]
    assert method == "elicitation/create"
    assert params["message"] == "Who are you?"
    assert params["requestedSchema"]["required"] == ["name"]
    assert json.loads(obs["accept"]["content"][0]["text"]) == {
        "action": "accept",
        "content": {"name": "Ada", "age": 36, "color": "red"},
    }
    assert json.loads(obs["decline"]["content"][0]["text"]) == {"action": "decline"}


async def test_elicitation_url_mode(observe):
    """URL-mode elicitation/create, then notifications/elicitation/complete."""

    async def scenario(argv):
        cb = Callbacks()
        cb.elicitation_result = types.ElicitResult(action="accept")
        async with open_session(argv, callbacks=cb) as (s, rec):
            result = await s.call_tool("elicit_url", {})
            done = await rec.wait_for(lambda n: isinstance(n, types.ElicitCompleteNotification))
            return {"result": dump(result), "server_requests": rec.server_requests, "complete": dump(done)}

    obs = await observe(scenario)
    method, params = obs["server_requests"][0]
    assert method == "elicitation/create"
    assert params == {
        "mode": "url",
        "message": "Please authorise the test",
        "url": "https://example.invalid/authorise?x=1",
        "elicitationId": "elicit-0001",
    }
    assert json.loads(obs["result"]["content"][0]["text"]) == {"action": "accept"}
    assert obs["complete"] == {
        "method": "notifications/elicitation/complete",
        "params": {"elicitationId": "elicit-0001"},
    }


async def test_roots_and_list_changed(observe):
    """roots/list is relayed to the client, and notifications/roots/list_changed to the backend."""

    async def scenario(argv):
        cb = Callbacks()
        cb.roots = [types.Root(uri="file:///tmp/root-a", name="root-a")]
        async with open_session(argv, callbacks=cb) as (s, _):
            first = tool_json(await s.call_tool("roots", {}))
            cb.roots = [
                types.Root(uri="file:///tmp/root-b", name="root-b"),
                types.Root(uri="file:///tmp/root-c", _meta={"interpose-test/root": 3}),
            ]
            await s.send_roots_list_changed()
            with anyio.fail_after(5):
                while True:
                    second = tool_json(await s.call_tool("roots", {}))
                    if second["list_changed_seen"]:
                        break
                    await anyio.sleep(0.05)
            return {"first": first, "second": second}

    obs = await observe(scenario)
    assert obs["first"] == {"roots": [{"uri": "file:///tmp/root-a", "name": "root-a"}], "list_changed_seen": 0}
    assert obs["second"] == {
        "roots": [
            {"uri": "file:///tmp/root-b", "name": "root-b"},
            {"uri": "file:///tmp/root-c", "_meta": {"interpose-test/root": 3}},
        ],
        "list_changed_seen": 1,
    }


async def test_tools_list_changed_then_new_tool(observe):
    async def scenario(argv):
        async with open_session(argv) as (s, rec):
            before = [t.name for t in (await s.list_tools()).tools]
            added = dump(await s.call_tool("add_tool", {}))
            note = await rec.wait_for(lambda n: isinstance(n, types.ToolListChangedNotification))
            after = [t.name for t in (await s.list_tools()).tools]
            called = dump(await s.call_tool("dynamic_tool", {}))
            return {"before": before, "added": added, "note": dump(note), "after": after, "called": called}

    obs = await observe(scenario)
    assert "dynamic_tool" not in obs["before"]
    assert obs["note"] == {"method": "notifications/tools/list_changed"}
    assert obs["after"][-1] == "dynamic_tool"
    assert obs["called"]["content"][0]["text"] == "dynamic tool called"


async def test_resource_subscribe_and_updated(observe):
    async def scenario(argv):
        async with open_session(argv) as (s, rec):
            await s.subscribe_resource("test://static/1")
            touched = tool_json(await s.call_tool("touch", {"uri": "test://static/1"}))
            note = await rec.wait_for(lambda n: isinstance(n, types.ResourceUpdatedNotification))
            other = tool_json(await s.call_tool("touch", {"uri": "test://static/2"}))
            await s.unsubscribe_resource("test://static/1")
            after = tool_json(await s.call_tool("touch", {"uri": "test://static/1"}))
            updates = [dump(n) for n in rec.of_type(types.ResourceUpdatedNotification)]
            return {"touched": touched, "note": dump(note), "other": other, "after": after, "updates": updates}

    obs = await observe(scenario)
    assert obs["touched"] == {"notified": True}
    assert obs["note"] == {"method": "notifications/resources/updated", "params": {"uri": "test://static/1"}}
    assert obs["other"] == {"notified": False} and obs["after"] == {"notified": False}
    assert len(obs["updates"]) == 1


async def test_ping_both_ways(observe):
    async def scenario(argv):
        async with open_session(argv) as (s, _):
            pong = dump(await s.send_ping())
            client_ping = dump(await s.call_tool("ping_client", {}))
            return {"pong": pong, "client_ping": client_ping}

    obs = await observe(scenario)
    assert obs["pong"] == {}
    assert obs["client_ping"]["content"][0]["text"] == "client answered ping"


async def test_meta_both_ways(observe):
    """_meta on a request reaches the backend unchanged; _meta on the result reaches the client."""
    meta = {"interpose-test/req": {"n": 1, "s": "ünï", "list": [1, None, 2.5]}, "plain": True}

    async def scenario(argv):
        async with open_session(argv) as (s, _):
            result = await s.call_tool("meta_echo", {}, meta=meta)
            return dump(result)

    obs = await observe(scenario)
    assert json.loads(obs["content"][0]["text"]) == {"received": meta}
    assert obs["_meta"] == {"interpose-test/result": {"echo": meta, "n": 1}}


async def test_64_concurrent_calls(observe):
    """64 calls in flight at once, finishing out of order: each gets its own answer."""

    async def scenario(argv):
        answers: dict[int, str] = {}
        async with open_session(argv) as (s, _):

            async def one(i: int) -> None:
                result = await s.call_tool("echo", {"text": f"call-{i}", "delay_ms": (i * 37) % 50})
                answers[i] = tool_text(result)

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    for i in range(64):
                        tg.start_soon(one, i)
        return [answers[i] for i in range(64)]

    obs = await observe(scenario)
    assert obs == [f"call-{i}" for i in range(64)]


async def test_5mb_result(observe):
    async def scenario(argv):
        async with open_session(argv) as (s, _):
            text = tool_text(await s.call_tool("big", {}))
            return {"len": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}

    obs = await observe(scenario)
    expected = big_text(BIG_DEFAULT_SIZE)
    assert obs == {"len": BIG_DEFAULT_SIZE, "sha256": hashlib.sha256(expected.encode()).hexdigest()}


async def test_modern_era_discover(observe):
    """A 2026-07-28 session: server/discover instead of initialize, a _meta envelope on every request."""

    async def scenario(argv):
        async with open_session(argv, handshake="discover") as (s, _):
            return {
                "discover": dump(s.discover_result),
                "tools": dump(await s.list_tools()),
                "echo": dump(await s.call_tool("echo", {"text": "modern"})),
                "read": dump(await s.read_resource("test://items/7")),
            }

    obs = await observe(scenario)
    assert "2026-07-28" in obs["discover"]["supportedVersions"]
    assert obs["echo"]["content"][0]["text"] == "modern"
    assert "echo" in [t["name"] for t in obs["tools"]["tools"]]
