#!/usr/bin/env bash
# Runs the interpose demo on a fresh machine: builds what it needs, then runs a scripted
# MCP session against the built-in backend through the proxy. Extra arguments go to
# `interpose demo` (e.g. `--serve`).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
if [ -x scripts/build-plugins.sh ]; then
    scripts/build-plugins.sh >&2
fi
cargo build --release -p interpose --quiet
exec target/release/interpose demo "$@"
