#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (the wasm target,
# a Python venv with the MCP SDKs, npm packages), builds, then runs the Rust tests and
# the end-to-end suite against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "rust target wasm32-wasip2"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2

step "test dependencies (Python venv, npm packages)"
scripts/setup-tests.sh

if [ -x scripts/build-plugins.sh ]; then
    step "plugins (wasm32-wasip2)"
    scripts/build-plugins.sh
fi

step "build"
cargo build --workspace --all-targets

step "Rust tests"
cargo test --workspace

step "end-to-end tests (pytest)"
export INTERPOSE_BIN="$PWD/target/debug/interpose"
.venv/bin/python -m pytest tests/e2e -q -p no:cacheprovider

step "the Python wheel (tests/wheel: scripts/build-wheel.sh, pip install into a fresh venv, demo, a plugin, uvx)"
.venv/bin/python -m pytest tests/wheel -q -p no:cacheprovider

step "Python plugin SDK and plugins (pytest; builds the scaffold template into a component)"
.venv/bin/python -m pytest -q -p no:cacheprovider sdk/python/tests plugins/*-py/tests

step "JavaScript plugin SDK and plugins (node --test)"
scripts/test-js.sh

# Every scenario that passes directly must pass through interpose, without new warnings.
if [ "${INTERPOSE_CONFORMANCE:-1}" = 1 ]; then
    step "MCP conformance suite, directly and through interpose (scripts/conformance.sh)"
    CONFORMANCE_STRICT=1 scripts/conformance.sh
fi
