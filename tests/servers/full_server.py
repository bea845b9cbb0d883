"""A stdio MCP server that exercises every feature interpose has to relay.

Written for the interpose end-to-end tests (tests/e2e). It is built on the
low-level `mcp.server.lowlevel.Server` of the Python SDK (pinned in
tests/requirements.txt) so that every list, result and error is exactly what
the tests expect, byte for byte, and so that non-spec methods can be served.

Everything is deterministic: no timestamps, no random ids, no background
timers. Each process serves one connection; state (subscriptions, dynamic
tools, the log level, recorded cancellations) lives in module globals.

Tools (see TOOLS below for the schemas):
  echo            text back (optional delay_ms, for interleaving)
  add             structuredContent + outputSchema
  fail            a result with isError: true
  raise_error     a JSON-RPC error with code, message and data
  sample          sampling/createMessage; returns the client's full result as JSON
  elicit_form     elicitation/create, form mode; returns the result as JSON
  elicit_url      elicitation/create, URL mode, then notifications/elicitation/complete
  roots           roots/list; returns the roots and how many list_changed arrived
  progress        reports progress `steps` times against the caller's token
  log             notifications/message at five levels, filtered by logging/setLevel
  slow            runs until cancelled (or `max_seconds`); records its label when cancelled
  cancel_status   the labels of the slow calls that were cancelled
  add_tool        registers `dynamic_tool` and sends notifications/tools/list_changed
                  (2026-07-28: on the open subscriptions/listen streams)
  dynamic_tool    (only after add_tool)
  big             a text of `size` bytes (default 5,000,000), a known pattern
  crash           os._exit(3) in the middle of the call
  meta_echo       echoes the request's _meta in content, result _meta and a custom notification
  ping_client     sends ping to the client
  touch           sends notifications/resources/updated for a subscribed uri
  seen_notifications  the custom client notifications received so far

Non-spec methods:
  request       interpose_test/echo  -> {"echo": <params as received>}
  request       interpose_test/raw_received {"last": n} -> {"lines": [the n raw stdin lines before it]}
  notification  notifications/interpose_test/hello (client -> server), recorded
  notification  notifications/interpose_test/meta (server -> client), from meta_echo
A request for any other unknown method gets the SDK's -32601 "Method not found"
with the method name as data.
"""

from __future__ import annotations

import io
import json
import os
import sys
import warnings
from collections import deque
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types.methods import CACHEABLE_METHODS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict

# Logging, roots and sampling are deprecated in the 2026-07-28 revision but are
# exactly the handshake-era features interpose must relay: keep stderr quiet.
warnings.simplefilter("ignore", MCPDeprecationWarning)

SERVER_NAME = "interpose-full-server"
LOGGER_NAME = "full-server"
LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
RESOURCE_PAGE_SIZE = 2
BIG_DEFAULT_SIZE = 5_000_000


def big_text(size: int) -> str:
    """The `big` tool's payload: 10-byte numbered lines, cut to `size` bytes."""
    lines = (size + 9) // 10
    return "".join(f"{i:09d}\n" for i in range(lines))[:size]


# --------------------------------------------------------------------------- state

STATE: dict[str, Any] = {
    "log_level": None,  # set by logging/setLevel
    "subscriptions": set(),  # resource uris
    "dynamic_tool": False,  # add_tool was called
    "cancelled": [],  # labels of slow calls that saw their cancellation
    "roots_list_changed": 0,  # notifications/roots/list_changed received
    "seen_notifications": [],  # params of notifications/interpose_test/hello
}

# --------------------------------------------------------------------------- tools

_OBJ = "object"

TOOLS: list[dict[str, Any]] = [
    {
        "name": "echo",
        "title": "Echo",
        "description": "Echo the text back; optional delay in milliseconds.",
        "inputSchema": {
            "type": _OBJ,
            "properties": {"text": {"type": "string"}, "delay_ms": {"type": "integer", "minimum": 0}},
            "required": ["text"],
        },
        "annotations": {"readOnlyHint": True, "idempotentHint": True},
    },
    {
        "name": "add",
        "description": "Add two numbers; structured output.",
        "inputSchema": {
            "type": _OBJ,
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
        "outputSchema": {
            "type": _OBJ,
            "properties": {"sum": {"type": "number"}, "operands": {"type": "array", "items": {"type": "number"}}},
            "required": ["sum", "operands"],
        },
    },
    {"name": "fail", "description": "A tool-level failure (isError).", "inputSchema": {"type": _OBJ}},
    {
        "name": "raise_error",
        "description": "A JSON-RPC error with code, message and data.",
        "inputSchema": {"type": _OBJ},
    },
    {
        "name": "sample",
        "description": "Ask the client to sample; return its full result.",
        "inputSchema": {"type": _OBJ, "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]},
    },
    {"name": "elicit_form", "description": "Form-mode elicitation.", "inputSchema": {"type": _OBJ}},
    {"name": "elicit_url", "description": "URL-mode elicitation.", "inputSchema": {"type": _OBJ}},
    {"name": "roots", "description": "Ask the client for its roots.", "inputSchema": {"type": _OBJ}},
    {
        "name": "progress",
        "description": "Report progress `steps` times.",
        "inputSchema": {"type": _OBJ, "properties": {"steps": {"type": "integer"}}},
    },
    {"name": "log", "description": "Log at several levels.", "inputSchema": {"type": _OBJ}},
    {
        "name": "slow",
        "description": "Run until cancelled; records `label` when the cancellation arrives.",
        "inputSchema": {
            "type": _OBJ,
            "properties": {"label": {"type": "string"}, "max_seconds": {"type": "number"}},
            "required": ["label"],
        },
    },
    {"name": "cancel_status", "description": "Labels of cancelled slow calls.", "inputSchema": {"type": _OBJ}},
    {"name": "add_tool", "description": "Register dynamic_tool.", "inputSchema": {"type": _OBJ}},
    {
        "name": "big",
        "description": "A large text result.",
        "inputSchema": {"type": _OBJ, "properties": {"size": {"type": "integer"}}},
    },
    {"name": "crash", "description": "Exit the process mid-call.", "inputSchema": {"type": _OBJ}},
    {
        "name": "meta_echo",
        "description": "Echo the request's _meta.",
        "inputSchema": {"type": _OBJ},
        "_meta": {"interpose-test/tool-meta": {"kept": True}},
    },
    {"name": "ping_client", "description": "Ping the client.", "inputSchema": {"type": _OBJ}},
    {
        "name": "touch",
        "description": "Send resources/updated for a subscribed uri.",
        "inputSchema": {"type": _OBJ, "properties": {"uri": {"type": "string"}}, "required": ["uri"]},
    },
    {"name": "seen_notifications", "description": "Custom notifications received.", "inputSchema": {"type": _OBJ}},
]

# Listed only with --header-tool: a 2026-07-28 tool whose `region` argument must be
# mirrored in the `Mcp-Param-Region` header (`x-mcp-header`).
HEADER_TOOL = {
    "name": "regional",
    "description": "Echoes `region`, which is mirrored in Mcp-Param-Region.",
    "inputSchema": {
        "type": _OBJ,
        "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
    },
}

DYNAMIC_TOOL = {
    "name": "dynamic_tool",
    "description": "Registered at run time by add_tool.",
    "inputSchema": {"type": _OBJ},
}


def text_result(text: str, **extra: Any) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], **extra}


def json_result(value: Any, **extra: Any) -> dict[str, Any]:
    return text_result(json.dumps(value, sort_keys=True), **extra)


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def era_aware(handler: Any) -> Any:
    """On a 2026-07-28 connection results must carry `resultType` (and lists and reads
    `ttlMs`/`cacheScope`): add them to our raw dicts.

    Handshake-era results (what most tests use) stay exactly as written.
    """

    async def wrapped(ctx: ServerRequestContext, params: Any) -> Any:
        result = await handler(ctx, params)
        if isinstance(result, dict) and ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            result = {"resultType": "complete", **result}
            if ctx.method in CACHEABLE_METHODS:
                result = {"ttlMs": 0, "cacheScope": "private", **result}
        return result

    return wrapped


async def list_tools(ctx: ServerRequestContext, params: types.PaginatedRequestParams | None) -> dict[str, Any]:
    tools = list(TOOLS)
    if STATE["dynamic_tool"]:
        tools.append(DYNAMIC_TOOL)
    return {"tools": tools}


async def call_tool(ctx: ServerRequestContext, params: types.CallToolRequestParams) -> dict[str, Any]:
    name = params.name
    args: dict[str, Any] = dict(params.arguments or {})
    session = ctx.session

    if name == "regional":
        return text_result(args.get("region", ""))

    if name == "echo":
        if args.get("delay_ms"):
            await anyio.sleep(args["delay_ms"] / 1000)
        return text_result(args["text"])

    if name == "add":
        a, b = args["a"], args["b"]
        structured = {"sum": a + b, "operands": [a, b]}
        return json_result(structured, structuredContent=structured)

    if name == "fail":
        return text_result("the tool failed on purpose", isError=True)

    if name == "raise_error":
        raise MCPError(
            code=-32042,
            message="custom failure from full_server",
            data={"reason": "on purpose", "nested": {"list": [1, 2.5, "three", None, True]}, "unicode": "é✓"},
        )

    if name == "sample":
        result = await session.create_message(
            [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=args["prompt"]))],
            max_tokens=64,
            system_prompt="You are a test.",
            temperature=0.25,
            stop_sequences=["STOP"],
            metadata={"interpose-test": "sampling-metadata"},
            model_preferences=types.ModelPreferences(hints=[types.ModelHint(name="test-model")], speed_priority=0.5),
        )
        return json_result(dump(result))

    if name == "elicit_form":
        result = await session.elicit_form(
            "Who are you?",
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "title": "Name"},
                    "age": {"type": "integer", "minimum": 0},
                    "color": {"type": "string", "enum": ["red", "green"]},
                },
                "required": ["name"],
            },
        )
        return json_result(dump(result))

    if name == "elicit_url":
        elicitation_id = "elicit-0001"
        result = await session.elicit_url(
            "Please authorise the test", "https://example.invalid/authorise?x=1", elicitation_id
        )
        await session.send_elicit_complete(elicitation_id)
        return json_result(dump(result))

    if name == "roots":
        result = await session.list_roots()
        return json_result({"roots": dump(result)["roots"], "list_changed_seen": STATE["roots_list_changed"]})

    if name == "progress":
        steps = int(args.get("steps", 3))
        for i in range(1, steps + 1):
            await session.report_progress(i, steps, f"step {i} of {steps}")
        return text_result(f"progressed {steps} steps")

    if name == "log":
        threshold = STATE["log_level"]
        sent = []
        for i, level in enumerate(["debug", "info", "notice", "warning", "error"]):
            if threshold is not None and LOG_LEVELS.index(level) < LOG_LEVELS.index(threshold):
                continue
            await session.send_log_message(level, {"n": i, "msg": f"{level} message"}, logger=LOGGER_NAME)
            sent.append(level)
        return json_result({"sent": sent})

    if name == "slow":
        label = args["label"]
        # Tell the caller we are running, so it can cancel a call that is
        # known to have reached the handler.
        await session.report_progress(0, None, "started")
        try:
            await anyio.sleep(float(args.get("max_seconds", 30)))
        except anyio.get_cancelled_exc_class():
            STATE["cancelled"].append(label)
            raise
        return text_result(f"slow {label} was never cancelled")

    if name == "cancel_status":
        return json_result({"cancelled": STATE["cancelled"]})

    if name == "add_tool":
        STATE["dynamic_tool"] = True
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            # 2026-07-28: no unsolicited notifications; open subscriptions get it.
            await SUBSCRIPTIONS.publish(ToolsListChanged())
        else:
            await session.send_tool_list_changed()
        return text_result("dynamic_tool added")

    if name == "dynamic_tool" and STATE["dynamic_tool"]:
        return text_result("dynamic tool called")

    if name == "big":
        return text_result(big_text(int(args.get("size", BIG_DEFAULT_SIZE))))

    if name == "crash":
        sys.stderr.write("full_server: crashing on purpose (exit 3)\n")
        sys.stderr.flush()
        os._exit(3)

    if name == "meta_echo":
        received = (ctx.params or {}).get("_meta")
        note_meta = {"interpose-test/note": {"from": "server", "echo": received}}
        await session._connection.outbound.notify(  # noqa: SLF001 - custom method, no typed helper
            "notifications/interpose_test/meta", {"_meta": note_meta, "value": 7}
        )
        return json_result({"received": received}, _meta={"interpose-test/result": {"echo": received, "n": 1}})

    if name == "ping_client":
        await session.send_ping()
        return text_result("client answered ping")

    if name == "touch":
        uri = args["uri"]
        notified = uri in STATE["subscriptions"]
        if notified:
            await session.send_resource_updated(uri)
        return json_result({"notified": notified})

    if name == "seen_notifications":
        return json_result({"seen": STATE["seen_notifications"]})

    raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {name}")


# --------------------------------------------------------------------------- resources

RESOURCES: list[dict[str, Any]] = [
    {"uri": f"test://static/{i}", "name": f"static-{i}", "mimeType": "text/plain", "description": f"Static #{i}"}
    for i in range(5)
] + [{"uri": "test://static/blob", "name": "blob", "mimeType": "application/octet-stream", "size": 4}]

TEMPLATES: list[dict[str, Any]] = [
    {
        "uriTemplate": "test://items/{id}",
        "name": "item",
        "title": "An item by id",
        "mimeType": "application/json",
    }
]


def _page(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.startswith("page:"):
        raise MCPError(code=types.INVALID_PARAMS, message="Invalid cursor", data=cursor)
    return int(cursor.split(":", 1)[1])


async def list_resources(ctx: ServerRequestContext, params: types.PaginatedRequestParams | None) -> dict[str, Any]:
    start = _page(params.cursor if params else None)
    end = start + RESOURCE_PAGE_SIZE
    result: dict[str, Any] = {"resources": RESOURCES[start:end]}
    if end < len(RESOURCES):
        result["nextCursor"] = f"page:{end}"
    return result


async def list_templates(ctx: ServerRequestContext, params: types.PaginatedRequestParams | None) -> dict[str, Any]:
    return {"resourceTemplates": TEMPLATES}


async def read_resource(ctx: ServerRequestContext, params: types.ReadResourceRequestParams) -> dict[str, Any]:
    uri = str(params.uri)
    if uri == "test://static/blob":
        return {"contents": [{"uri": uri, "mimeType": "application/octet-stream", "blob": "AAEC/w=="}]}
    if uri.startswith("test://static/"):
        return {"contents": [{"uri": uri, "mimeType": "text/plain", "text": f"contents of {uri}"}]}
    if uri.startswith("test://items/"):
        item = uri.rsplit("/", 1)[1]
        text = json.dumps({"id": item, "kind": "item"}, sort_keys=True)
        return {"contents": [{"uri": uri, "mimeType": "application/json", "text": text}]}
    raise MCPError(code=-32002, message="Resource not found", data={"uri": uri})


async def subscribe(ctx: ServerRequestContext, params: types.SubscribeRequestParams) -> dict[str, Any]:
    STATE["subscriptions"].add(str(params.uri))
    return {}


async def unsubscribe(ctx: ServerRequestContext, params: types.UnsubscribeRequestParams) -> dict[str, Any]:
    STATE["subscriptions"].discard(str(params.uri))
    return {}


# --------------------------------------------------------------------------- prompts, completion, logging

PROMPTS: list[dict[str, Any]] = [
    {
        "name": "greet",
        "title": "Greeting",
        "description": "Greet someone in a style.",
        "arguments": [
            {"name": "name", "description": "Who to greet", "required": True},
            {"name": "style", "description": "How", "required": False},
        ],
    },
    {"name": "simple", "description": "A prompt without arguments."},
]

STYLES = ["fancy", "formal", "friendly", "funny", "plain"]
ITEM_IDS = ["1", "2", "3", "10", "11", "20"]


async def list_prompts(ctx: ServerRequestContext, params: types.PaginatedRequestParams | None) -> dict[str, Any]:
    return {"prompts": PROMPTS}


async def get_prompt(ctx: ServerRequestContext, params: types.GetPromptRequestParams) -> dict[str, Any]:
    args = params.arguments or {}
    if params.name == "greet":
        if "name" not in args:
            raise MCPError(code=types.INVALID_PARAMS, message="Missing required argument: name")
        style = args.get("style", "plain")
        return {
            "description": f"A {style} greeting",
            "messages": [
                {"role": "user", "content": {"type": "text", "text": f"Greet {args['name']} in a {style} way."}},
                {"role": "assistant", "content": {"type": "text", "text": "Sure."}},
            ],
        }
    if params.name == "simple":
        return {"messages": [{"role": "user", "content": {"type": "text", "text": "Hello."}}]}
    raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {params.name}")


async def complete(ctx: ServerRequestContext, params: types.CompleteRequestParams) -> dict[str, Any]:
    ref = dump(params.ref)
    arg = params.argument
    if ref.get("type") == "ref/prompt" and ref.get("name") == "greet" and arg.name == "style":
        values = [s for s in STYLES if s.startswith(arg.value)]
    elif ref.get("type") == "ref/resource" and ref.get("uri") == "test://items/{id}" and arg.name == "id":
        values = [i for i in ITEM_IDS if i.startswith(arg.value)]
    else:
        values = []
    return {"completion": {"values": values, "total": len(values), "hasMore": False}}


async def set_level(ctx: ServerRequestContext, params: types.SetLevelRequestParams) -> dict[str, Any]:
    STATE["log_level"] = params.level
    return {}


async def roots_list_changed(ctx: ServerRequestContext, params: types.NotificationParams | None) -> None:
    STATE["roots_list_changed"] += 1


# --------------------------------------------------------------------------- non-spec methods


class OpenRequestParams(types.RequestParams):
    model_config = ConfigDict(extra="allow")


class OpenNotificationParams(types.NotificationParams):
    model_config = ConfigDict(extra="allow")


async def custom_echo(ctx: ServerRequestContext, params: OpenRequestParams) -> dict[str, Any]:
    return {"echo": dict(ctx.params or {}), "method": ctx.method}


async def custom_hello(ctx: ServerRequestContext, params: OpenNotificationParams) -> None:
    STATE["seen_notifications"].append(dict(ctx.params or {}))


async def raw_received(ctx: ServerRequestContext, params: OpenRequestParams) -> dict[str, Any]:
    """The exact lines (text, newline stripped) received on stdin before this request."""
    last = int((ctx.params or {}).get("last", 10))
    lines = [line.rstrip("\n") for line in RAW_IN]
    return {"lines": lines[-last - 1 : -1]}


# 2026-07-28 `subscriptions/listen` streams; add_tool publishes on it.
SUBSCRIPTIONS = InMemorySubscriptionBus()

# Every line read from stdin, as text (see TeeStdin), for byte-level checks of
# what reached the backend.
RAW_IN: deque[str] = deque(maxlen=100)


class TeeStdin:
    """Async line iterator over stdin that keeps a copy of each line in RAW_IN."""

    def __init__(self) -> None:
        self._file = anyio.wrap_file(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"))

    def __aiter__(self) -> TeeStdin:
        return self

    async def __anext__(self) -> str:
        line = await self._file.readline()
        if not line:
            raise StopAsyncIteration
        RAW_IN.append(line)
        return line


# --------------------------------------------------------------------------- wiring


def build_server() -> Server:
    server = Server(
        SERVER_NAME,
        version="1.0.0",
        title="Interpose full test server",
        instructions="A server for the interpose end-to-end tests.",
        on_list_tools=era_aware(list_tools),
        on_call_tool=era_aware(call_tool),
        on_list_resources=era_aware(list_resources),
        on_list_resource_templates=era_aware(list_templates),
        on_read_resource=era_aware(read_resource),
        on_subscribe_resource=era_aware(subscribe),
        on_unsubscribe_resource=era_aware(unsubscribe),
        on_list_prompts=era_aware(list_prompts),
        on_get_prompt=era_aware(get_prompt),
        on_completion=era_aware(complete),
        on_set_logging_level=era_aware(set_level),
        on_roots_list_changed=roots_list_changed,
        on_subscriptions_listen=ListenHandler(SUBSCRIPTIONS),
    )
    server.add_request_handler("interpose_test/echo", OpenRequestParams, era_aware(custom_echo))
    server.add_request_handler("interpose_test/raw_received", OpenRequestParams, era_aware(raw_received))
    server.add_notification_handler("notifications/interpose_test/hello", OpenNotificationParams, custom_hello)
    # No OpenTelemetry spans in a test server.
    server.middleware = []
    return server


async def main(argv: list[str]) -> None:
    # Optional, for the lifecycle tests: --pidfile PATH (written at start),
    # --exitfile PATH (written when the server ends because its stdin closed);
    # --header-tool (alone) lists HEADER_TOOL too.
    if "--header-tool" in argv:
        argv = [a for a in argv if a != "--header-tool"]
        TOOLS.append(HEADER_TOOL)
    opts = dict(zip(argv[::2], argv[1::2]))
    if "--pidfile" in opts:
        with open(opts["--pidfile"], "w") as f:
            f.write(str(os.getpid()))
    server = build_server()
    options = server.create_initialization_options(
        NotificationOptions(tools_changed=True, resources_changed=True, prompts_changed=False)
    )
    async with stdio_server(stdin=TeeStdin()) as (read_stream, write_stream):
        await server.run(read_stream, write_stream, options)
    if "--exitfile" in opts:
        with open(opts["--exitfile"], "w") as f:
            f.write("stdin closed, clean exit")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
