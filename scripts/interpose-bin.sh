# Sourced by the plugin build scripts: sets $interpose to the binary to run, and
# points `interpose plugin build` at this checkout's SDK and a toolchain cache in
# .cache/. Expects $root, the checkout.

export INTERPOSE_SDK_DIR="${INTERPOSE_SDK_DIR:-$root}"
export INTERPOSE_TOOLS_DIR="${INTERPOSE_TOOLS_DIR:-$root/.cache}"
if [ -n "${INTERPOSE_BIN:-}" ]; then
    interpose="$INTERPOSE_BIN"
else
    cargo build --quiet -p interpose --bin interpose --manifest-path "$root/Cargo.toml" >&2
    interpose="${CARGO_TARGET_DIR:-$root/target}/debug/interpose"
fi
