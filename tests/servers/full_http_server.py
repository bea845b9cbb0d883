"""The full test server (full_server.py) served over HTTP, for interpose's HTTP tests.

Streamable HTTP at /mcp (sessions, SSE responses, the GET stream, DELETE) and the
legacy HTTP+SSE transport at /sse (messages POSTed to /messages/?session_id=...).

Usage: full_http_server.py --port PORT [--json-response] [--event-store] [--record-headers FILE]
                           [--header-tool]

--json-response  answer requests with JSON bodies instead of SSE streams.
--event-store    keep events in memory so streams can be resumed with Last-Event-ID,
                 and add the tool `drop_stream`: it closes its own response stream
                 (the client must resume to get the answer), waits 0.5 s, answers.
--record-headers FILE  append one JSON line per HTTP request received:
                 {"method", "path", "authorization", "x-test", "mcp-protocol-version",
                  "last-event-id", "mcp-session-id",
                  "mcp": {every other mcp-* header but mcp-session-id}}
                 so a test can see which headers reached the backend.
--header-tool    also list the 2026-07-28 tool `regional`, whose `region` argument is
                 mirrored in the Mcp-Param-Region header (the SDK checks it).

The server prints "READY <port>" on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio  # noqa: E402
import uvicorn  # noqa: E402
from mcp.server.lowlevel import NotificationOptions  # noqa: E402
from mcp.server.sse import SseServerTransport  # noqa: E402
from mcp.server.streamable_http import EventMessage, EventStore  # noqa: E402
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402

import full_server  # noqa: E402


class RecordHeaders:
    """ASGI middleware that appends each request's interesting headers to a file."""

    def __init__(self, app, path: str | None):
        self.app = app
        self.path = path

    async def __call__(self, scope, receive, send):
        if self.path and scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            line = {
                "method": scope["method"],
                "path": scope["path"],
                "authorization": headers.get("authorization"),
                "x-test": headers.get("x-test"),
                "mcp-protocol-version": headers.get("mcp-protocol-version"),
                "last-event-id": headers.get("last-event-id"),
                "mcp-session-id": headers.get("mcp-session-id"),
                "mcp": {k: v for k, v in headers.items() if k.startswith("mcp-") and k != "mcp-session-id"},
            }
            with open(self.path, "a") as f:
                f.write(json.dumps(line) + "\n")
        await self.app(scope, receive, send)


class StreamableEndpoint:
    """The session manager as an ASGI endpoint (a class, so Starlette passes it raw)."""

    def __init__(self, manager: StreamableHTTPSessionManager):
        self.manager = manager

    async def __call__(self, scope, receive, send):
        await self.manager.handle_request(scope, receive, send)


class MemoryEventStore(EventStore):
    """Every event, in order, with ids `{stream}:{n}`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []

    async def store_event(self, stream_id, message):
        event_id = f"{stream_id}:{len(self.events)}"
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback):
        index = next((i for i, e in enumerate(self.events) if e[0] == last_event_id), None)
        if index is None:
            return None
        stream_id = self.events[index][1]
        for event_id, sid, message in self.events[index + 1 :]:
            if sid == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


def add_drop_stream_tool(server) -> None:
    """Wraps tools/call so `drop_stream` closes its response stream mid-call."""
    entry = server._request_handlers["tools/call"]
    inner = entry.handler

    async def call_tool(ctx, params):
        if params.name != "drop_stream":
            return await inner(ctx, params)
        if ctx.close_sse_stream is not None:
            await ctx.close_sse_stream()
        await anyio.sleep(0.5)
        return {"content": [{"type": "text", "text": "answered after the stream was dropped"}]}

    server._request_handlers["tools/call"] = type(entry)(entry.params_type, call_tool)


def build_app(json_response: bool, record_headers: str | None, event_store: bool) -> Starlette:
    server = full_server.build_server()
    if event_store:
        add_drop_stream_tool(server)
    options = server.create_initialization_options(
        NotificationOptions(tools_changed=True, resources_changed=True, prompts_changed=False)
    )
    manager = StreamableHTTPSessionManager(
        app=server,
        json_response=json_response,
        event_store=MemoryEventStore() if event_store else None,
        retry_interval=100 if event_store else None,
    )
    sse = SseServerTransport("/messages/")

    async def handle_sse(request):
        async with sse.connect_sse(request.scope, request.receive, request._send) as (read, write):
            await server.run(read, write, options)
        return Response()

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        async with manager.run():
            yield

    app = Starlette(
        routes=[
            Route("/mcp", endpoint=StreamableEndpoint(manager)),
            Route("/sse", endpoint=handle_sse),
            Mount("/messages/", app=sse.handle_post_message),
        ],
        lifespan=lifespan,
    )
    return RecordHeaders(app, record_headers)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--json-response", action="store_true")
    parser.add_argument("--record-headers")
    parser.add_argument("--event-store", action="store_true")
    parser.add_argument("--header-tool", action="store_true")
    args = parser.parse_args()
    if args.header_tool:
        full_server.TOOLS.append(full_server.HEADER_TOOL)
    app = build_app(args.json_response, args.record_headers, args.event_store)
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)

    async def announce():
        while not server.started:
            await anyio.sleep(0.02)
        print(f"READY {args.port}", flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await server.serve()
        tg.cancel_scope.cancel()


if __name__ == "__main__":
    anyio.run(main)
