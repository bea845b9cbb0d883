"""A tiny raw JSON-RPC client over a subprocess's stdio, for byte-level checks.

It speaks newline-delimited JSON and keeps every line it receives exactly as
it came off the pipe, so tests can compare what a backend said directly with
what interpose relayed, byte for byte. It answers the requests a server sends
(sampling, elicitation, roots, ping) through a handler the test supplies.

Payload bytes: `Msg.raw_member("result")` returns the exact text of one
top-level member of a message (its span in the line), so two messages whose
envelopes differ only in key order or in the `id` can still be compared on
their payload bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Big enough for the 5 MB tool result plus JSON escaping.
READ_LIMIT = 64 * 1024 * 1024

LATEST_HANDSHAKE_VERSION = "2025-11-25"

_decoder = json.JSONDecoder()
_WS = " \t\r\n"


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def top_level_spans(text: str) -> dict[str, tuple[int, int]]:
    """Map each top-level member of a JSON object text to the span of its value."""
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "{":
        raise ValueError("not a JSON object")
    pos = _skip_ws(text, pos + 1)
    spans: dict[str, tuple[int, int]] = {}
    if pos < len(text) and text[pos] == "}":
        return spans
    while True:
        key, pos = _decoder.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if text[pos] != ":":
            raise ValueError("expected ':'")
        start = _skip_ws(text, pos + 1)
        _, end = _decoder.raw_decode(text, start)
        spans[key] = (start, end)
        pos = _skip_ws(text, end)
        if text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if text[pos] == "}":
            return spans
        raise ValueError("expected ',' or '}'")


@dataclass
class Msg:
    """One line received from the peer."""

    raw: bytes  # without the trailing newline
    obj: Any  # parsed JSON, or None if the line is not JSON

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8")

    @property
    def kind(self) -> str:
        o = self.obj
        if not isinstance(o, dict):
            return "invalid"
        if "method" in o:
            return "request" if "id" in o else "notification"
        if "result" in o:
            return "response"
        if "error" in o:
            return "error"
        return "invalid"

    @property
    def method(self) -> str | None:
        return self.obj.get("method") if isinstance(self.obj, dict) else None

    @property
    def id(self) -> Any:
        return self.obj.get("id") if isinstance(self.obj, dict) else None

    @property
    def result(self) -> Any:
        return self.obj.get("result")

    @property
    def error(self) -> Any:
        return self.obj.get("error")

    @property
    def params(self) -> Any:
        return self.obj.get("params")

    def raw_member(self, name: str) -> str | None:
        """The exact text of top-level member `name` (None when absent)."""
        text = self.text
        span = top_level_spans(text).get(name)
        return None if span is None else text[span[0] : span[1]]

    @property
    def payload_name(self) -> str:
        return {"response": "result", "error": "error"}.get(self.kind, "params")

    def payload_raw(self) -> str | None:
        return self.raw_member(self.payload_name)

    def comparable(self, *, keep_id: bool | None = None) -> tuple[Any, ...]:
        """What must be the same, byte for byte, direct and through the proxy.

        Kind, method, id (except on server-to-client requests, whose ids the
        proxy may choose) and the payload text. Long payloads are hashed so
        that an assertion diff stays readable.
        """
        if keep_id is None:
            keep_id = self.kind != "request"
        payload = self.payload_raw()
        if payload is not None and len(payload) > 4096:
            payload = f"<{len(payload)} chars sha256={hashlib.sha256(payload.encode()).hexdigest()[:16]}>"
        return (self.kind, self.method, json.dumps(self.id) if keep_id else "<id>", payload)

    def __repr__(self) -> str:
        text = self.text
        return f"Msg({text[:300] + '...' if len(text) > 300 else text})"


RequestHandler = Callable[[Msg], Awaitable[dict[str, Any] | None]]
"""Answers a server-to-client request: returns {"result": ...} or {"error": ...}, or None for no answer."""


async def default_server_request_handler(msg: Msg) -> dict[str, Any] | None:
    if msg.method == "ping":
        return {"result": {}}
    return {"error": {"code": -32601, "message": "Method not found", "data": msg.method}}


class ProcessExited(Exception):
    pass


@dataclass
class RawClient:
    argv: Sequence[str]
    on_server_request: RequestHandler = default_server_request_handler
    env: dict[str, str] | None = None
    received: list[Msg] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(100)  # explicit test ids stay below 100
        self._waiters: dict[str, asyncio.Future[Msg]] = {}
        self._changed = asyncio.Condition()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stderr = tempfile.TemporaryFile()
        self._write_lock = asyncio.Lock()
        self.eof = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> RawClient:
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            limit=READ_LIMIT,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read_loop())
        return self

    async def __aenter__(self) -> RawClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()

    @property
    def proc(self) -> asyncio.subprocess.Process:
        assert self._proc is not None
        return self._proc

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    async def close_stdin(self) -> None:
        if self.proc.stdin and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
            try:
                await self.proc.stdin.wait_closed()
            except (BrokenPipeError, ConnectionResetError):
                pass

    async def wait_exit(self, timeout: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def close(self, timeout: float = 5.0) -> int:
        """Close stdin, then wait for the process to exit on its own."""
        await self.close_stdin()
        return await self.wait_exit(timeout)

    async def kill(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._proc is not None and self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, 9)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except asyncio.TimeoutError:
                pass
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except BaseException:
                pass
        self._stderr.close()

    # ------------------------------------------------------------------ reading

    async def _read_loop(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                line = await stdout.readline()
                if not line:
                    break
                raw = line[:-1] if line.endswith(b"\n") else line
                try:
                    obj = json.loads(raw)
                except ValueError:
                    obj = None
                msg = Msg(raw, obj)
                self.received.append(msg)
                if msg.kind in ("response", "error"):
                    fut = self._waiters.pop(json.dumps(msg.id), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                elif msg.kind == "request":
                    task = asyncio.create_task(self._answer(msg))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                async with self._changed:
                    self._changed.notify_all()
        finally:
            self.eof.set()
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(ProcessExited("peer closed stdout before answering"))
                    fut.exception()  # a future nobody awaits must not log "never retrieved"
            async with self._changed:
                self._changed.notify_all()

    async def _answer(self, msg: Msg) -> None:
        answer = await self.on_server_request(msg)
        if answer is None:
            return
        await self.send({"jsonrpc": "2.0", "id": msg.id, **answer})

    async def wait_for(
        self, predicate: Callable[[Msg], bool], timeout: float = 10.0, *, start: int = 0
    ) -> Msg:
        """The first received message (from index `start`) matching `predicate`."""

        async def _find() -> Msg:
            async with self._changed:
                while True:
                    for msg in self.received[start:]:
                        if predicate(msg):
                            return msg
                    if self.eof.is_set():
                        raise ProcessExited("peer closed stdout; message never came")
                    await self._changed.wait()

        return await asyncio.wait_for(_find(), timeout)

    def notifications(self, method: str | None = None, *, start: int = 0) -> list[Msg]:
        return [
            m for m in self.received[start:] if m.kind == "notification" and (method is None or m.method == method)
        ]

    # ------------------------------------------------------------------ writing

    async def send_line(self, data: bytes) -> None:
        """Write raw bytes (a newline is NOT added)."""
        stdin = self.proc.stdin
        assert stdin is not None
        async with self._write_lock:
            self.sent.append(data)
            stdin.write(data)
            await stdin.drain()

    async def send(self, obj: Any) -> bytes:
        line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        await self.send_line(line + b"\n")
        return line

    def next_id(self) -> int:
        return next(self._ids)

    def expect(self, request_id: Any) -> asyncio.Future[Msg]:
        """A future for the response to `request_id` (register before sending)."""
        key = json.dumps(request_id)
        for msg in self.received:
            if msg.kind in ("response", "error") and json.dumps(msg.id) == key:
                fut: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
                fut.set_result(msg)
                return fut
        fut = self._waiters.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._waiters[key] = fut
        return fut

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        id: Any = None,  # noqa: A002 - JSON-RPC name
        timeout: float = 10.0,
    ) -> Msg:
        """Send a request and wait for its response (result or error)."""
        if id is None:
            id = self.next_id()  # noqa: A001
        fut = self.expect(id)
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg)
        return await asyncio.wait_for(fut, timeout)

    async def notify(self, method: str, params: Any = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg)

    async def initialize(
        self,
        capabilities: dict[str, Any] | None = None,
        *,
        protocol_version: str = LATEST_HANDSHAKE_VERSION,
        client_info: dict[str, Any] | None = None,
        timeout: float = 15.0,
    ) -> Msg:
        """The handshake: initialize, then notifications/initialized."""
        resp = await self.request(
            "initialize",
            {
                "protocolVersion": protocol_version,
                "capabilities": capabilities if capabilities is not None else {},
                "clientInfo": client_info or {"name": "interpose-e2e-raw", "version": "0.0.1"},
            },
            timeout=timeout,
        )
        await self.notify("notifications/initialized")
        return resp
