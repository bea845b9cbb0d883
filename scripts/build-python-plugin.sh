#!/usr/bin/env bash
# Builds a Python plugin into a WebAssembly component: `interpose plugin build`
# with this checkout's SDK and wit/.
#
#   scripts/build-python-plugin.sh PLUGIN_DIR [OUT.wasm]
#
# PLUGIN_DIR holds `plugin.py` (a `Plugin` subclass, or module-level handlers)
# and any modules it imports. OUT.wasm defaults to
# target/wasm/python/<basename of PLUGIN_DIR>.wasm.
#
# componentize-py is installed on first use into .cache/toolchains/python
# (INTERPOSE_TOOLS_DIR overrides .cache). The interpose binary is
# $INTERPOSE_BIN, else this checkout's debug build (built if needed).
set -euo pipefail

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
    echo "usage: $0 PLUGIN_DIR [OUT.wasm]" >&2
    exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
plugin_dir="$(cd "$1" 2>/dev/null && pwd)" || { echo "error: no directory $1" >&2; exit 1; }
out="${2:-$root/target/wasm/python/$(basename "$plugin_dir").wasm}"

source "$root/scripts/interpose-bin.sh"
exec "$interpose" plugin build --lang python "$plugin_dir" -o "$out"
