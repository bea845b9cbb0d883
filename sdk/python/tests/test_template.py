"""The scaffold `interpose plugin new NAME --lang python` copies: its own tests
pass in a copy, and it builds into a WebAssembly component."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

SDK = Path(__file__).resolve().parents[1]
ROOT = SDK.parents[1]
TEMPLATE = SDK / "template"


def copy_template(tmp_path):
    plugin = tmp_path / "my-plugin"
    shutil.copytree(TEMPLATE, plugin, ignore=shutil.ignore_patterns("__pycache__"))
    return plugin


def test_template_tests_pass_in_a_copy(tmp_path):
    plugin = copy_template(tmp_path)
    env = dict(os.environ, INTERPOSE_PY_SDK=str(SDK))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(plugin / "tests")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout


def test_template_builds_into_a_component(tmp_path):
    plugin = copy_template(tmp_path)
    out = tmp_path / "my-plugin.wasm"
    run = subprocess.run(
        [str(ROOT / "scripts" / "build-python-plugin.sh"), str(plugin), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    header = out.read_bytes()[:8]
    # Magic, then the component-model layer (0x0d, 0x00) and layer 1.
    assert header == b"\x00asm\x0d\x00\x01\x00", header
