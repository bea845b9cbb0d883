"""interpose as an OAuth 2.1 resource server (`[auth]`), against a real identity
provider: oidc-provider from npm (tests/idp/idp.mjs), issuing JWT access tokens for
the `client_credentials` grant with resource indicators. Nothing here signs a token:
every token comes from an IdP process, some from IdPs that play a forger (another
issuer with the right key, the right issuer with another key).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FULL_SERVER, TESTS_DIR  # noqa: E402

pytestmark = [pytest.mark.proxy_only]

IDP = TESTS_DIR / "idp" / "idp.mjs"
FULL_HTTP_SERVER = TESTS_DIR / "servers" / "full_http_server.py"
CLIENT = ("interpose-test", "interpose-secret")
OTHER_CLIENT = ("interpose-other", "other-secret")
REQUIRED = ["mcp:tools"]
DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Idp:
    """One oidc-provider process."""

    def __init__(self, keys: Path, *, port: int = 0, issuer: str | None = None, ttl: int = 300):
        argv = ["node", str(IDP), "--port", str(port), "--keys", str(keys), "--ttl", str(ttl)]
        if issuer:
            argv += ["--issuer", issuer]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("READY"), f"the IdP did not start: {line!r}"
        _, port_text, self.issuer = line.split()
        self.port = int(port_text)

    def token(self, resource: str, scope: str = "mcp:tools mcp:read", client: tuple[str, str] = CLIENT) -> str:
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": scope, "resource": resource})
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/token", data=body.encode())
        basic = base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {basic}")
        with urllib.request.urlopen(request, timeout=DEADLINE) as response:
            return json.load(response)["access_token"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=DEADLINE)


class Proxy:
    """`interpose run --listen http://127.0.0.1:PORT --config FILE -- BACKEND`."""

    def __init__(self, proxy_bin: Path, tmp: Path, auth: str, backend: list[str], port: int | None = None, name: str = "interpose"):
        self.port = port or free_port()
        config = tmp / f"{name}.toml"
        config.write_text(auth)
        self.stderr = tmp / f"{name}.stderr"
        argv = [str(proxy_bin), "run", "--listen", f"http://127.0.0.1:{self.port}", "--config", str(config)]
        if backend:
            argv += ["--", *backend]
        env = {**os.environ, "RUST_LOG": "info", "IDP_CLIENT_SECRET": CLIENT[1]}
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr.open("w"), env=env)
        deadline = time.monotonic() + DEADLINE
        while True:
            assert self.proc.poll() is None, self.log()
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "interpose did not start listening"
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def resource(self) -> str:
        return f"{self.url}/mcp"

    def log(self) -> str:
        return self.stderr.read_text()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=DEADLINE)


def auth_table(issuer: str, resource: str, **extra: Any) -> str:
    lines = ["[auth]", f'issuer = "{issuer}"', f'resource = "{resource}"', f"scopes = {json.dumps(REQUIRED)}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def post(
    url: str, body: Any, token: str | None = None, session: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], list[Any]]:
    """POSTs one JSON-RPC message to /mcp, with `headers` besides the usual; returns
    the status, the headers and the JSON-RPC messages of the answer (a JSON body or
    the data of an SSE stream)."""
    request = urllib.request.Request(f"{url}/mcp", data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/json, text/event-stream")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if session:
        request.add_header("Mcp-Session-Id", session)
    try:
        response = urllib.request.urlopen(request, timeout=DEADLINE)
    except urllib.error.HTTPError as error:
        response = error
    with response:
        status, headers, text = response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
    if headers.get("content-type", "").startswith("text/event-stream"):
        messages = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]
    else:
        messages = [json.loads(text)] if text.strip() else []
    return status, headers, messages


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "oauth-test", "version": "1"}},
}


def open_session(url: str, token: str) -> str:
    status, headers, messages = post(url, INITIALIZE, token)
    assert status == 200, (status, messages)
    assert messages[0]["id"] == 1 and "result" in messages[0], messages
    session = headers["mcp-session-id"]
    status, _, _ = post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token, session)
    assert status == 202
    return session


def call_echo(url: str, token: str, session: str, text: str, id_: int = 2) -> tuple[int, dict[str, str], list[Any]]:
    call = {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}}
    return post(url, call, token, session)


def assert_refused(result: tuple[int, dict[str, str], list[Any]], status: int, error: str | None, proxy: Proxy) -> str:
    got_status, headers, messages = result
    assert got_status == status, (got_status, messages)
    challenge = headers["www-authenticate"]
    assert challenge.startswith("Bearer "), challenge
    assert f'resource_metadata="{proxy.url}/.well-known/oauth-protected-resource/mcp"' in challenge, challenge
    assert 'scope="mcp:tools"' in challenge, challenge
    if error:
        assert f'error="{error}"' in challenge, challenge
    else:
        assert "error=" not in challenge, challenge
    assert len(messages) == 1 and "error" in messages[0], messages
    return challenge


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[Idp]:
    server = Idp(tmp_path / "keys-a.json")
    yield server
    server.stop()


@pytest.fixture
def proxy(proxy_bin: Path, tmp_path: Path, idp: Idp) -> Iterator[Proxy]:
    port = free_port()
    auth = auth_table(idp.issuer, f"http://127.0.0.1:{port}/mcp", leeway_s=0, jwks_min_refresh_ms=200)
    server = Proxy(proxy_bin, tmp_path, auth, [sys.executable, str(FULL_SERVER)], port)
    yield server
    server.stop()


def test_metadata_document_is_served_at_both_well_known_paths(proxy: Proxy, idp: Idp) -> None:
    for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]:
        with urllib.request.urlopen(proxy.url + path, timeout=DEADLINE) as response:
            assert response.status == 200
            assert response.headers["content-type"].startswith("application/json")
            document = json.load(response)
        assert document == {
            "resource": proxy.resource,
            "authorization_servers": [idp.issuer],
            "scopes_supported": REQUIRED,
            "bearer_methods_supported": ["header"],
        }, document


def test_a_valid_token_calls_a_tool_end_to_end(proxy: Proxy, idp: Idp) -> None:
    token = idp.token(proxy.resource)
    session = open_session(proxy.url, token)
    status, _, messages = call_echo(proxy.url, token, session, "through oauth")
    assert status == 200
    answers = [m for m in messages if m.get("id") == 2]
    assert len(answers) == 1, messages
    assert answers[0]["result"]["content"][0]["text"] == "through oauth"
    assert "interpose-test" in proxy.log(), "the session's subject is logged"


def test_no_token_gets_401_with_where_to_get_one(proxy: Proxy) -> None:
    assert_refused(post(proxy.url, INITIALIZE), 401, None, proxy)
    # The legacy SSE endpoint and the metrics are behind the same check; probes are not.
    for path in ["/sse", "/metrics"]:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(proxy.url + path, timeout=DEADLINE)
        assert refused.value.code == 401, path
        assert refused.value.headers["www-authenticate"].startswith("Bearer resource_metadata="), path
    with urllib.request.urlopen(proxy.url + "/readyz", timeout=DEADLINE) as response:
        assert response.status == 200


def test_bad_tokens_are_refused_with_the_right_status_and_challenge(proxy: Proxy, idp: Idp, tmp_path: Path) -> None:
    # Another resource's token (RFC 8707 audience binding).
    challenge = assert_refused(post(proxy.url, INITIALIZE, idp.token("http://127.0.0.1:1/mcp")), 401, "invalid_token", proxy)
    assert "another resource" in challenge
    # Without a required scope: 403.
    weak = idp.token(proxy.resource, scope="mcp:read")
    challenge = assert_refused(post(proxy.url, INITIALIZE, weak), 403, "insufficient_scope", proxy)
    assert "mcp:tools" in challenge
    # Another issuer holding the same key: the signature verifies, `iss` does not.
    impostor = Idp(tmp_path / "keys-a.json", issuer="https://impostor.example")
    try:
        challenge = assert_refused(post(proxy.url, INITIALIZE, impostor.token(proxy.resource)), 401, "invalid_token", proxy)
        assert "another issuer" in challenge
    finally:
        impostor.stop()
    # The right issuer's name on a key it never published.
    forger = Idp(tmp_path / "keys-forger.json", issuer=idp.issuer)
    try:
        challenge = assert_refused(post(proxy.url, INITIALIZE, forger.token(proxy.resource)), 401, "invalid_token", proxy)
        assert "does not publish" in challenge
    finally:
        forger.stop()
    # Expired: the same issuer and key, tokens living one second (leeway_s = 0).
    short = Idp(tmp_path / "keys-a.json", issuer=idp.issuer, ttl=1)
    try:
        token = short.token(proxy.resource)
    finally:
        short.stop()
    time.sleep(2.5)
    challenge = assert_refused(post(proxy.url, INITIALIZE, token), 401, "invalid_token", proxy)
    assert "expired" in challenge
    # A token that is not a JWT at all.
    assert_refused(post(proxy.url, INITIALIZE, "opaque"), 401, "invalid_token", proxy)


def test_rotated_keys_are_picked_up(proxy: Proxy, idp: Idp, tmp_path: Path) -> None:
    session = open_session(proxy.url, idp.token(proxy.resource))
    port, issuer = idp.port, idp.issuer
    idp.stop()
    # The same issuer at the same address, with a new key only.
    rotated = Idp(tmp_path / "keys-rotated.json", port=port, issuer=issuer)
    try:
        token = rotated.token(proxy.resource)
        status, _, messages = call_echo(proxy.url, token, session, "new key")
        assert status == 200, messages
        assert [m["result"]["content"][0]["text"] for m in messages if m.get("id") == 2] == ["new key"]
    finally:
        rotated.stop()


def test_a_session_stays_with_the_party_that_opened_it(proxy: Proxy, idp: Idp) -> None:
    session = open_session(proxy.url, idp.token(proxy.resource))
    other = idp.token(proxy.resource, client=OTHER_CLIENT)
    status, _, messages = call_echo(proxy.url, other, session, "not mine")
    assert status == 404, messages
    assert "session not found" in messages[0]["error"]["message"]


def test_the_identity_provider_down_at_start_gives_503_then_recovers(proxy_bin: Path, tmp_path: Path) -> None:
    idp_port = free_port()
    port = free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    auth = auth_table(issuer, f"http://127.0.0.1:{port}/mcp", jwks_min_refresh_ms=200, fetch_timeout_ms=2000)
    proxy = Proxy(proxy_bin, tmp_path, auth, [sys.executable, str(FULL_SERVER)], port)
    try:
        idp = Idp(tmp_path / "keys.json", port=idp_port)
        try:
            token = idp.token(proxy.resource)
            idp.stop()
            time.sleep(0.3)
            status, headers, messages = post(proxy.url, INITIALIZE, token)
            assert status == 503, messages
            assert "identity provider" in messages[0]["error"]["message"]
            assert "cannot fetch the signing keys" in proxy.log()
            idp = Idp(tmp_path / "keys.json", port=idp_port)
            time.sleep(0.3)
            open_session(proxy.url, token)
        finally:
            idp.stop()
    finally:
        proxy.stop()


def test_the_client_token_never_reaches_an_http_backend(proxy_bin: Path, tmp_path: Path, idp: Idp) -> None:
    backend_port = free_port()
    record = tmp_path / "headers.jsonl"
    backend = subprocess.Popen(
        [sys.executable, str(FULL_HTTP_SERVER), "--port", str(backend_port), "--record-headers", str(record)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert backend.stdout is not None and backend.stdout.readline().startswith("READY")
        port = free_port()
        auth = auth_table(idp.issuer, f"http://127.0.0.1:{port}/mcp")
        proxy = Proxy(proxy_bin, tmp_path, auth, [f"http://127.0.0.1:{backend_port}/mcp"], port)
        try:
            token = idp.token(proxy.resource)
            session = open_session(proxy.url, token)
            status, _, messages = call_echo(proxy.url, token, session, "over http")
            assert status == 200 and any(m.get("id") == 2 and "result" in m for m in messages), messages
        finally:
            proxy.stop()
        seen = [json.loads(line) for line in record.read_text().splitlines()]
        assert any(line["method"] == "POST" for line in seen), seen
        assert all(line["authorization"] is None for line in seen), seen
    finally:
        backend.terminate()
        backend.wait(timeout=DEADLINE)


def front_config(idp: Idp, backend: Proxy, resource: str) -> str:
    """A proxy without [auth] whose one server is `backend`, reached with OAuth client
    credentials from `idp`, asking for a token for `resource`."""
    return (
        "[servers.protected]\n"
        f'url = "{backend.resource}"\n'
        f'oauth = {{ token_url = "http://127.0.0.1:{idp.port}/token", client_id = "{CLIENT[0]}", '
        f'client_secret_env = "IDP_CLIENT_SECRET", scopes = ["mcp:tools", "mcp:read"], resource = "{resource}" }}\n'
    )


def test_a_backend_is_reached_with_client_credentials_refreshed_before_expiry(proxy_bin: Path, tmp_path: Path) -> None:
    # Tokens live 2 s, the protected backend allows no leeway: the second call, 3 s
    # after the first, works only with a token fetched again.
    idp = Idp(tmp_path / "keys.json", ttl=2)
    try:
        port = free_port()
        auth = auth_table(idp.issuer, f"http://127.0.0.1:{port}/mcp", leeway_s=0)
        backend = Proxy(proxy_bin, tmp_path, auth, [sys.executable, str(FULL_SERVER)], port, name="backend")
        front = Proxy(proxy_bin, tmp_path, front_config(idp, backend, backend.resource), [], name="front")
        try:
            session = open_session(front.url, "")
            for n in range(2):
                status, _, messages = call_echo(front.url, "", session, f"call {n}", id_=10 + n)
                assert status == 200
                assert [m["result"]["content"][0]["text"] for m in messages if m.get("id") == 10 + n] == [f"call {n}"], messages
                time.sleep(3)
            assert "refused" not in backend.log(), backend.log()
        finally:
            front.stop()
            backend.stop()
    finally:
        idp.stop()


def test_a_backend_refusing_the_credentials_is_reported_with_its_challenge(proxy_bin: Path, tmp_path: Path, idp: Idp) -> None:
    port = free_port()
    backend = Proxy(proxy_bin, tmp_path, auth_table(idp.issuer, f"http://127.0.0.1:{port}/mcp"), [sys.executable, str(FULL_SERVER)], port, name="backend")
    # A token for another resource: the backend answers 401 invalid_token.
    front = Proxy(proxy_bin, tmp_path, front_config(idp, backend, "http://127.0.0.1:1/mcp"), [], name="front")
    try:
        status, _, messages = post(front.url, INITIALIZE)
        answers = [m for m in messages if m.get("id") == 1]
        assert len(answers) == 1 and "error" in answers[0], messages
        error = answers[0]["error"]
        assert "refused interpose's credentials (HTTP 401)" in error["message"], error
        assert backend.resource in error["message"], error
        assert error["data"]["httpStatus"] == 401
        assert 'error="invalid_token"' in error["data"]["wwwAuthenticate"], error
        assert "resource_metadata=" in error["data"]["wwwAuthenticate"], error
        assert "refused interpose's credentials" in front.log()
    finally:
        front.stop()
        backend.stop()


def test_a_url_backend_after_the_double_dash_takes_oauth_flags(proxy_bin: Path, tmp_path: Path, idp: Idp) -> None:
    port = free_port()
    backend = Proxy(proxy_bin, tmp_path, auth_table(idp.issuer, f"http://127.0.0.1:{port}/mcp"), [sys.executable, str(FULL_SERVER)], port, name="backend")
    flags = [
        "--oauth-token-url", f"http://127.0.0.1:{idp.port}/token",
        "--oauth-client-id", CLIENT[0],
        "--oauth-client-secret-env", "IDP_CLIENT_SECRET",
        "--oauth-scope", "mcp:tools",
        "--oauth-resource", backend.resource,
    ]
    env = {**os.environ, "IDP_CLIENT_SECRET": CLIENT[1]}
    argv = [str(proxy_bin), "run", *flags, "--", backend.resource]
    front = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        assert front.stdin is not None and front.stdout is not None

        def exchange(message: dict[str, Any]) -> dict[str, Any] | None:
            front.stdin.write(json.dumps(message) + "\n")
            front.stdin.flush()
            if "id" not in message:
                return None
            return json.loads(front.stdout.readline())

        answer = exchange(INITIALIZE)
        assert answer is not None and "result" in answer, answer
        exchange({"jsonrpc": "2.0", "method": "notifications/initialized"})
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "stdio to oauth"}}}
        answer = exchange(call)
        assert answer is not None and answer["id"] == 2, answer
        assert answer["result"]["content"][0]["text"] == "stdio to oauth"
    finally:
        front.stdin.close()
        front.wait(timeout=DEADLINE)
        backend.stop()
