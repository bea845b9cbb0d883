#!/usr/bin/env bash
# Builds the `interpose` Python wheel: the binary (maturin's `bin` bindings, as ruff and
# uv ship) and the shipped Rust plugins as data files (installed to
# <env>/share/interpose/plugins, where `interpose demo` finds them). Prints the wheel's
# path on stdout; everything else goes to stderr.
#
#   scripts/build-wheel.sh                  # dev profile: reuses target/debug (what the tests use)
#   scripts/build-wheel.sh --release        # release profile, stripped: the wheel to publish
#   scripts/build-wheel.sh --out DIR        # where to put it (default: target/wheels)
#
# Other arguments go to `maturin build`. The wheel is for this machine's platform (its
# glibc sets the manylinux tag); cross builds are out of scope. maturin is installed,
# pinned, into .cache/wheel-tools (packaging/python/tools-requirements.txt).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

profile=(--profile dev)
out="$root/target/wheels"
extra=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --release) profile=(--release --strip) ;;
        --out)
            [ "$#" -ge 2 ] || { echo "build-wheel: --out needs a directory" >&2; exit 2; }
            out="$(mkdir -p "$2" && cd "$2" && pwd)"
            shift
            ;;
        *) extra+=("$1") ;;
    esac
    shift
done

# The build tools, in a venv of their own (reinstalled when the pins change).
tools="$root/.cache/wheel-tools"
requirements="$root/packaging/python/tools-requirements.txt"
stamp="$tools/.requirements.sha256"
want="$(sha256sum <"$requirements" | cut -d' ' -f1)"
if [ ! -x "$tools/bin/maturin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "build-wheel: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $tools" >&2
    python3 -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
    echo "$want" >"$stamp"
fi

# The wheel's data files: the shipped Rust plugins, built as release components. The
# Python and JavaScript plugins (12-19 MB each, a slow build) are not shipped.
plugins=(audit-log moderation rate-limit redact response-cache tool-policy)
scripts/build-plugins.sh "${plugins[@]}" >&2
data="$root/target/wheel-data" # packaging/python/pyproject.toml: [tool.maturin] data
rm -rf "$data"
mkdir -p "$data/data/share/interpose/plugins"
for plugin in "${plugins[@]}"; do
    cp "$root/target/wasm/wasm32-wasip2/release/${plugin//-/_}.wasm" "$data/data/share/interpose/plugins/"
done

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! (cd packaging/python && "$tools/bin/maturin" build "${profile[@]}" --out "$out" "${extra[@]}") >"$log" 2>&1; then
    cat "$log" >&2
    echo "build-wheel: maturin failed" >&2
    exit 1
fi
wheel="$(sed -n 's/.*Built wheel to //p' "$log" | tail -n 1)"
[ -f "$wheel" ] || { cat "$log" >&2; echo "build-wheel: maturin named no wheel" >&2; exit 1; }
echo "build-wheel: $(du -h "$wheel" | cut -f1) $wheel" >&2
echo "$wheel"
