"""Fixtures for the interpose end-to-end tests.

Every behaviour is run three times: `direct` (the test talks to the backend
itself), `proxy` (the test talks to `interpose run -- BACKEND...`) and
`proxy-plugin` (the same with a pass-all Wasm plugin on every message, which must
change nothing). A proxy-mode
test also needs what the backend said directly; the `observe` fixture keeps
each direct observation (from the direct run of the same test, or by running
the scenario directly on the spot) and asserts that the proxy observation is
the same.

The interpose binary comes from $INTERPOSE_BIN, defaulting to
<repo>/target/debug/interpose. The suite never builds it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rawclient import Msg  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent.parent
REPO = TESTS_DIR.parent
FULL_SERVER = TESTS_DIR / "servers" / "full_server.py"
EVERYTHING_ENTRY = TESTS_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
INTERPOSE_BIN = Path(os.environ.get("INTERPOSE_BIN") or REPO / "target" / "debug" / "interpose")

BACKENDS: dict[str, list[str]] = {
    "full": [sys.executable, str(FULL_SERVER)],
    "everything": ["node", str(EVERYTHING_ENTRY), "stdio"],
}

MODES = ["direct", "proxy", "proxy-plugin"]

# Built by scripts/build-plugins.sh (scripts/test.sh runs it before this suite).
PASS_PLUGIN = REPO / "target" / "wasm" / "wasm32-wasip2" / "release" / "fixture_pass.wasm"


def interpose_bin() -> Path:
    if not (INTERPOSE_BIN.is_file() and os.access(INTERPOSE_BIN, os.X_OK)):
        pytest.fail(
            f"interpose binary not found at {INTERPOSE_BIN} (set INTERPOSE_BIN, or build it first; "
            "the e2e suite does not build it). Run `-k direct` to test only the backends.",
            pytrace=False,
        )
    return INTERPOSE_BIN


def command(mode: str, backend: str = "full", *, proxy_args: list[str] | None = None) -> list[str]:
    """The argv a client launches: the backend itself, or interpose in front of it."""
    argv = list(BACKENDS[backend])
    if backend == "everything" and not EVERYTHING_ENTRY.is_file():
        pytest.fail(f"{EVERYTHING_ENTRY} is missing: run scripts/setup-tests.sh", pytrace=False)
    if mode == "direct":
        return argv
    if mode == "proxy":
        return [str(interpose_bin()), "run", *(proxy_args or []), "--", *argv]
    if mode == "proxy-plugin":
        if not PASS_PLUGIN.is_file():
            pytest.fail(f"{PASS_PLUGIN} is missing: run scripts/build-plugins.sh", pytrace=False)
        plugin_args = ["--plugin", str(PASS_PLUGIN)]
        return [str(interpose_bin()), "run", *plugin_args, *(proxy_args or []), "--", *argv]
    raise ValueError(mode)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def proxy_bin() -> Path:
    """For proxy-only tests: the interpose binary (fails clearly when missing)."""
    return interpose_bin()


# --------------------------------------------------------------------------- comparison

_DIRECT: dict[Any, Any] = {}


def comparable(value: Any) -> Any:
    """Turn an observation into plain data; raw messages become their byte-level comparable form."""
    if isinstance(value, Msg):
        return value.comparable()
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [comparable(v) for v in value]
    return value


def _short(value: Any, limit: int = 1500) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def differences(direct: Any, proxy: Any, path: str = "") -> list[str]:
    """Human-readable list of where two comparable observations differ."""
    if isinstance(direct, dict) and isinstance(proxy, dict):
        out: list[str] = []
        for key in list(direct) + [k for k in proxy if k not in direct]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in proxy:
                out.append(f"{sub}: missing through the proxy (direct: {_short(direct[key])})")
            elif key not in direct:
                out.append(f"{sub}: only through the proxy: {_short(proxy[key])}")
            else:
                out.extend(differences(direct[key], proxy[key], sub))
        return out
    if isinstance(direct, list) and isinstance(proxy, list):
        out = []
        for i in range(max(len(direct), len(proxy))):
            sub = f"{path}[{i}]"
            if i >= len(proxy):
                out.append(f"{sub}: missing through the proxy (direct: {_short(direct[i])})")
            elif i >= len(direct):
                out.append(f"{sub}: only through the proxy: {_short(proxy[i])}")
            else:
                out.extend(differences(direct[i], proxy[i], sub))
        return out
    if direct != proxy:
        return [f"{path}:\n    direct: {_short(direct)}\n    proxy:  {_short(proxy)}"]
    return []


def assert_same(direct: Any, proxy: Any, what: str = "observation") -> None:
    diffs = differences(comparable(direct), comparable(proxy))
    if diffs:
        pytest.fail(f"{what} differs between direct and proxy:\n  " + "\n  ".join(diffs), pytrace=False)


Scenario = Callable[[list[str]], Awaitable[Any]]


@pytest.fixture
def observe(request: pytest.FixtureRequest, mode: str) -> Callable[..., Awaitable[Any]]:
    """Run a scenario in this test's mode; in proxy mode, also compare it with the direct run.

    `await observe(scenario, backend="full")` calls `scenario(argv)` with the
    command to launch and returns its observation. The observation is any
    JSON-like structure, possibly containing rawclient.Msg objects (compared
    on their payload bytes). The test then asserts on the observation itself.
    """
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    base_key = (request.node.module.__name__, request.node.originalname) + tuple(
        sorted((k, repr(v)) for k, v in params.items() if k != "mode")
    )

    async def _observe(scenario: Scenario, backend: str = "full", key: str = "") -> Any:
        cache_key = base_key + (backend, key)
        result = await scenario(command(mode, backend))
        if mode == "direct":
            _DIRECT[cache_key] = result
        else:
            if cache_key not in _DIRECT:
                _DIRECT[cache_key] = await scenario(command("direct", backend))
            assert_same(_DIRECT[cache_key], result)
        return result

    return _observe
