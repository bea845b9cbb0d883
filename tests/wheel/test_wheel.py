"""The `interpose` Python wheel, installed as MCP users install servers.

Builds the wheel with scripts/build-wheel.sh (dev profile: it reuses target/debug,
which scripts/test.sh has built), installs it with pip into a fresh venv, and runs
the installed binary from outside the checkout: the demo through the plugins the
wheel carries, a shipped plugin in front of a real MCP server driven by the `mcp`
SDK client, and the demo again with `uvx --offline --from WHEEL` and from the link
`uv tool install` puts on PATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from sdk import open_session  # noqa: E402

FULL_SERVER = REPO / "tests" / "servers" / "full_server.py"
UV = REPO / ".cache" / "wheel-tools" / "bin" / "uv"  # installed by scripts/build-wheel.sh
SHIPPED_PLUGINS = [
    "audit_log.wasm",
    "moderation.wasm",
    "rate_limit.wasm",
    "redact.wasm",
    "response_cache.wasm",
    "tool_policy.wasm",
]


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # Not tmp_path_factory: it keeps the last runs, and each holds over 600 MB.
    with tempfile.TemporaryDirectory(prefix="interpose-wheel-") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def wheel(scratch: Path) -> Path:
    built = subprocess.run(
        [str(REPO / "scripts" / "build-wheel.sh"), "--out", str(scratch / "dist")],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, f"scripts/build-wheel.sh failed:\n{built.stderr}"
    return Path(built.stdout.strip())


@pytest.fixture(scope="module")
def venv(scratch: Path, wheel: Path) -> Path:
    env = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    # --no-index: the wheel has no dependencies, so nothing is fetched.
    installed = subprocess.run(
        [str(env / "bin" / "pip"), "install", "--no-index", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, f"pip install {wheel.name} failed:\n{installed.stderr}"
    return env


def clean_env(scratch: Path) -> dict[str, str]:
    """The environment of a user who has no checkout: no plugin directory override,
    and a compile cache of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERPOSE_")}
    env["XDG_CACHE_HOME"] = str(scratch / "cache")
    return env


def uv_env(scratch: Path) -> dict[str, str]:
    assert UV.is_file(), f"{UV} is missing: scripts/build-wheel.sh installs it"
    env = clean_env(scratch)
    # Directories of its own, so uv installs from the wheel rather than reusing anything.
    env["UV_CACHE_DIR"] = str(scratch / "uv-cache")
    env["UV_TOOL_DIR"] = str(scratch / "uv-tools")
    env["UV_TOOL_BIN_DIR"] = str(scratch / "uv-bin")
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


def run_demo(argv: list[str], scratch: Path, env: dict[str, str]) -> None:
    demo = subprocess.run(argv, cwd=scratch, env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, f"stdout:\n{demo.stdout}\nstderr:\n{demo.stderr}"
    # The chain ran: a secret redacted, a denied tool rejected, each plugin's verdict shown.
    assert "0 of 6 fake secrets visible" in demo.stdout, demo.stdout
    assert "rejected: tool `delete_everything` is denied by tool-policy" in demo.stdout, demo.stdout
    assert "[audit-log pass, tool-policy reject]" in demo.stdout, demo.stdout
    assert "[redact rewrite, audit-log pass]" in demo.stdout, demo.stdout


def test_the_wheel_holds_the_binary_and_the_shipped_plugins(wheel: Path) -> None:
    version = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    assert wheel.name.startswith(f"interpose-{version}-py3-none-"), wheel.name
    data = f"interpose-{version}.data"
    with zipfile.ZipFile(wheel) as archive:
        payload = sorted(n for n in archive.namelist() if not n.startswith(f"interpose-{version}.dist-info/"))
        metadata = archive.read(f"interpose-{version}.dist-info/METADATA").decode()
    assert payload == [
        *(f"{data}/data/share/interpose/plugins/{p}" for p in SHIPPED_PLUGINS),
        f"{data}/scripts/interpose",
    ]
    assert "Name: interpose\n" in metadata and f"Version: {version}\n" in metadata, metadata
    assert '"command": "uvx", "args": ["interpose", "run", "--"' in metadata, "the PyPI page shows the mcpServers entry"
    assert "Requires-Dist" not in metadata, "the wheel installs offline only without dependencies"


def test_the_installed_demo_runs_through_the_plugins_the_wheel_installed(venv: Path, scratch: Path) -> None:
    plugins = sorted(p.name for p in (venv / "share" / "interpose" / "plugins").iterdir())
    assert plugins == SHIPPED_PLUGINS
    run_demo([str(venv / "bin" / "interpose"), "demo"], scratch, clean_env(scratch))


def test_an_installed_plugin_redacts_a_real_servers_tool_result(venv: Path) -> None:
    redact = venv / "share" / "interpose" / "plugins" / "redact.wasm"
    argv = [str(venv / "bin" / "interpose"), "run", "--plugin", str(redact), "--", sys.executable, str(FULL_SERVER)]
    secret = "sk-" + "a1B2c3D4" * 4

    async def call_echo() -> str:
        async with open_session(argv, timeout=120, read_timeout_seconds=120) as (session, _recorder):
            result = await session.call_tool("echo", {"text": f"mail ada@example.com, key {secret}"})
        assert not result.is_error, result
        return result.content[0].text

    assert anyio.run(call_echo) == "mail [REDACTED:email], key [REDACTED:api-key]"


def test_uvx_runs_the_demo_from_the_wheel_offline(wheel: Path, scratch: Path) -> None:
    run_demo([str(UV), "tool", "run", "--offline", "--from", str(wheel), "interpose", "demo"], scratch, uv_env(scratch))


def test_uv_tool_install_links_a_binary_that_finds_its_plugins(wheel: Path, scratch: Path) -> None:
    env = uv_env(scratch)
    installed = subprocess.run(
        [str(UV), "tool", "install", "--offline", str(wheel)], env=env, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr
    on_path = scratch / "uv-bin" / "interpose"
    assert on_path.is_symlink(), "uv links the tool's binary into its bin directory"
    # docs/install.md tells users to find the plugins here.
    plugins = scratch / "uv-tools" / "interpose" / "share" / "interpose" / "plugins"
    assert sorted(p.name for p in plugins.iterdir()) == SHIPPED_PLUGINS
    run_demo([str(on_path), "demo"], scratch, env)
