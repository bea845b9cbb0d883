"""Raw JSON-RPC against tests/servers/full_server.py: byte-level comparisons.

The observations here are rawclient.Msg objects: in proxy mode each is
compared with its direct counterpart on kind, method, id (the client's own)
and the exact bytes of its payload (`result`, `error` or `params`). The ids
of server-to-client requests are not compared: the proxy may choose them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))

from full_server import BIG_DEFAULT_SIZE, big_text  # noqa: E402
from rawclient import Msg, RawClient  # noqa: E402

pytestmark = pytest.mark.anyio

ALL_CAPS = {"roots": {"listChanged": True}, "sampling": {}, "elicitation": {"form": {}, "url": {}}}


def text_of(msg: Msg) -> str:
    assert msg.kind == "response", msg
    return msg.result["content"][0]["text"]


async def test_lists_byte_identical(observe):
    """initialize, tools/list, resources/list (every page), resources/templates/list, prompts/list."""

    async def scenario(argv):
        async with RawClient(argv) as c:
            obs = {"initialize": await c.initialize(ALL_CAPS), "tools": await c.request("tools/list")}
            pages, cursor = [], None
            while True:
                page = await c.request("resources/list", {"cursor": cursor} if cursor else None)
                pages.append(page)
                cursor = page.result.get("nextCursor")
                if cursor is None:
                    break
            obs["resource_pages"] = pages
            obs["templates"] = await c.request("resources/templates/list", {})
            obs["prompts"] = await c.request("prompts/list")
            return obs

    obs = await observe(scenario)
    assert obs["initialize"].result["serverInfo"]["name"] == "interpose-full-server"
    assert len(obs["tools"].result["tools"]) >= 19
    assert [len(p.result["resources"]) for p in obs["resource_pages"]] == [2, 2, 2]
    assert obs["templates"].result["resourceTemplates"][0]["name"] == "item"
    assert obs["prompts"].result["prompts"][1]["name"] == "simple"


async def test_client_ids_preserved(observe):
    """The client sees its own ids, of every JSON type, even when equal-looking ids are in flight together."""
    ids = [0, "0", 1, "1", -7, 9007199254740993, "id with spaces ✓", "", "{\"json\":1}"]

    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            futures = {json.dumps(i): c.expect(i) for i in ids}
            # All in flight at once (the slowest first), then collect.
            for n, i in enumerate(ids):
                delay = 10 * (len(ids) - n)
                await c.send(
                    {
                        "jsonrpc": "2.0",
                        "id": i,
                        "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": json.dumps(i), "delay_ms": delay}},
                    }
                )
            return {k: await asyncio.wait_for(f, 10) for k, f in futures.items()}

    obs = await observe(scenario)
    for key, msg in obs.items():
        assert json.dumps(msg.id) == key
        assert text_of(msg) == key


async def test_errors_byte_identical(observe):
    """Errors from the backend: custom code/message/data, unknown tool, method not found, invalid params."""

    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            return {
                "custom": await c.request("tools/call", {"name": "raise_error", "arguments": {}}),
                "is_error": await c.request("tools/call", {"name": "fail", "arguments": {}}),
                "unknown_tool": await c.request("tools/call", {"name": "no_such_tool", "arguments": {}}),
                "not_found": await c.request("interpose_test/no_such_method", {"x": 1}),
                "invalid_params": await c.request("resources/read", {"nope": True}),
            }

    obs = await observe(scenario)
    assert obs["custom"].raw_member("error") == (
        '{"code":-32042,"message":"custom failure from full_server","data":{"reason":"on purpose",'
        '"nested":{"list":[1,2.5,"three",null,true]},"unicode":"é✓"}}'
    )
    assert obs["is_error"].result["isError"] is True
    assert obs["not_found"].error == {"code": -32601, "message": "Method not found", "data": "interpose_test/no_such_method"}
    assert obs["invalid_params"].error["code"] == -32602


async def test_unknown_method_relayed(observe):
    """A non-spec request and its result pass through unchanged, _meta included."""
    params = {"text": "ünïcode ✓", "nested": {"a": [1, 2, {"b": None}]}, "_meta": {"x-vendor/trace": "abc-123"}}

    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            return {
                "echo": await c.request("interpose_test/echo", params),
                "echo_no_params": await c.request("interpose_test/echo"),
            }

    obs = await observe(scenario)
    assert obs["echo"].result == {"echo": params, "method": "interpose_test/echo"}
    assert obs["echo_no_params"].result == {"echo": {}, "method": "interpose_test/echo"}


async def test_custom_notifications_both_ways(observe):
    """Non-spec notifications: client->backend (recorded by the backend) and backend->client (byte for byte)."""
    hello = {"greeting": "hi", "_meta": {"x-vendor/n": 1}}

    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            await c.notify("notifications/interpose_test/hello", hello)
            seen = None
            for _ in range(100):
                seen = await c.request("tools/call", {"name": "seen_notifications", "arguments": {}})
                if json.loads(text_of(seen))["seen"]:
                    break
                await asyncio.sleep(0.02)
            start = len(c.received)
            result = await c.request("tools/call", {"name": "meta_echo", "arguments": {}})
            return {"seen": seen, "transcript": c.received[start:], "result": result}

    obs = await observe(scenario)
    assert json.loads(text_of(obs["seen"])) == {"seen": [hello]}
    note = obs["transcript"][0]
    assert note.method == "notifications/interpose_test/meta"
    assert note.params["value"] == 7


async def test_meta_byte_identical(observe):
    """_meta on a request, on the result and on a notification, through unchanged."""
    meta = {"progressToken": "tok-meta", "x-vendor/deep": {"k": [1, "two", {"three": 3.0}]}, "ünï": "✓"}

    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            start = len(c.received)
            result = await c.request("tools/call", {"name": "meta_echo", "arguments": {}, "_meta": meta})
            return {"transcript": c.received[start:], "result": result}

    obs = await observe(scenario)
    assert json.loads(text_of(obs["result"])) == {"received": meta}
    assert obs["result"].result["_meta"] == {"interpose-test/result": {"echo": meta, "n": 1}}
    assert obs["transcript"][0].params["_meta"]["interpose-test/note"]["echo"] == meta


@pytest.mark.parametrize("token", ["tok-1", 77])
async def test_progress_tokens(observe, token):
    """notifications/progress carry the client's own progress token, string or integer."""

    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            start = len(c.received)
            await c.request("tools/call", {"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": token}})
            return c.received[start:]

    obs = await observe(scenario)
    assert [m.kind for m in obs] == ["notification"] * 3 + ["response"]
    assert [m.params["progressToken"] for m in obs[:3]] == [token] * 3
    assert [m.params["progress"] for m in obs[:3]] == [1, 2, 3]


def answering(log: list[Msg]):
    async def handler(msg: Msg):
        log.append(msg)
        if msg.method == "sampling/createMessage":
            return {
                "result": {
                    "role": "assistant",
                    "content": {"type": "text", "text": "raw sample ✓"},
                    "model": "raw-model",
                    "stopReason": "endTurn",
                    "_meta": {"x-vendor/cost": 0.5},
                }
            }
        if msg.method == "elicitation/create":
            if msg.params.get("mode") == "url":
                return {"result": {"action": "cancel"}}
            return {"result": {"action": "accept", "content": {"name": "Raw", "age": 1}}}
        if msg.method == "roots/list":
            return {"result": {"roots": [{"uri": "file:///raw", "name": "raw"}]}}
        if msg.method == "ping":
            return {"result": {}}
        return {"error": {"code": -32601, "message": "Method not found"}}

    return handler


async def test_server_requests_transcript(observe):
    """Sampling, elicitation (form and URL), roots and ping from the backend: the whole exchange, in order."""

    async def scenario(argv):
        log: list[Msg] = []
        async with RawClient(argv, on_server_request=answering(log)) as c:
            await c.initialize(ALL_CAPS)
            start = len(c.received)
            results = {}
            for name, args in [
                ("sample", {"prompt": "raw prompt"}),
                ("elicit_form", {}),
                ("elicit_url", {}),
                ("roots", {}),
                ("ping_client", {}),
            ]:
                results[name] = await c.request("tools/call", {"name": name, "arguments": args})
            return {"results": results, "transcript": c.received[start:]}

    obs = await observe(scenario)
    transcript = obs["transcript"]
    assert [(m.kind, m.method) for m in transcript] == [
        ("request", "sampling/createMessage"),
        ("response", None),
        ("request", "elicitation/create"),
        ("response", None),
        ("request", "elicitation/create"),
        ("notification", "notifications/elicitation/complete"),
        ("response", None),
        ("request", "roots/list"),
        ("response", None),
        ("request", "ping"),
        ("response", None),
    ]
    assert json.loads(text_of(obs["results"]["sample"]))["_meta"] == {"x-vendor/cost": 0.5}
    assert json.loads(text_of(obs["results"]["elicit_url"])) == {"action": "cancel"}
    assert json.loads(text_of(obs["results"]["roots"]))["roots"] == [{"uri": "file:///raw", "name": "raw"}]


async def test_server_request_error_relayed(observe):
    """An error answer from the client to a server request reaches the backend."""

    async def refuse(msg: Msg):
        return {"error": {"code": -1, "message": "user refused", "data": {"why": "test"}}}

    async def scenario(argv):
        async with RawClient(argv, on_server_request=refuse) as c:
            await c.initialize(ALL_CAPS)
            return await c.request("tools/call", {"name": "sample", "arguments": {"prompt": "p"}})

    obs = await observe(scenario)
    assert obs.error == {"code": -1, "message": "user refused", "data": {"why": "test"}}


async def test_cancel_client_request(observe):
    """notifications/cancelled from the client reaches the backend for the right request."""

    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            start = len(c.received)
            rid = "slow-1"
            c.expect(rid)
            await c.send(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "method": "tools/call",
                    "params": {"name": "slow", "arguments": {"label": "raw-cancel"}, "_meta": {"progressToken": "s1"}},
                }
            )
            started = await c.wait_for(lambda m: m.method == "notifications/progress", start=start)
            await c.notify("notifications/cancelled", {"requestId": rid, "reason": "test cancels"})
            status = None
            for _ in range(200):
                status = await c.request("tools/call", {"name": "cancel_status", "arguments": {}})
                if json.loads(text_of(status))["cancelled"]:
                    break
                await asyncio.sleep(0.02)
            # A cancelled request gets no response (spec: SHOULD NOT); give one a moment to show up.
            await asyncio.sleep(0.2)
            late = [m for m in c.received if m.id == rid]
            return {"started": started, "status": status, "late_responses": late}

    obs = await observe(scenario)
    assert obs["started"].params["progressToken"] == "s1"
    assert json.loads(text_of(obs["status"])) == {"cancelled": ["raw-cancel"]}


async def test_backend_cancels_its_request(observe):
    """When a tool call is cancelled while its sampling request is pending, the backend's own
    notifications/cancelled names the sampling request by the id the client saw."""

    async def never_answer(msg: Msg):
        return None

    async def scenario(argv):
        async with RawClient(argv, on_server_request=never_answer) as c:
            await c.initialize(ALL_CAPS)
            start = len(c.received)
            c.expect("sample-1")
            await c.send(
                {
                    "jsonrpc": "2.0",
                    "id": "sample-1",
                    "method": "tools/call",
                    "params": {"name": "sample", "arguments": {"prompt": "never answered"}},
                }
            )
            sampling = await c.wait_for(lambda m: m.method == "sampling/createMessage", start=start)
            await c.notify("notifications/cancelled", {"requestId": "sample-1"})
            cancelled = await c.wait_for(lambda m: m.method == "notifications/cancelled", start=start)
            alive = await c.request("tools/call", {"name": "echo", "arguments": {"text": "alive"}})
            return {
                "sampling_params": sampling.params,
                "cancel_names_sampling": cancelled.params.get("requestId") == sampling.id,
                "cancel_reason": cancelled.params.get("reason"),
                "alive": alive,
            }

    obs = await observe(scenario)
    assert obs["cancel_names_sampling"] is True
    assert text_of(obs["alive"]) == "alive"


async def test_5mb_result_raw(observe):
    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            return await c.request("tools/call", {"name": "big", "arguments": {}}, timeout=30)

    obs = await observe(scenario)
    text = text_of(obs)
    assert len(text) == BIG_DEFAULT_SIZE
    assert hashlib.sha256(text.encode()).digest() == hashlib.sha256(big_text(BIG_DEFAULT_SIZE).encode()).digest()


async def test_pipelined_burst(observe):
    """64 requests written in one go, before any answer: each id gets its own answer."""

    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            lines = []
            futures = {}
            for i in range(64):
                rid = f"b{i}" if i % 2 else i
                futures[i] = c.expect(rid)
                req = {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": f"burst-{i}", "delay_ms": (i * 7) % 23}},
                }
                lines.append(json.dumps(req).encode() + b"\n")
            await c.send_line(b"".join(lines))
            answers = [await asyncio.wait_for(futures[i], 15) for i in range(64)]
            return [(m.id, text_of(m)) for m in answers]

    obs = await observe(scenario)
    assert obs == [((f"b{i}" if i % 2 else i), f"burst-{i}") for i in range(64)]


async def test_stdin_close_exit_code_matches(observe):
    """Closing stdin ends the session cleanly: exit status 0, like the backend itself."""

    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            await c.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
            return {"exit": await c.close(timeout=10)}

    obs = await observe(scenario)
    assert obs == {"exit": 0}


async def test_client_bytes_reach_backend_unchanged(observe):
    """What the client writes reaches the backend byte for byte (apart from the id the proxy remaps):
    the params of a non-spec request, of a notification and of a _meta-carrying call, and the
    result of the client's answer to a sampling request. The backend reports the raw lines it read
    (interpose_test/raw_received)."""
    odd_request = '{"jsonrpc":"2.0","id":"odd-1","method":"interpose_test/echo","params":{ "z" : 1.0, "a":[1e2, -0.0, "\\u00e9\\ud83d\\ude00", "\\/"], "_meta" : {"x-vendor/k": {"deep" : [true,false,null]}} }}'
    odd_notification = '{"jsonrpc":"2.0","method":"notifications/interpose_test/hello","params":{"b":2,"a":1,"_meta":{ "z":"last", "a":"first" }}}'
    odd_call = '{"jsonrpc":"2.0","id":"odd-2","method":"tools/call","params":{"name":"meta_echo","arguments":{},"_meta":{"progressToken":"t-1", "x-vendor/float": 1.50, "x-vendor/big": 12345678901234567890}}}'
    odd_answer = '{ "role" : "assistant", "content": {"type":"text","text":"odd \\u2713"}, "model":"m", "_meta": {"x-vendor/z": 0.10} }'

    async def scenario(argv):
        client: RawClient

        async def answer_oddly(msg: Msg):
            line = '{"jsonrpc":"2.0","id":' + json.dumps(msg.id) + ',"result":' + odd_answer + "}\n"
            await client.send_line(line.encode())
            return None

        async with RawClient(argv, on_server_request=answer_oddly) as client:
            c = client
            await c.initialize(ALL_CAPS)
            fut = c.expect("odd-1")
            await c.send_line(odd_request.encode() + b"\n")
            await asyncio.wait_for(fut, 10)
            await c.send_line(odd_notification.encode() + b"\n")
            fut = c.expect("odd-2")
            await c.send_line(odd_call.encode() + b"\n")
            await asyncio.wait_for(fut, 10)
            sampled = await c.request("tools/call", {"name": "sample", "arguments": {"prompt": "p"}})
            seen = await c.request("interpose_test/raw_received", {"last": 5})
            lines = [Msg(line.encode(), json.loads(line)) for line in seen.result["lines"]]
            return {
                "request_params": lines[0].raw_member("params"),
                "notification_params": lines[1].raw_member("params"),
                "call_params": lines[2].raw_member("params"),
                "answer_result": lines[4].raw_member("result"),
                "sampled": sampled,
            }

    obs = await observe(scenario)
    sent = lambda text, member: Msg(text.encode(), json.loads(text)).raw_member(member)  # noqa: E731
    assert obs["request_params"] == sent(odd_request, "params")
    assert obs["notification_params"] == sent(odd_notification, "params")
    assert obs["call_params"] == sent(odd_call, "params")
    assert obs["answer_result"] == odd_answer


async def test_client_and_server_id_spaces_do_not_collide(observe):
    """The client's request ids and the backend's request ids are separate spaces: a client request
    0 in flight while the backend asks the client something with its own id 0 (and 1, 2) must not
    confuse the two."""

    async def scenario(argv):
        server_requests: list[Msg] = []
        async with RawClient(argv, on_server_request=answering(server_requests)) as c:
            await c.initialize(ALL_CAPS)
            replies = {}
            for rid, name in [(0, "sample"), (1, "roots"), (2, "elicit_form")]:
                replies[rid] = await c.request(
                    "tools/call", {"name": name, "arguments": {"prompt": "p"} if name == "sample" else {}}, id=rid
                )
            return {"replies": replies, "server_request_ids_unique": len({json.dumps(m.id) for m in server_requests}) == 3}

    obs = await observe(scenario)
    assert [m.id for m in obs["replies"].values()] == [0, 1, 2]
    assert json.loads(text_of(obs["replies"][0]))["model"] == "raw-model"
    assert json.loads(text_of(obs["replies"][1]))["roots"] == [{"uri": "file:///raw", "name": "raw"}]
    assert json.loads(text_of(obs["replies"][2]))["action"] == "accept"
    assert obs["server_request_ids_unique"]


async def test_concurrent_progress_streams(observe):
    """16 calls reporting progress at once: each token gets exactly its own notifications, in order,
    before its response."""

    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            start = len(c.received)
            futures = []
            for i in range(16):
                futures.append(c.expect(f"p{i}"))
                await c.send(
                    {
                        "jsonrpc": "2.0",
                        "id": f"p{i}",
                        "method": "tools/call",
                        "params": {"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": i}},
                    }
                )
            await asyncio.wait_for(asyncio.gather(*futures), 15)
            per_token = {}
            for m in c.received[start:]:
                if m.method == "notifications/progress":
                    per_token.setdefault(m.params["progressToken"], []).append(("progress", m.params["progress"]))
                elif m.kind == "response":
                    per_token.setdefault(int(m.id[1:]), []).append(("response", text_of(m)))
            return {str(k): v for k, v in sorted(per_token.items())}

    obs = await observe(scenario)
    expected = [["progress", 1], ["progress", 2], ["progress", 3], ["response", "progressed 3 steps"]]
    assert obs == {str(i): [tuple(e) for e in expected] for i in range(16)}


async def test_cancel_for_unknown_request_is_harmless(observe):
    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            start = len(c.received)
            await c.notify("notifications/cancelled", {"requestId": "never-sent", "reason": "nothing"})
            await c.notify("notifications/cancelled", {"requestId": 31337})
            await c.request("tools/call", {"name": "echo", "arguments": {"text": "after"}})
            return c.received[start:]

    obs = await observe(scenario)
    assert [m.kind for m in obs] == ["response"]


async def test_framing_split_writes_and_crlf(observe):
    """A line arriving in pieces (split inside a multi-byte UTF-8 character), and a line ending in
    CRLF with surrounding blanks, are each one message."""
    text = "split ✓ here — and ünïcode"

    async def scenario(argv):
        async with RawClient(argv) as c:
            await c.initialize()
            line = json.dumps(
                {"jsonrpc": "2.0", "id": "split-1", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}},
                ensure_ascii=False,
            ).encode()
            cut = line.index("✓".encode()) + 1  # inside the 3-byte character
            fut = c.expect("split-1")
            for piece in (line[:10], line[10:cut], line[cut:], b"\n"):
                await c.send_line(piece)
                await asyncio.sleep(0.05)
            split = await asyncio.wait_for(fut, 10)
            fut = c.expect("crlf-1")
            await c.send_line(
                b'  {"jsonrpc":"2.0","id":"crlf-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"crlf"}}} \r\n'
            )
            crlf = await asyncio.wait_for(fut, 10)
            return {"split": split, "crlf": crlf}

    obs = await observe(scenario)
    assert text_of(obs["split"]) == text
    assert text_of(obs["crlf"]) == "crlf"
