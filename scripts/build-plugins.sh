#!/usr/bin/env bash
# Builds the bundled plugins and the test fixture plugins as WebAssembly
# components (wasm32-wasip2, release) and prints where they are.
#
#   scripts/build-plugins.sh            # every plugin and fixture
#   scripts/build-plugins.sh redact     # only these packages
#
# Output: target/wasm/wasm32-wasip2/release/<crate_name>.wasm (dashes in the
# package name become underscores, e.g. fixture_pass.wasm). A separate target
# directory keeps these builds from fighting the host's build over the lock.
#
# A cdylib built for wasm32-wasip2 is linked by the target's default linker,
# wasm-component-ld, which turns the core module into a component using the
# WIT type information that wit-bindgen embeds (via the interpose-plugin SDK).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target=wasm32-wasip2
target_dir="$root/target/wasm"

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "installing the $target target" >&2
    rustup target add "$target"
fi

if [ "$#" -gt 0 ]; then
    packages=("$@")
else
    packages=()
    for manifest in plugins/*/Cargo.toml tests/plugins/*/Cargo.toml; do
        [ -f "$manifest" ] || continue
        # Libraries that plugins share (fixture-tool-call) are not plugins.
        grep -q cdylib "$manifest" || continue
        packages+=("$(sed -n 's/^name = "\(.*\)"$/\1/p' "$manifest" | head -n 1)")
    done
fi

args=()
for package in "${packages[@]}"; do
    args+=(-p "$package")
done

# Plugins are small and hot: optimize for speed, one codegen unit, LTO, no
# debug info (the workspace's release profile keeps line tables for the host).
CARGO_PROFILE_RELEASE_OPT_LEVEL=3 \
CARGO_PROFILE_RELEASE_LTO=true \
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
CARGO_PROFILE_RELEASE_DEBUG=false \
CARGO_PROFILE_RELEASE_STRIP=true \
    cargo build --release --target "$target" --target-dir "$target_dir" "${args[@]}"

for package in "${packages[@]}"; do
    wasm="$target_dir/$target/release/${package//-/_}.wasm"
    if [ ! -f "$wasm" ]; then
        echo "missing: $wasm" >&2
        exit 1
    fi
    printf '%s\t%s\t%s bytes\n' "$package" "$wasm" "$(wc -c <"$wasm" | tr -d ' ')"
done
