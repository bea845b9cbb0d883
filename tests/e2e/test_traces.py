"""OpenTelemetry traces: interpose exports spans over OTLP/HTTP to a real receiver
(tests/servers/otlp_receiver.py, built on the protocol's own definitions), and the
trace context runs from the client through interpose and its plugins into the backend
in `params._meta`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "servers"))

from conftest import FULL_SERVER, REPO  # noqa: E402
from otlp_receiver import OtlpReceiver  # noqa: E402
from rawclient import RawClient  # noqa: E402

pytestmark = [pytest.mark.proxy_only]

WASM = REPO / "target" / "wasm" / "wasm32-wasip2" / "release"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"

CHAIN = f"""
[[plugins]]
name = "verdicts"
path = "{WASM / 'fixture_verdicts.wasm'}"
config = {{ rules = [
  {{ method = "tools/call", tool = "echo", verdict = "rewrite", payload = {{ name = "echo", arguments = {{ text = "rewritten" }} }} }},
  {{ method = "tools/call", tool = "add", verdict = "reject", code = -32001, message = "no adding" }},
] }}

[[plugins]]
name = "trap"
path = "{WASM / 'fixture_trap.wasm'}"
failure_policy = "reject"
"""


@pytest.fixture
def receiver() -> Any:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def otlp_env(receiver: OtlpReceiver) -> dict[str, str]:
    # A short batch delay: the spans arrive while the test waits, not only at exit.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}


def by(spans: list[dict[str, Any]], **attributes: Any) -> list[dict[str, Any]]:
    return [s for s in spans if all(s["attributes"].get(k) == v for k, v in attributes.items())]


def one(spans: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [s for s in spans if s["kind"] == kind and s["name"] == name]
    assert len(found) == 1, (kind, name, [(s["kind"], s["name"]) for s in spans])
    return found[0]


def children(spans: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in spans if s["parent_span_id"] == parent["span_id"] and s["trace_id"] == parent["trace_id"]]


@pytest.mark.anyio
async def test_a_trace_runs_from_the_client_through_the_plugins_into_the_backend(
    proxy_bin: Path, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    config = tmp_path / "interpose.toml"
    config.write_text(CHAIN)
    argv = [str(proxy_bin), "run", "--config", str(config), "--name", "full", "--", sys.executable, str(FULL_SERVER)]
    async with RawClient(argv, env=otlp_env(receiver)) as client:
        await client.initialize()
        traced = await client.request(
            "tools/call",
            {"name": "meta_echo", "arguments": {}, "_meta": {"traceparent": TRACEPARENT, "tracestate": "rojo=1"}},
            id=7,
        )
        rewritten = await client.request("tools/call", {"name": "echo", "arguments": {"text": "hi"}}, id=8)
        rejected = await client.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}, id=9)
        trapped = await client.request("tools/call", {"name": "trap", "arguments": {}}, id=10)
        assert await client.close() == 0, client.stderr_text

    assert rewritten.result["content"][0]["text"] == "rewritten"
    assert rejected.error["code"] == -32001
    assert trapped.error is not None
    received = json.loads(traced.result["content"][0]["text"])["received"]

    spans = receiver.wait_for(lambda spans: len([s for s in spans if s["kind"] == "SERVER"]) >= 5)
    assert all(s["resource"].get("service.name") == "interpose" for s in spans)

    # The client's context is the parent of interpose's server span ...
    server = one(spans, "SERVER", "tools/call meta_echo")
    assert (server["trace_id"], server["parent_span_id"]) == (TRACE_ID, CLIENT_SPAN)
    attributes = server["attributes"]
    assert attributes["mcp.method.name"] == "tools/call"
    assert attributes["gen_ai.tool.name"] == "meta_echo"
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["jsonrpc.request.id"] == "7"
    assert attributes["network.transport"] == "pipe"
    assert attributes["mcp.session.id"] == "stdio"
    assert server["status"] == "UNSET"

    # ... whose child, the client span of the forwarded request, is what the backend
    # was told in `_meta`: the trace goes on into the server.
    (upstream,) = [s for s in children(spans, server) if s["kind"] == "CLIENT"]
    assert upstream["name"] == "tools/call meta_echo"
    assert upstream["attributes"]["interpose.server.name"] == "full"
    assert received["traceparent"] == f"00-{TRACE_ID}-{upstream['span_id']}-01"
    assert received["tracestate"] == "rojo=1"
    assert upstream["start_ns"] >= server["start_ns"] and upstream["end_ns"] <= server["end_ns"]

    # Each plugin call is a child of the request's span, with its verdict.
    echo = one(spans, "SERVER", "tools/call echo")
    calls = [
        (c["name"], c["attributes"]["interpose.message.kind"], c["attributes"]["interpose.plugin.verdict"])
        for c in sorted(children(spans, echo), key=lambda c: c["start_ns"])
        if c["kind"] == "INTERNAL"
    ]
    # The request walks the chain forwards, its answer backwards (`trap` asks only
    # for requests).
    assert calls == [
        ("plugin verdicts", "request", "rewrite"),
        ("plugin trap", "request", "pass"),
        ("plugin verdicts", "response", "pass"),
    ]
    assert echo["trace_id"] != TRACE_ID  # no context came with it: a new trace

    add = one(spans, "SERVER", "tools/call add")
    assert add["status"] == "ERROR" and add["status_message"] == "no adding"
    assert add["attributes"]["error.type"] == "-32001"
    add_children = children(spans, add)
    # The rejection walks back through the plugins before `verdicts`: there are none.
    assert [c["attributes"]["interpose.plugin.verdict"] for c in add_children] == ["reject"]
    assert not [c for c in add_children if c["kind"] == "CLIENT"]  # never forwarded

    trap = one(spans, "SERVER", "tools/call trap")
    assert trap["status"] == "ERROR"
    (failed,) = by(children(spans, trap), **{"interpose.plugin.name": "trap"})
    assert failed["attributes"]["interpose.plugin.verdict"] == "failure"
    assert failed["attributes"]["error.type"] == "trap"
    assert failed["status"] == "ERROR"


@pytest.mark.anyio
async def test_a_gateway_list_is_one_server_span_with_a_client_span_per_server(
    proxy_bin: Path, tmp_path: Path, receiver: OtlpReceiver
) -> None:
    servers = {
        "mcpServers": {
            "one": {"command": sys.executable, "args": [str(FULL_SERVER)]},
            "two": {"command": sys.executable, "args": [str(FULL_SERVER)]},
        }
    }
    path = tmp_path / "servers.json"
    path.write_text(json.dumps(servers))
    argv = [str(proxy_bin), "run", "--servers", str(path)]
    async with RawClient(argv, env=otlp_env(receiver)) as client:
        await client.initialize()
        listed = await client.request("tools/list", {"_meta": {"traceparent": TRACEPARENT}}, id=3)
        assert "one_echo" in [t["name"] for t in listed.result["tools"]]
        called = await client.request("tools/call", {"name": "two_echo", "arguments": {"text": "x"}}, id=4)
        assert called.result["content"][0]["text"] == "x"
        assert await client.close() == 0, client.stderr_text

    spans = receiver.wait_for(lambda spans: any(s["name"] == "tools/call two_echo" for s in spans))
    listing = one(spans, "SERVER", "tools/list")
    assert listing["trace_id"] == TRACE_ID
    parts = [s for s in children(spans, listing) if s["kind"] == "CLIENT"]
    assert sorted(p["attributes"]["interpose.server.name"] for p in parts) == ["one", "two"]

    # The client span names the tool as its server knows it.
    call = one(spans, "SERVER", "tools/call two_echo")
    (upstream,) = [s for s in children(spans, call) if s["kind"] == "CLIENT"]
    assert upstream["name"] == "tools/call echo"
    assert upstream["attributes"]["interpose.server.name"] == "two"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_over_http_a_span_names_the_session_as_the_logs_do_and_tcp(
    proxy_bin: Path, receiver: OtlpReceiver
) -> None:
    port = free_port()
    argv = [str(proxy_bin), "run", "--listen", f"http://127.0.0.1:{port}", "--", sys.executable, str(FULL_SERVER)]
    proc = subprocess.Popen(
        argv, env={**os.environ, **otlp_env(receiver)}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

        def post(message: dict[str, Any], headers: dict[str, str]) -> tuple[Any, str]:
            request = urllib.request.Request(url, json.dumps(message).encode(), headers, method="POST")
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.headers, response.read().decode()

        initialize = {
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "trace-test", "version": "0"}},
        }
        deadline = time.monotonic() + 20
        while True:
            try:
                answer_headers, _ = post(initialize, headers)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "interpose did not listen"
                time.sleep(0.05)
        session_id = answer_headers.get("Mcp-Session-Id")
        assert session_id, "no session id"
        session = {**headers, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"}
        post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
        _, called = post({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "over http"}, "_meta": {"traceparent": TRACEPARENT}},
        }, session)
        assert "over http" in called, called

        spans = receiver.wait_for(lambda spans: any(s["name"] == "tools/call echo" for s in spans))
        call = one(spans, "SERVER", "tools/call echo")
        assert call["trace_id"] == TRACE_ID
        assert call["attributes"]["network.transport"] == "tcp"
        assert call["attributes"]["mcp.session.id"].startswith("http-")
        assert session_id not in json.dumps(spans)  # the session's key stays out
    finally:
        proc.terminate()
        proc.wait(timeout=10)
