"""A Python `mcp` SDK client session over HTTP, for interpose's HTTP tests.

Connects to URL with Streamable HTTP (--transport streamable) or legacy SSE
(--transport sse), or launches a command and talks to it over stdio (--transport stdio,
--url is then the command line as a JSON array), runs a scenario against tests/servers/full_server.py (directly
or through interpose) and prints what it saw as one JSON object on stdout.

The client answers server requests with values that carry its --name, so a test
running two clients at once can tell that each server request reached the client
whose tool call caused it.

Usage: http_scenario.py --url URL --name NAME [--transport streamable|sse|stdio]
                        [--handshake initialize|discover] [--token TOKEN]
                        [--scenario full|basic] [--everything]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp.client.session import ClientRequestContext, ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

warnings.simplefilter("ignore", MCPDeprecationWarning)


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    seen: dict[str, Any] = {"server_requests": [], "progress": [], "logs": []}

    async def sampling(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        seen["server_requests"].append("sampling/createMessage")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"sampled by {args.name}"),
            model="scenario-model",
            stop_reason="endTurn",
        )

    async def elicitation(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> Any:
        seen["server_requests"].append("elicitation/create")
        return types.ElicitResult(action="accept", content={"name": args.name})

    async def list_roots(ctx: ClientRequestContext) -> Any:
        seen["server_requests"].append("roots/list")
        return types.ListRootsResult(roots=[types.Root(uri=f"file:///{args.name}", name=args.name)])

    async def logging_cb(params: types.LoggingMessageNotificationParams) -> None:
        seen["logs"].append(params.level)

    async def progress_cb(progress: float, total: float | None, message: str | None) -> None:
        seen["progress"].append(message)

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    if args.transport == "stdio":
        argv = json.loads(args.url)
        transport = stdio_client(StdioServerParameters(command=argv[0], args=argv[1:]))
    elif args.transport == "sse":
        transport = sse_client(args.url, headers=headers)
    else:
        transport = streamable_http_client(args.url, http_client=httpx2.AsyncClient(headers=headers, timeout=30))

    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(
            read,
            write,
            read_timeout_seconds=30,
            sampling_callback=sampling,
            elicitation_callback=elicitation,
            list_roots_callback=list_roots,
            logging_callback=logging_cb,
            client_info=types.Implementation(name=f"scenario-{args.name}", version="0.0.1"),
        ) as session:
            if args.handshake == "discover":
                discovered = await session.discover()
                seen["handshake"] = dump(discovered).get("supportedVersions")
            else:
                init = await session.initialize()
                seen["handshake"] = init.protocol_version
            tools = await session.list_tools()
            seen["tools"] = len(tools.tools)
            key = "message" if args.everything else "text"
            echo = await session.call_tool("echo", {key: f"hello from {args.name}"})
            seen["echo"] = text_of(echo)
            if args.scenario == "full":
                done = await session.call_tool("progress", {"steps": 3}, progress_callback=progress_cb)
                seen["progress_result"] = text_of(done)
                sampled = await session.call_tool("sample", {"prompt": "hi"})
                seen["sample"] = json.loads(text_of(sampled))
                elicited = await session.call_tool("elicit_form", {})
                seen["elicit"] = json.loads(text_of(elicited))
                roots = await session.call_tool("roots", {})
                seen["roots"] = json.loads(text_of(roots))["roots"]
                await session.set_logging_level("info")
                logged = await session.call_tool("log", {})
                seen["log_result"] = json.loads(text_of(logged))
                # Log notifications may come on the GET stream after the tool's answer.
                with anyio.move_on_after(5):
                    while len(seen["logs"]) < len(seen["log_result"]["sent"]):
                        await anyio.sleep(0.05)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--transport", choices=["streamable", "sse", "stdio"], default="streamable")
    parser.add_argument("--handshake", choices=["initialize", "discover"], default="initialize")
    parser.add_argument("--token")
    parser.add_argument("--scenario", choices=["full", "basic"], default="full")
    parser.add_argument("--everything", action="store_true", help="the backend is server-everything")
    args = parser.parse_args()
    try:
        result = anyio.run(run, args)
    except BaseException as e:  # noqa: BLE001 - report every failure as JSON for the test
        print(json.dumps({"error": repr(e)}))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
