"""Behaviours that exist only in interpose: bad input, size caps, backend crashes, exit codes.

These talk raw JSON-RPC to `interpose run -- python full_server.py` and have no
direct-mode counterpart (the Python SDK server answers bad input its own way,
and a crashed backend has nobody to report it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import BACKENDS  # noqa: E402
from rawclient import Msg, RawClient  # noqa: E402

pytestmark = [pytest.mark.anyio, pytest.mark.proxy_only]

PYTHON = sys.executable


def interpose(proxy_bin: Path, *backend: str, args: tuple[str, ...] = ()) -> list[str]:
    return [str(proxy_bin), "run", *args, "--", *(backend or BACKENDS["full"])]


def text_of(msg: Msg) -> str:
    assert msg.kind == "response", msg
    return msg.result["content"][0]["text"]


def replies_to(c: RawClient, rid: object, start: int = 0) -> list[Msg]:
    key = json.dumps(rid)
    return [m for m in c.received[start:] if m.kind in ("response", "error") and json.dumps(m.id) == key]


async def echo_ok(c: RawClient, text: str = "still alive") -> None:
    reply = await c.request("tools/call", {"name": "echo", "arguments": {"text": text}})
    assert text_of(reply) == text


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "line",
    [
        b"not json\n",
        b'{"jsonrpc":"2.0","id":5,"method":"tools/list"\n',  # cut short
        b"\xff\xfe\xfd binary garbage\n",  # not UTF-8
        b"}{\n",
    ],
    ids=["text", "truncated", "not-utf8", "braces"],
)
async def test_malformed_line_gets_parse_error_and_session_continues(proxy_bin, line):
    async with RawClient(interpose(proxy_bin)) as c:
        await c.initialize()
        start = len(c.received)
        await c.send_line(line)
        parse_error = await c.wait_for(lambda m: m.kind == "error", start=start, timeout=5)
        assert parse_error.obj["jsonrpc"] == "2.0"
        assert parse_error.id is None and "id" in parse_error.obj, f"id must be null: {parse_error}"
        assert parse_error.error["code"] == -32700, parse_error
        assert isinstance(parse_error.error.get("message"), str)
        await echo_ok(c)
        # Exactly one error for the bad line, nothing else unexpected.
        assert [m.kind for m in c.received[start:]] == ["error", "response"], c.received[start:]


async def test_valid_json_that_is_not_jsonrpc_gets_error_and_session_continues(proxy_bin):
    async with RawClient(interpose(proxy_bin)) as c:
        await c.initialize()
        start = len(c.received)
        await c.send_line(b'{"hello":"world"}\n')
        err = await c.wait_for(lambda m: m.kind == "error", start=start, timeout=5)
        assert err.id is None and err.error["code"] in (-32700, -32600), err
        await echo_ok(c)


async def test_malformed_line_before_initialize(proxy_bin):
    async with RawClient(interpose(proxy_bin)) as c:
        await c.send_line(b"garbage before the handshake\n")
        err = await c.wait_for(lambda m: m.kind == "error", timeout=5)
        assert err.id is None and err.error["code"] == -32700
        init = await c.initialize()
        assert init.result["serverInfo"]["name"] == "interpose-full-server"


# --------------------------------------------------------------------------- size cap


async def test_overlong_request_gets_invalid_request_with_its_id(proxy_bin):
    cap = 4096
    async with RawClient(interpose(proxy_bin, args=("--max-message-bytes", str(cap)))) as c:
        await c.initialize()
        # Just under the cap passes.
        under = "u" * (cap - 200)
        reply = await c.request("tools/call", {"name": "echo", "arguments": {"text": under}})
        assert text_of(reply) == under
        # Over the cap: an error carrying the request's own id.
        start = len(c.received)
        over = await c.request("tools/call", {"name": "echo", "arguments": {"text": "o" * (3 * cap)}}, id="too-big-7", timeout=5)
        assert over.kind == "error", over
        assert over.error["code"] == -32600, over
        assert over.id == "too-big-7"
        await echo_ok(c)
        assert len(replies_to(c, "too-big-7", start)) == 1


async def test_default_cap_is_16_mib(proxy_bin):
    """A 17 MiB request line is refused with -32600 and its id; a 5 MB result still passes."""
    async with RawClient(interpose(proxy_bin)) as c:
        await c.initialize()
        big = await c.request("tools/call", {"name": "big", "arguments": {}}, timeout=30)
        assert len(text_of(big)) == 5_000_000
        over = await c.request(
            "tools/call", {"name": "echo", "arguments": {"text": "x" * (17 * 1024 * 1024)}}, id=424242, timeout=30
        )
        assert over.kind == "error" and over.error["code"] == -32600 and over.id == 424242, over
        await echo_ok(c)


async def test_overlong_backend_response_gets_error_with_id(proxy_bin):
    """--max-message-bytes covers the backend's side too ("from either side"): the client gets an
    error for its request instead of the oversized response, and the session continues."""
    async with RawClient(interpose(proxy_bin, args=("--max-message-bytes", "100000"))) as c:
        await c.initialize()
        reply = await c.request("tools/call", {"name": "big", "arguments": {"size": 300000}}, id="big-answer", timeout=10)
        assert reply.kind == "error", f"expected an error instead of a {len(reply.raw)}-byte response"
        assert reply.id == "big-answer"
        await echo_ok(c)


# --------------------------------------------------------------------------- unknown ids


async def test_response_for_unknown_id_is_dropped(proxy_bin):
    async with RawClient(interpose(proxy_bin)) as c:
        await c.initialize()
        start = len(c.received)
        await c.send({"jsonrpc": "2.0", "id": 987654, "result": {"stray": True}})
        await c.send({"jsonrpc": "2.0", "id": "nobody-asked", "error": {"code": -1, "message": "stray"}})
        await echo_ok(c)
        await asyncio.sleep(0.3)
        assert [m.kind for m in c.received[start:]] == ["response"], c.received[start:]
        assert c.returncode is None


# --------------------------------------------------------------------------- backend crash


def _exit_message_ok(stderr: str, code: int) -> bool:
    return bool(re.search(rf"\b{code}\b", stderr)) and bool(re.search(r"exit|status|crash|died|terminat", stderr, re.I))


async def exit_status_within(c: RawClient, seconds: float, why: str) -> int:
    """interpose's exit status, failing clearly if it is still running after `seconds`."""
    try:
        return await c.wait_exit(seconds)
    except asyncio.TimeoutError:
        pass
    pytest.fail(
        f"interpose still running {seconds:.0f}s after {why} (client stdin still open); "
        f"stderr so far:\n{c.stderr_text()}",
        pytrace=False,
    )


async def crash_with_slow_call_in_flight(c: RawClient) -> dict[object, tuple[Msg, float]]:
    """Start `slow`, wait until it runs, then call `crash`; returns each reply and its delay."""
    await c.initialize()
    start = len(c.received)
    slow = c.expect("slow-1")
    await c.send(
        {
            "jsonrpc": "2.0",
            "id": "slow-1",
            "method": "tools/call",
            "params": {"name": "slow", "arguments": {"label": "x"}, "_meta": {"progressToken": "p"}},
        }
    )
    await c.wait_for(lambda m: m.method == "notifications/progress", start=start)
    crash = c.expect(77)
    sent_at = time.monotonic()
    await c.send({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {"name": "crash", "arguments": {}}})
    replies = {}
    for rid, fut in [("slow-1", slow), (77, crash)]:
        try:
            msg = await asyncio.wait_for(fut, 5)
        except asyncio.TimeoutError:
            msg = None
        if msg is None:
            pytest.fail(f"no reply to in-flight request {rid!r} within 5 s of the backend crash", pytrace=False)
        replies[rid] = (msg, time.monotonic() - sent_at)
    return replies


async def test_backend_crash_fails_requests_in_flight_within_1s(proxy_bin):
    """Every request in flight when the backend dies gets a -32000 error, with its own id, within 1 s."""
    async with RawClient(interpose(proxy_bin)) as c:
        replies = await crash_with_slow_call_in_flight(c)
        for rid, (msg, elapsed) in replies.items():
            assert msg.kind == "error", msg
            assert msg.error["code"] == -32000, msg
            assert msg.id == rid
            assert elapsed < 1.0, f"error for {rid!r} came {elapsed:.2f}s after the crash request"


async def test_backend_crash_mid_call_exits_nonzero_with_message(proxy_bin):
    """After the backend crashes, interpose exits non-zero (without waiting for the client to
    close stdin) and says on stderr that the backend exited with status 3."""
    async with RawClient(interpose(proxy_bin)) as c:
        await crash_with_slow_call_in_flight(c)
        rc = await exit_status_within(c, 5, "its backend crashed")
        stderr = c.stderr_text()
        assert rc != 0, f"interpose exited 0 after its backend crashed; stderr:\n{stderr}"
        assert _exit_message_ok(stderr, 3), f"stderr should say the backend exited with status 3:\n{stderr}"


async def test_backend_exit_while_idle(proxy_bin):
    backend = (PYTHON, "-c", "import sys, time; sys.stdin.readline(); time.sleep(0.2); sys.exit(4)")
    async with RawClient(interpose(proxy_bin, *backend)) as c:
        await c.send({"jsonrpc": "2.0", "method": "notifications/whatever"})
        rc = await exit_status_within(c, 5, "its backend exited with status 4")
        stderr = c.stderr_text()
        assert rc != 0
        assert _exit_message_ok(stderr, 4), stderr


async def test_backend_that_cannot_start(proxy_bin):
    async with RawClient(interpose(proxy_bin, "/nonexistent/mcp-backend", "--flag")) as c:
        rc = await exit_status_within(c, 5, "failing to start its backend")
        stderr = c.stderr_text()
        assert rc != 0
        assert "/nonexistent/mcp-backend" in stderr or "mcp-backend" in stderr, stderr


# --------------------------------------------------------------------------- client goes away


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")  # a zombie has exited
    except FileNotFoundError:
        return True


async def test_client_closes_stdin_interpose_exits_0_and_backend_sees_eof(proxy_bin, tmp_path):
    pidfile, exitfile = tmp_path / "pid", tmp_path / "exit"
    backend = (*BACKENDS["full"], "--pidfile", str(pidfile), "--exitfile", str(exitfile))
    async with RawClient(interpose(proxy_bin, *backend)) as c:
        await c.initialize()
        await echo_ok(c)
        backend_pid = int(pidfile.read_text())
        closed_at = time.monotonic()
        rc = await c.close(timeout=5)
        elapsed = time.monotonic() - closed_at
        assert rc == 0, c.stderr_text()
        assert elapsed < 3.0, f"interpose took {elapsed:.2f}s to exit after stdin closed"
        for _ in range(100):
            if _gone(backend_pid):
                break
            await asyncio.sleep(0.02)
        assert _gone(backend_pid), "the backend is still running after interpose exited"
        assert exitfile.exists(), "the backend did not end through EOF on its stdin (killed?)"


async def test_client_closes_stdin_with_request_in_flight(proxy_bin):
    """Closing stdin while a call is still running still ends interpose promptly, with status 0."""
    async with RawClient(interpose(proxy_bin)) as c:
        await c.initialize()
        c.expect(5)
        await c.send(
            {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "t", "delay_ms": 300}}}
        )
        rc = await c.close(timeout=5)
        assert rc == 0, c.stderr_text()


async def test_stdout_is_only_jsonrpc(proxy_bin):
    """Logs go to stderr: every stdout line of a whole session parses as a JSON-RPC message."""
    async with RawClient(interpose(proxy_bin, args=("-v",))) as c:
        await c.initialize()
        await c.request("tools/list")
        await c.request("tools/call", {"name": "progress", "arguments": {"steps": 2}, "_meta": {"progressToken": 1}})
        await c.close(timeout=5)
        assert c.received and all(m.obj is not None and m.obj.get("jsonrpc") == "2.0" for m in c.received)
        assert c.stderr_text().strip(), "expected some logging on stderr with -v"


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs /proc")
async def test_no_leaked_backend_after_crash(proxy_bin, tmp_path):
    pidfile = tmp_path / "pid"
    async with RawClient(interpose(proxy_bin, *BACKENDS["full"], "--pidfile", str(pidfile))) as c:
        await c.initialize()
        pid = int(pidfile.read_text())
        c.expect(1)
        await c.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "crash", "arguments": {}}})
        for _ in range(100):
            if _gone(pid):
                break
            await asyncio.sleep(0.02)
        assert _gone(pid), "the crashed backend was not reaped"
