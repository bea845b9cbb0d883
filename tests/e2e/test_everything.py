"""@modelcontextprotocol/server-everything (the reference TypeScript server), directly and through interpose.

Raw JSON-RPC only: its lists carry fields (`execution`, the `tasks`
capability, `$schema` in input schemas) that typed models may drop, so every
comparison is on the payload bytes (see rawclient.Msg.comparable).

server-everything does things on its own after `notifications/initialized`:
it registers capability-dependent tools (one tools/list_changed each) and,
when the client has the roots capability, asks for roots 350 ms later and
logs the answer. The tests here compare responses per request and wait for
those asynchronous messages explicitly rather than comparing whole
transcripts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rawclient import Msg, RawClient  # noqa: E402

pytestmark = pytest.mark.anyio

EVERYTHING = "everything"
SAMPLING_CAPS = {"sampling": {}}
ELICITATION_CAPS = {"elicitation": {"form": {}, "url": {}}}
ROOTS_CAPS = {"roots": {"listChanged": True}}
ALL_CAPS = {**SAMPLING_CAPS, **ELICITATION_CAPS, **ROOTS_CAPS}


def text_of(msg: Msg, index: int = 0) -> str:
    assert msg.kind == "response", msg
    return msg.result["content"][index]["text"]


async def test_lists_byte_identical(observe):
    """initialize, tools/list, resources/list, resources/templates/list, prompts/list: payloads byte for byte."""

    async def scenario(argv):
        async with RawClient(argv) as c:
            obs = {"initialize": await c.initialize({**SAMPLING_CAPS, **ELICITATION_CAPS})}
            obs["tools"] = await c.request("tools/list")
            pages, cursor = [], None
            while True:
                page = await c.request("resources/list", {"cursor": cursor} if cursor else {})
                pages.append(page)
                cursor = page.result.get("nextCursor")
                if cursor is None:
                    break
            obs["resource_pages"] = pages
            obs["templates"] = await c.request("resources/templates/list")
            obs["prompts"] = await c.request("prompts/list")
            return obs

    obs = await observe(scenario, backend=EVERYTHING)
    init = obs["initialize"].result
    assert init["serverInfo"]["name"] == "mcp-servers/everything"
    assert "tasks" in init["capabilities"]
    tools = obs["tools"].result["tools"]
    names = [t["name"] for t in tools]
    assert {"echo", "get-sum", "trigger-sampling-request", "trigger-elicitation-request"} <= set(names)
    assert all("execution" in t for t in tools)  # a field newer than some typed models
    assert obs["resource_pages"][0].result["resources"]
    assert [p["name"] for p in obs["prompts"].result["prompts"]][:2] == ["simple-prompt", "args-prompt"]


async def test_tool_calls(observe):
    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            return {
                "echo": await c.request("tools/call", {"name": "echo", "arguments": {"message": "hi ✓"}}),
                "sum": await c.request("tools/call", {"name": "get-sum", "arguments": {"a": 2, "b": 40}}),
                "structured": await c.request(
                    "tools/call", {"name": "get-structured-content", "arguments": {"location": "Chicago"}}
                ),
                "annotated": await c.request(
                    "tools/call", {"name": "get-annotated-message", "arguments": {"messageType": "error", "includeImage": True}}
                ),
                "image": await c.request("tools/call", {"name": "get-tiny-image", "arguments": {}}),
                "bad_args": await c.request("tools/call", {"name": "get-sum", "arguments": {"a": "x"}}),
                "unknown_tool": await c.request("tools/call", {"name": "nope", "arguments": {}}),
            }

    obs = await observe(scenario, backend=EVERYTHING)
    assert text_of(obs["echo"]) == "Echo: hi ✓"
    assert "42" in text_of(obs["sum"])
    assert "temperature" in obs["structured"].result["structuredContent"]
    assert any(block["type"] == "image" for block in obs["image"].result["content"])
    assert obs["bad_args"].result.get("isError") is True or obs["bad_args"].kind == "error"


async def test_resource_read_prompts_completion(observe):
    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            listing = await c.request("resources/list")
            uri = listing.result["resources"][0]["uri"]
            return {
                "read": await c.request("resources/read", {"uri": uri}),
                "simple": await c.request("prompts/get", {"name": "simple-prompt"}),
                "args": await c.request("prompts/get", {"name": "args-prompt", "arguments": {"city": "Paris", "state": "IDF"}}),
                "complete_department": await c.request(
                    "completion/complete",
                    {"ref": {"type": "ref/prompt", "name": "completable-prompt"}, "argument": {"name": "department", "value": "S"}},
                ),
                "complete_name": await c.request(
                    "completion/complete",
                    {
                        "ref": {"type": "ref/prompt", "name": "completable-prompt"},
                        "argument": {"name": "name", "value": ""},
                        "context": {"arguments": {"department": "Engineering"}},
                    },
                ),
            }

    obs = await observe(scenario, backend=EVERYTHING)
    assert obs["read"].result["contents"][0]["text"]
    assert "Paris" in json.dumps(obs["args"].result)
    assert obs["complete_department"].result["completion"]["values"] == ["Sales", "Support"]
    assert obs["complete_name"].result["completion"]["values"] == ["Alice", "Bob", "Charlie"]


async def test_progress(observe):
    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            start = len(c.received)
            await c.request(
                "tools/call",
                {
                    "name": "trigger-long-running-operation",
                    "arguments": {"duration": 0.3, "steps": 3},
                    "_meta": {"progressToken": "everything-progress"},
                },
            )
            # (list_changed notifications from start-up may still trickle in: keep progress and the answer)
            return [m for m in c.received[start:] if m.method in (None, "notifications/progress")]

    obs = await observe(scenario, backend=EVERYTHING)
    assert [m.kind for m in obs] == ["notification"] * 3 + ["response"]
    assert [m.params for m in obs[:3]] == [
        {"progress": i, "total": 3, "progressToken": "everything-progress"} for i in (1, 2, 3)
    ]


async def test_sampling(observe):
    sampled = {
        "role": "assistant",
        "content": {"type": "text", "text": "everything sampled"},
        "model": "e2e-model",
        "stopReason": "endTurn",
    }

    async def answer(msg: Msg):
        return {"result": sampled} if msg.method == "sampling/createMessage" else {"result": {}}

    async def scenario(argv):
        async with RawClient(argv, on_server_request=answer) as c:
            await c.initialize(SAMPLING_CAPS)
            start = len(c.received)
            result = await c.request(
                "tools/call", {"name": "trigger-sampling-request", "arguments": {"prompt": "hello", "maxTokens": 20}}
            )
            requests = [m for m in c.received[start:] if m.kind == "request"]
            return {"server_requests": requests, "result": result}

    obs = await observe(scenario, backend=EVERYTHING)
    (req,) = obs["server_requests"]
    assert req.method == "sampling/createMessage"
    assert req.params["maxTokens"] == 20
    body = text_of(obs["result"]).split("\n", 1)[1]
    assert json.loads(body) == sampled


async def test_elicitation_form_and_url(observe):
    async def answer(msg: Msg):
        if msg.method == "elicitation/create" and msg.params.get("mode") == "url":
            return {"result": {"action": "decline"}}
        if msg.method == "elicitation/create":
            return {"result": {"action": "accept", "content": {"name": "Ada", "check": True, "integer": 7}}}
        return {"result": {}}

    async def scenario(argv):
        async with RawClient(argv, on_server_request=answer) as c:
            await c.initialize(ELICITATION_CAPS)
            start = len(c.received)
            form = await c.request("tools/call", {"name": "trigger-elicitation-request", "arguments": {}})
            url = await c.request(
                "tools/call",
                {
                    "name": "trigger-url-elicitation",
                    "arguments": {"url": "https://example.invalid/flow", "elicitationId": "fixed-id-1"},
                },
            )
            requests = [m for m in c.received[start:] if m.kind == "request"]
            return {"server_requests": requests, "form": form, "url": url}

    obs = await observe(scenario, backend=EVERYTHING)
    form_req, url_req = obs["server_requests"]
    assert form_req.params["requestedSchema"]["required"] == ["name"]
    assert url_req.params["mode"] == "url" and url_req.params["elicitationId"] == "fixed-id-1"
    assert "- Name: Ada" in json.dumps(obs["form"].result)
    assert "decline" in json.dumps(obs["url"].result)


async def test_roots_and_logging(observe):
    """The server asks for roots on its own, logs the count, asks again after roots/list_changed;
    logging/setLevel decides whether those logs reach the client."""
    roots = [[{"uri": "file:///one", "name": "one"}], [{"uri": "file:///one"}, {"uri": "file:///two", "name": "two"}]]

    async def scenario(argv):
        answered = []

        async def answer(msg: Msg):
            if msg.method == "roots/list":
                answered.append(msg)
                return {"result": {"roots": roots[min(len(answered), 2) - 1]}}
            return {"result": {}}

        async with RawClient(argv, on_server_request=answer) as c:
            await c.initialize(ROOTS_CAPS)
            level = await c.request("logging/setLevel", {"level": "debug"})
            first_log = await c.wait_for(lambda m: m.method == "notifications/message")
            listed = await c.request("tools/call", {"name": "get-roots-list", "arguments": {}})
            mark = len(c.received)
            await c.notify("notifications/roots/list_changed")
            second_log = await c.wait_for(lambda m: m.method == "notifications/message", start=mark)
            await c.request("logging/setLevel", {"level": "error"})
            mark = len(c.received)
            await c.notify("notifications/roots/list_changed")
            await c.wait_for(lambda m: m.method == "roots/list", start=mark)
            # An info-level log would follow within milliseconds: make sure none does.
            after = await c.request("tools/call", {"name": "echo", "arguments": {"message": "sync"}})
            quiet = [m for m in c.received[mark:] if m.method == "notifications/message"]
            return {
                "set_level": level,
                "roots_requests": [m.params for m in answered],
                "first_log": first_log,
                "listed": listed,
                "second_log": second_log,
                "after": after,
                "logs_at_error_level": quiet,
            }

    obs = await observe(scenario, backend=EVERYTHING)
    assert obs["set_level"].result == {}
    assert len(obs["roots_requests"]) == 3
    assert obs["first_log"].params["data"] == "Roots updated: 1 root(s) received from client"
    assert "file:///one" in text_of(obs["listed"])
    assert obs["second_log"].params["data"] == "Roots updated: 2 root(s) received from client"
    assert obs["logs_at_error_level"] == []


async def test_ping_and_unknown_method(observe):
    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            return {
                "ping": await c.request("ping"),
                "unknown": await c.request("vendor/unknown", {"x": 1, "_meta": {"k": "v"}}),
            }

    obs = await observe(scenario, backend=EVERYTHING)
    assert obs["ping"].result == {}
    assert obs["unknown"].error["code"] == -32601
