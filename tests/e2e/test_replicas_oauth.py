"""Two interpose replicas with `[auth]` and `[replicas]` (docs/deploy.md) in front of
one HTTP backend, tokens from a real identity provider (oidc-provider, see
test_oauth.py): a session opened on one replica continues on the other for the party
that opened it, and only for it; its sealed id is bound to the principal's issuer and
subject, and each request's token is still validated.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_oauth import (  # noqa: E402
    DEADLINE,
    FULL_HTTP_SERVER,
    OTHER_CLIENT,
    Idp,
    Proxy,
    auth_table,
    call_echo,
    free_port,
    open_session,
)

pytestmark = [pytest.mark.proxy_only]

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[Idp]:
    server = Idp(tmp_path / "keys.json")
    yield server
    server.stop()


@pytest.fixture
def backend_url() -> Iterator[str]:
    port = free_port()
    backend = subprocess.Popen(
        [sys.executable, str(FULL_HTTP_SERVER), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert backend.stdout is not None and backend.stdout.readline().startswith("READY")
    yield f"http://127.0.0.1:{port}/mcp"
    backend.terminate()
    backend.wait(timeout=DEADLINE)


def test_a_session_continues_on_another_replica_only_for_its_party(
    proxy_bin: Path, tmp_path: Path, idp: Idp, backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERPOSE_SESSION_KEY", KEY)
    port_a, port_b = free_port(), free_port()
    # One public resource for both: what the load balancer's address would be.
    auth = auth_table(idp.issuer, f"http://127.0.0.1:{port_a}/mcp")
    replicas = '[replicas]\nkey_env = "INTERPOSE_SESSION_KEY"\nname = "{}"\n'
    a = Proxy(proxy_bin, tmp_path, auth + replicas.format("a"), [backend_url], port_a, name="a")
    b = Proxy(proxy_bin, tmp_path, auth + replicas.format("b"), [backend_url], port_b, name="b")
    try:
        token = idp.token(a.resource)
        session = open_session(a.url, token)
        assert session.startswith("v1."), session

        # Another party holding the id gets "not found" on the replica that never saw
        # the session, as on the one that opened it.
        other = idp.token(a.resource, client=OTHER_CLIENT)
        for replica in (b, a):
            status, _, messages = call_echo(replica.url, other, session, "not mine")
            assert status == 404, messages
            assert "session not found" in messages[0]["error"]["message"], messages
        deadline = time.monotonic() + DEADLINE
        while "opened by another party" not in b.log():
            assert time.monotonic() < deadline, b.log()
            time.sleep(0.1)

        # Its own party continues it on B, then on A again, each call answered once.
        for id_, replica in enumerate((b, a, b), start=10):
            status, _, messages = call_echo(replica.url, token, session, f"call {id_}", id_)
            assert status == 200, messages
            answers = [m for m in messages if m.get("id") == id_]
            assert len(answers) == 1, messages
            assert answers[0]["result"]["content"][0]["text"] == f"call {id_}"

        # A token is still needed on every request, wherever it lands.
        status, _, messages = call_echo(b.url, "", session, "no token")
        assert status == 401, messages
    finally:
        a.stop()
        b.stop()
