"""The MCP Inspector CLI as a real client: over stdio, Streamable HTTP and legacy SSE,
through interpose, it gets the same answers as from the backend directly."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import BACKENDS, TESTS_DIR  # noqa: E402

pytestmark = pytest.mark.proxy_only

INSPECTOR = TESTS_DIR / "node_modules" / "@modelcontextprotocol" / "inspector-cli" / "build" / "index.js"


def inspector(*args: str) -> dict:
    if not INSPECTOR.is_file():
        pytest.fail(f"{INSPECTOR} is missing: run scripts/setup-tests.sh", pytrace=False)
    done = subprocess.run(["node", str(INSPECTOR), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"inspector failed ({done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_proxy(proxy_bin: Path):
    """interpose serving the full test server over HTTP; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [str(proxy_bin), "run", "--listen", f"http://127.0.0.1:{port}", "--", *BACKENDS["full"]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, "interpose exited before listening"
            assert time.monotonic() < deadline, "interpose did not start listening"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def test_inspector_over_stdio_sees_what_the_backend_offers(proxy_bin: Path) -> None:
    direct = inspector(*BACKENDS["full"], "--method", "tools/list")
    # The Inspector takes its own options from anywhere but stops at `--`, so the
    # backend command follows `run` without one (interpose accepts both forms).
    proxied = inspector(str(proxy_bin), "run", *BACKENDS["full"], "--method", "tools/list")
    assert proxied == direct
    assert any(tool["name"] == "echo" for tool in proxied["tools"])


@pytest.mark.parametrize(("path", "transport"), [("/mcp", "http"), ("/sse", "sse")])
def test_inspector_over_http_and_sse(http_proxy: str, path: str, transport: str) -> None:
    url = http_proxy + path
    direct = inspector(*BACKENDS["full"], "--method", "tools/list")
    assert inspector(url, "--transport", transport, "--method", "tools/list") == direct
    called = inspector(
        url, "--transport", transport, "--method", "tools/call", "--tool-name", "echo", "--tool-arg", "text=hi inspector"
    )
    assert called["content"][0]["text"] == "hi inspector"
    resources = inspector(url, "--transport", transport, "--method", "resources/list")
    assert resources == inspector(*BACKENDS["full"], "--method", "resources/list")
