#!/usr/bin/env bash
# Builds a JavaScript plugin into a WebAssembly component: `interpose plugin
# build` with this checkout's SDK and wit/.
#
#   scripts/build-js-plugin.sh PLUGIN_DIR [OUT.wasm]
#   scripts/build-js-plugin.sh --force PLUGIN_DIR [OUT.wasm]   # rebuild even if up to date
#
# PLUGIN_DIR holds an ES module that `export default`s a plugin made with the
# JavaScript SDK (sdk/js): package.json "main", else src/plugin.js, plugin.js,
# src/index.js or index.js. OUT defaults to target/wasm/js/<dir name>.wasm.
#
# On first use the pinned toolchain (sdk/js/toolchain: componentize-js, jco,
# esbuild) is installed into .cache/toolchains/js with `npm ci`
# (INTERPOSE_TOOLS_DIR overrides .cache); nothing is installed globally. The
# interpose binary is $INTERPOSE_BIN, else this checkout's debug build (built if
# needed).
set -euo pipefail

force=()
if [ "${1:-}" = "--force" ]; then
    force=(--force)
    shift
fi
if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
    echo "usage: scripts/build-js-plugin.sh [--force] PLUGIN_DIR [OUT.wasm]" >&2
    exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
plugin_dir="$(cd "$1" 2>/dev/null && pwd)" || { echo "build-js-plugin: $1 is not a directory" >&2; exit 1; }
out="${2:-$root/target/wasm/js/$(basename "$plugin_dir").wasm}"

source "$root/scripts/interpose-bin.sh"
exec "$interpose" plugin build --lang js "${force[@]}" "$plugin_dir" -o "$out"
