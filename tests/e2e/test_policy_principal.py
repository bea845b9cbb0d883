"""`tool-policy` deciding by who the client is: the real binary with `[auth]`, a real
identity provider (oidc-provider, tests/idp/idp.mjs), and the plugin in each of its
three languages. Two IdP clients, two parties: `interpose-test` gets the scopes
`mcp:tools mcp:admin`, `interpose-other` only `mcp:tools`. The same `tools/call` is
answered for one and refused for the other, by scope (`add`) and by subject (`echo`),
and each sees in `tools/list` only the tools it may call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FULL_SERVER, REPO  # noqa: E402
from test_oauth import CLIENT, OTHER_CLIENT, Idp, Proxy, auth_table, free_port, open_session, post  # noqa: E402

pytestmark = [pytest.mark.proxy_only]

WASM = REPO / "target" / "wasm"
PLUGINS = {
    "rust": WASM / "wasm32-wasip2" / "release" / "tool_policy.wasm",
    "python": WASM / "python" / "tool-policy-py.wasm",
    "javascript": WASM / "js" / "tool-policy-js.wasm",
}
# The same configuration for every language.
POLICY = """
[[plugins]]
path = "{path}"
config = {{ require = [
    {{ tools = ["add"], scopes = ["mcp:admin"] }},
    {{ tools = ["echo"], subjects = ["interpose-test"] }},
] }}
"""
DENIED = -32001


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[Idp]:
    server = Idp(tmp_path / "keys.json")
    yield server
    server.stop()


@pytest.fixture(params=list(PLUGINS))
def proxy(request: pytest.FixtureRequest, proxy_bin: Path, tmp_path: Path, idp: Idp) -> Iterator[Proxy]:
    plugin = PLUGINS[request.param]
    if not plugin.is_file():
        pytest.skip(f"{plugin} is not built (scripts/build-plugins.sh, build-python-plugin.sh, build-js-plugin.sh)")
    port = free_port()
    config = auth_table(idp.issuer, f"http://127.0.0.1:{port}/mcp") + POLICY.format(path=plugin)
    # Loads the plugin once first, with time to spare: the first load of a Python or
    # JavaScript component compiles it (cached after), slow on a loaded machine.
    (tmp_path / "check.toml").write_text(config)
    check = subprocess.run([str(proxy_bin), "check", "--config", str(tmp_path / "check.toml")], capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stderr
    server = Proxy(proxy_bin, tmp_path, config, [sys.executable, str(FULL_SERVER)], port)
    yield server
    server.stop()


class Party:
    """One client of the IdP, with a session of its own on the proxy."""

    def __init__(self, proxy: Proxy, idp: Idp, client: tuple[str, str], scope: str):
        self.url = proxy.url
        self.token = idp.token(proxy.resource, scope=scope, client=client)
        self.session = open_session(proxy.url, self.token)
        self.next_id = 10

    def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Sends one request; returns its one answer."""
        self.next_id += 1
        request = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        status, _, messages = post(self.url, request, self.token, self.session)
        assert status == 200, (status, messages)
        answers = [m for m in messages if m.get("id") == self.next_id]
        assert len(answers) == 1, messages
        return answers[0]


def test_the_same_call_is_answered_for_one_party_and_refused_for_the_other(proxy: Proxy, idp: Idp) -> None:
    admin = Party(proxy, idp, CLIENT, "mcp:tools mcp:admin")
    other = Party(proxy, idp, OTHER_CLIENT, "mcp:tools")

    add = {"name": "add", "arguments": {"a": 2, "b": 3}}
    answer = admin.ask("tools/call", add)
    assert answer["result"]["structuredContent"]["sum"] == 5, answer
    refused = other.ask("tools/call", add)["error"]
    assert refused["code"] == DENIED
    assert refused["message"] == "tool `add` is denied by tool-policy: it requires scope `mcp:admin`"
    # What was required, and nothing of the token's claims.
    assert refused["data"] == {"plugin": "tool-policy", "required": {"scopes": ["mcp:admin"]}, "tool": "add"}

    echo = {"name": "echo", "arguments": {"text": "mine"}}
    assert admin.ask("tools/call", echo)["result"]["content"][0]["text"] == "mine"
    refused = other.ask("tools/call", echo)["error"]
    assert refused["code"] == DENIED
    assert refused["message"] == "tool `echo` is denied by tool-policy: it is reserved for subject `interpose-test`"
    assert "interpose-other" not in json.dumps(refused), "the caller's own claims are not echoed"


def ask_sessionless(proxy: Proxy, token: str, request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A 2026-07-28 `tools/call` with no session: its envelope in `_meta`, its
    protocol headers, and the caller's token. Returns its one answer."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "sessionless", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    request = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name, "arguments": arguments, "_meta": meta}}
    headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": name}
    status, _, messages = post(proxy.url, request, token, headers=headers)
    answers = [m for m in messages if m.get("id") == request_id]
    assert status == 200 and len(answers) == 1, (status, messages)
    return answers[0]


def test_sessionless_requests_are_judged_by_their_own_sender(proxy: Proxy, idp: Idp) -> None:
    """2026-07-28 clients without a session share one backend session: each request
    is still judged by its own token's principal, interleaved."""
    admin = idp.token(proxy.resource, scope="mcp:tools mcp:admin", client=CLIENT)
    other = idp.token(proxy.resource, scope="mcp:tools", client=OTHER_CLIENT)
    add = {"a": 2, "b": 3}
    for round_ in range(2):
        answer = ask_sessionless(proxy, admin, 100 + round_, "add", add)
        assert answer["result"]["structuredContent"]["sum"] == 5, answer
        refused = ask_sessionless(proxy, other, 200 + round_, "add", add)["error"]
        assert refused["code"] == DENIED
        assert refused["message"] == "tool `add` is denied by tool-policy: it requires scope `mcp:admin`"
        refused = ask_sessionless(proxy, other, 300 + round_, "echo", {"text": "x"})["error"]
        assert refused["message"] == "tool `echo` is denied by tool-policy: it is reserved for subject `interpose-test`"


def test_each_party_lists_only_the_tools_it_may_call(proxy: Proxy, idp: Idp) -> None:
    admin = Party(proxy, idp, CLIENT, "mcp:tools mcp:admin")
    other = Party(proxy, idp, OTHER_CLIENT, "mcp:tools")
    admins = {tool["name"] for tool in admin.ask("tools/list", {})["result"]["tools"]}
    others = {tool["name"] for tool in other.ask("tools/list", {})["result"]["tools"]}
    assert {"add", "echo"} <= admins, admins
    assert not {"add", "echo"} & others, others
    assert admins - others == {"add", "echo"}, "every other tool is listed for both"


def test_the_policies_per_user_example_runs(proxy_bin: Path) -> None:
    """examples/policy-per-user/run.sh, as a user runs it (docs/auth.md)."""
    if not PLUGINS["rust"].is_file():
        pytest.skip(f"{PLUGINS['rust']} is not built (scripts/build-plugins.sh tool-policy)")
    env = {**os.environ, "INTERPOSE_BIN": str(proxy_bin), "IDP_PORT": str(free_port()), "PORT": str(free_port()), "PYTHON": sys.executable}
    run = subprocess.run([str(REPO / "examples" / "policy-per-user" / "run.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "interpose-test (mcp:tools mcp:admin) lists: echo, add",
        'interpose-test calls add: ok: "{\\"operands\\": [2, 3], \\"sum\\": 5}"',
        'interpose-test calls echo: ok: "hello"',
        "interpose-other (mcp:tools) lists: neither add nor echo",
        "interpose-other calls add: refused: tool `add` is denied by tool-policy: it requires scope `mcp:admin`",
        "interpose-other calls echo: refused: tool `echo` is denied by tool-policy: it is reserved for subject `interpose-test`",
    ], run.stdout
