#!/usr/bin/env bash
# Builds a JavaScript plugin into a WebAssembly component for interpose.
#
#   scripts/build-js-plugin.sh PLUGIN_DIR [OUT.wasm]
#   scripts/build-js-plugin.sh --force PLUGIN_DIR [OUT.wasm]   # rebuild even if up to date
#
# PLUGIN_DIR holds an ES module that `export default`s a plugin made with the
# JavaScript SDK (sdk/js): package.json "main", else src/plugin.js, plugin.js,
# src/index.js or index.js. OUT defaults to target/wasm/js/<dir name>.wasm.
#
# On first use it installs the pinned toolchain (sdk/js/toolchain: componentize-js,
# jco, esbuild) into .cache/toolchains/js with `npm ci`; nothing is installed
# globally. Then it bundles the plugin with the SDK into one module and
# componentizes it against wit/ (world interceptor-plugin), with the `http` and
# `fetch-event` features off so the component does not import wasi:http.
# Prints "<name>\t<path>\t<bytes> bytes" on stdout, like build-plugins.sh.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

force=()
if [ "${1:-}" = "--force" ]; then
    force=(--force)
    shift
fi
if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
    echo "usage: scripts/build-js-plugin.sh [--force] PLUGIN_DIR [OUT.wasm]" >&2
    exit 2
fi
plugin_dir="$1"
if [ ! -d "$plugin_dir" ]; then
    echo "build-js-plugin: $plugin_dir is not a directory" >&2
    exit 1
fi
name="$(basename "$(cd "$plugin_dir" && pwd)")"
out="${2:-$root/target/wasm/js/$name.wasm}"

command -v node >/dev/null || { echo "build-js-plugin: node is not installed (Node 20+ needed)" >&2; exit 1; }
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    echo "build-js-plugin: Node 20+ needed, found $(node --version)" >&2
    exit 1
fi

# The toolchain, installed once per lockfile into the project-local cache.
toolchain="$root/.cache/toolchains/js"
want="$(cat "$root/sdk/js/toolchain/package.json" "$root/sdk/js/toolchain/package-lock.json" | sha256sum | cut -d' ' -f1)"
stamp="$toolchain/.installed-sha256"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "build-js-plugin: installing the JavaScript plugin toolchain (componentize-js, jco, esbuild; ~400 MB) into .cache/toolchains/js, once..." >&2
    mkdir -p "$toolchain"
    cp "$root/sdk/js/toolchain/package.json" "$root/sdk/js/toolchain/package-lock.json" "$toolchain/"
    log="$(mktemp)"
    # No install scripts: none of these tools need one (esbuild finds its
    # binary in its platform package).
    if ! npm ci --prefix "$toolchain" --ignore-scripts --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
        echo "build-js-plugin: npm ci failed:" >&2
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
    echo "$want" >"$stamp"
    echo "build-js-plugin: toolchain installed" >&2
fi

node "$root/sdk/js/build/build.mjs" "${force[@]}" --toolchain "$toolchain" --wit "$root/wit" "$plugin_dir" "$out"
printf '%s\t%s\t%s bytes\n' "$name" "$out" "$(wc -c <"$out" | tr -d ' ')"
