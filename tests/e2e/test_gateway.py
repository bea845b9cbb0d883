"""interpose as a gateway: several real MCP servers behind one endpoint, configured
from an `mcpServers` file, seen by a real client (the Python `mcp` SDK).

`full` is tests/servers/full_server.py, `everything` is
@modelcontextprotocol/server-everything; both over stdio.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import types

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import EVERYTHING_ENTRY, FULL_SERVER  # noqa: E402
from sdk import open_session  # noqa: E402

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
