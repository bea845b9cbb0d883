"""Opening a typed `mcp` SDK client session on a command (a backend, or interpose in front of one)."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp.client.session import ClientRequestContext, ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPDeprecationWarning

# Logging, roots and sampling are exactly what interpose must relay even though
# the 2026-07-28 revision deprecates them.
warnings.simplefilter("ignore", MCPDeprecationWarning)

CLIENT_INFO = types.Implementation(name="interpose-e2e", version="0.0.1")


def dump(model: Any) -> Any:
    """The wire form of a typed model, for comparing direct and proxy."""
    if isinstance(model, list):
        return [dump(m) for m in model]
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass
class Recorder:
    """What the client saw besides responses: notifications and server requests."""

    notifications: list[Any] = field(default_factory=list)
    logs: list[types.LoggingMessageNotificationParams] = field(default_factory=list)
    server_requests: list[tuple[str, Any]] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)

    def _poke(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> Any:
        with anyio.fail_after(timeout):
            while True:
                for n in self.notifications:
                    if predicate(n):
                        return n
                await self.changed.wait()

    def of_type(self, cls: type) -> list[Any]:
        return [n for n in self.notifications if isinstance(n, cls)]


class Callbacks:
    """Default client-side answers to server requests; tests override attributes."""

    def __init__(self) -> None:
        self.sampling_result: types.CreateMessageResult | types.ErrorData = types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="sampled text"),
            model="e2e-model",
            stop_reason="endTurn",
        )
        self.elicitation_result: types.ElicitResult | types.ErrorData = types.ElicitResult(
            action="accept", content={"name": "Ada", "age": 36}
        )
        self.roots: list[types.Root] = [types.Root(uri="file:///tmp/root-a", name="root-a")]
        self.sampling_started: anyio.Event = anyio.Event()
        self.sampling_block: bool = False


@asynccontextmanager
async def open_session(
    argv: list[str],
    *,
    callbacks: Callbacks | None = None,
    timeout: float = 20.0,
    read_timeout_seconds: float | None = 20.0,
    handshake: str = "initialize",
) -> AsyncIterator[tuple[ClientSession, Recorder]]:
    """Launch argv, open a session with every client capability, yield it.

    handshake="initialize" (default) is the 2025-11-25 handshake era;
    handshake="discover" opens a 2026-07-28 session (server/discover, then a
    `_meta` envelope on every request, no initialize).
    """
    cb = callbacks or Callbacks()
    rec = Recorder()

    async def sampling(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        rec.server_requests.append(("sampling/createMessage", dump(params)))
        cb.sampling_started.set()
        if cb.sampling_block:
            await anyio.sleep_forever()
        return cb.sampling_result

    async def elicitation(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> Any:
        rec.server_requests.append(("elicitation/create", dump(params)))
        return cb.elicitation_result

    async def list_roots(ctx: ClientRequestContext) -> Any:
        rec.server_requests.append(("roots/list", None))
        return types.ListRootsResult(roots=cb.roots)

    async def logging_cb(params: types.LoggingMessageNotificationParams) -> None:
        rec.logs.append(params)

    async def message_handler(message: Any) -> None:
        if isinstance(message, Exception):
            rec.errors.append(message)
        else:
            rec.notifications.append(message)
        rec._poke()

    with tempfile.TemporaryFile(mode="w+") as errlog:
        params = StdioServerParameters(command=argv[0], args=argv[1:])
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(
                read,
                write,
                read_timeout_seconds=read_timeout_seconds,
                sampling_callback=sampling,
                elicitation_callback=elicitation,
                list_roots_callback=list_roots,
                logging_callback=logging_cb,
                message_handler=message_handler,
                client_info=CLIENT_INFO,
            ) as session:
                with anyio.fail_after(timeout):
                    if handshake == "discover":
                        await session.discover()
                    else:
                        await session.initialize()
                yield session, rec
