"""interpose as a gateway: several real MCP servers behind one endpoint, configured
from an `mcpServers` file, seen by a real client (the Python `mcp` SDK).

`full` is tests/servers/full_server.py, `everything` is
@modelcontextprotocol/server-everything, both over stdio; `remote` is the full server
over Streamable HTTP (tests/servers/full_http_server.py).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import EVERYTHING_ENTRY, FULL_SERVER, TESTS_DIR  # noqa: E402
from sdk import Callbacks, open_session  # noqa: E402

FULL_HTTP_SERVER = TESTS_DIR / "servers" / "full_http_server.py"

pytestmark = [pytest.mark.anyio, pytest.mark.proxy_only]


@pytest.fixture
def gateway(proxy_bin: Path, tmp_path: Path) -> list[str]:
    servers = {
        "mcpServers": {
            "full": {"command": sys.executable, "args": [str(FULL_SERVER)]},
            "everything": {"command": "node", "args": [str(EVERYTHING_ENTRY), "stdio"]},
        }
    }
    path = tmp_path / "servers.json"
    path.write_text(json.dumps(servers))
    return [str(proxy_bin), "run", "--servers", str(path)]


async def test_two_servers_behind_one_endpoint(gateway: list[str]) -> None:
    async with open_session(gateway) as (session, _):
        tools = [t.name for t in (await session.list_tools()).tools]
        assert "full_echo" in tools and "everything_echo" in tools, tools
        assert all(t.startswith(("full_", "everything_")) for t in tools), tools

        result = await session.call_tool("full_echo", {"text": "through the gateway"})
        assert result.content[0].text == "through the gateway"
        result = await session.call_tool("everything_echo", {"message": "hello"})
        assert "hello" in result.content[0].text

        resources = (await session.list_resources()).resources
        uris = [str(r.uri) for r in resources]
        assert uris and all(u.startswith(("full+", "everything+")) for u in uris), uris
        mine = next(u for u in uris if u.startswith("everything+"))
        read = await session.read_resource(mine)
        assert str(read.contents[0].uri) == mine

        await session.send_ping()
        await session.set_logging_level("info")


async def test_a_server_that_dies_takes_only_its_own_names(gateway: list[str]) -> None:
    async with open_session(gateway) as (session, _):
        await session.list_tools()
        with pytest.raises(Exception) as crashed:
            await session.call_tool("full_crash", {})
        assert "full" in str(crashed.value) or "exited" in str(crashed.value), crashed.value

        result = await session.call_tool("everything_echo", {"message": "still here"})
        assert "still here" in result.content[0].text
        tools = [t.name for t in (await session.list_tools()).tools]
        assert tools and all(t.startswith("everything_") for t in tools), tools


async def test_a_server_that_dies_comes_back_with_restart_on_failure(
    proxy_bin: Path, tmp_path: Path
) -> None:
    servers = {
        "mcpServers": {
            "full": {"command": sys.executable, "args": [str(FULL_SERVER)], "restart": "on-failure"},
            "everything": {"command": "node", "args": [str(EVERYTHING_ENTRY), "stdio"]},
        }
    }
    path = tmp_path / "servers.json"
    path.write_text(json.dumps(servers))

    def tools_changed(n: Any) -> bool:
        return isinstance(getattr(n, "root", n), types.ToolListChangedNotification)

    async with open_session([str(proxy_bin), "run", "--servers", str(path)]) as (session, rec):
        await session.list_tools()
        with pytest.raises(Exception) as crashed:
            await session.call_tool("full_crash", {})
        assert "server `full`" in str(crashed.value), crashed.value
        # The client hears the lists changed as it leaves, and again as it comes back
        # (after 0.5 s); server-everything announces changes of its own too, so the
        # client lists again on each until `full` is back.
        seen = 0
        tools: list[str] = []
        with anyio.fail_after(30):
            while "full_echo" not in tools:
                while len([n for n in rec.notifications if tools_changed(n)]) <= seen:
                    await rec.changed.wait()
                seen += 1
                tools = [t.name for t in (await session.list_tools()).tools]
        assert "everything_echo" in tools, tools
        result = await session.call_tool("full_echo", {"text": "back again"})
        assert result.content[0].text == "back again"


def test_the_inspector_cli_calls_each_server_through_the_gateway(gateway: list[str]) -> None:
    from test_inspector_cli import inspector

    listed = inspector(*gateway, "--method", "tools/list")
    names = [tool["name"] for tool in listed["tools"]]
    assert "full_echo" in names and "everything_echo" in names, names
    called = inspector(
        *gateway, "--method", "tools/call", "--tool-name", "full_echo", "--tool-arg", "text=hi gateway"
    )
    assert called["content"][0]["text"] == "hi gateway"
    called = inspector(
        *gateway, "--method", "tools/call", "--tool-name", "everything_echo", "--tool-arg", "message=hi everything"
    )
    assert "hi everything" in called["content"][0]["text"]


# --------------------------------------------------------------------------- three servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def three_servers(proxy_bin: Path, tmp_path: Path) -> Iterator[list[str]]:
    """`full` and `everything` over stdio, `remote` (the full server) over Streamable HTTP."""
    port = _free_port()
    http = subprocess.Popen(
        [sys.executable, str(FULL_HTTP_SERVER), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert http.stdout is not None
        assert http.stdout.readline().startswith("READY"), "the HTTP test server did not start"
        servers = {
            "mcpServers": {
                "full": {"command": sys.executable, "args": [str(FULL_SERVER)]},
                "everything": {"command": "node", "args": [str(EVERYTHING_ENTRY), "stdio"]},
                "remote": {"type": "http", "url": f"http://127.0.0.1:{port}/mcp"},
            }
        }
        path = tmp_path / "servers.json"
        path.write_text(json.dumps(servers))
        yield [str(proxy_bin), "run", "--servers", str(path)]
    finally:
        http.terminate()
        http.wait(timeout=10)


def _json(result: types.CallToolResult) -> Any:
    return json.loads(result.content[0].text)


async def test_three_servers_list_merged(three_servers: list[str]) -> None:
    async with open_session(three_servers) as (session, _):
        tools = [t.name for t in (await session.list_tools()).tools]
        for prefix in ("full_", "remote_", "everything_"):
            assert f"{prefix}echo" in tools, tools
        assert len(tools) == len(set(tools)), "a name is listed twice"
        prompts = [p.name for p in (await session.list_prompts()).prompts]
        assert {"full_greet", "remote_greet"} <= set(prompts), prompts
        templates = [t.uri_template for t in (await session.list_resource_templates()).resource_templates]
        assert {"full+test://items/{id}", "remote+test://items/{id}"} <= set(templates), templates


@pytest.mark.parametrize("server", ["full", "remote"])
async def test_each_server_reached_for_the_whole_protocol(three_servers: list[str], server: str) -> None:
    """Call, read, complete, subscribe, sample, elicit, progress, cancel and log through
    one full server of three, over stdio (`full`) and Streamable HTTP (`remote`)."""
    callbacks = Callbacks()
    async with open_session(three_servers, callbacks=callbacks) as (s, rec):
        echo = await s.call_tool(f"{server}_echo", {"text": f"to {server}"})
        assert echo.content[0].text == f"to {server}"

        read = await s.read_resource(f"{server}+test://static/3")
        assert read.contents[0].text == "contents of test://static/3"
        assert str(read.contents[0].uri) == f"{server}+test://static/3"

        by_prompt = await s.complete(
            types.PromptReference(type="ref/prompt", name=f"{server}_greet"), {"name": "style", "value": "f"}
        )
        assert by_prompt.completion.values == ["fancy", "formal", "friendly", "funny"]
        by_template = await s.complete(
            types.ResourceTemplateReference(type="ref/resource", uri=f"{server}+test://items/{{id}}"),
            {"name": "id", "value": "1"},
        )
        assert by_template.completion.values == ["1", "10", "11"]

        await s.subscribe_resource(f"{server}+test://static/1")
        assert _json(await s.call_tool(f"{server}_touch", {"uri": "test://static/1"})) == {"notified": True}
        updated = await rec.wait_for(lambda n: isinstance(n, types.ResourceUpdatedNotification))
        assert str(updated.params.uri) == f"{server}+test://static/1"
        await s.unsubscribe_resource(f"{server}+test://static/1")

        sampled = _json(await s.call_tool(f"{server}_sample", {"prompt": f"hello {server}"}))
        assert sampled["content"]["text"] == "sampled text"
        assert rec.server_requests[-1][0] == "sampling/createMessage"
        assert rec.server_requests[-1][1]["messages"][0]["content"]["text"] == f"hello {server}"

        elicited = _json(await s.call_tool(f"{server}_elicit_form", {}))
        assert elicited == {"action": "accept", "content": {"name": "Ada", "age": 36}}

        progress: list[Any] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append([done, total, message])

        result = await s.call_tool(f"{server}_progress", {"steps": 3}, progress_callback=on_progress)
        assert result.content[0].text == "progressed 3 steps"
        assert progress == [[i, 3, f"step {i} of 3"] for i in (1, 2, 3)]

        label = f"cancel-{server}"
        started = anyio.Event()

        async def on_started(*_: Any) -> None:
            started.set()

        async def call_slow() -> None:
            await s.call_tool(f"{server}_slow", {"label": label}, progress_callback=on_started)

        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call_slow)
                await started.wait()
                tg.cancel_scope.cancel()
            while label not in _json(await s.call_tool(f"{server}_cancel_status", {}))["cancelled"]:
                await anyio.sleep(0.05)

        await s.set_logging_level("warning")
        assert _json(await s.call_tool(f"{server}_log", {})) == {"sent": ["warning", "error"]}
        with anyio.fail_after(10):
            while not any(entry.level == "error" and entry.logger == "full-server" for entry in rec.logs):
                await anyio.sleep(0.02)


async def test_everything_server_progress_and_sampling_through_the_gateway(three_servers: list[str]) -> None:
    callbacks = Callbacks()
    async with open_session(three_servers, callbacks=callbacks) as (s, rec):
        progress: list[Any] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(done)

        await s.call_tool(
            "everything_trigger-long-running-operation",
            {"duration": 0.3, "steps": 3},
            progress_callback=on_progress,
        )
        assert progress == [1, 2, 3]
        result = await s.call_tool("everything_trigger-sampling-request", {"prompt": "hi", "maxTokens": 5})
        assert "sampled text" in result.content[0].text
        assert rec.server_requests[-1][0] == "sampling/createMessage"
        completed = await s.complete(
            types.PromptReference(type="ref/prompt", name="everything_completable-prompt"),
            {"name": "department", "value": "S"},
        )
        assert completed.completion.values == ["Sales", "Support"]
