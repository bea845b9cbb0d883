#!/usr/bin/env bash
# Where the demo chain's time goes, live: records the proxy with the chain that
# `benches/run.sh plugins` measures (audit-log, tool-policy, redact) under
# proxy-bench's load with `perf record`, then prints the breakdown per plugin and
# per kind of work (benches/profile_breakdown.py).
#   benches/profile.sh [CONFIG] [PROXY-BENCH ARGS]
# CONFIG: a plugin config TOML (default: the demo chain); paths in it are relative to
# the unstripped plugins' directory. Needs `perf`. Plugins are built without `strip`
# into target/wasm-profile so that guest functions have names.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v perf >/dev/null || { echo "profile.sh: perf is not installed" >&2; exit 1; }

cargo build --release --quiet -p interpose -p interpose-bench
# The build-plugins.sh settings, but keeping the symbols.
CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_LTO=true \
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_DEBUG=false \
CARGO_PROFILE_RELEASE_STRIP=false \
    cargo build --quiet --release --target wasm32-wasip2 --target-dir target/wasm-profile \
    -p audit-log -p tool-policy -p redact

bin="${CARGO_TARGET_DIR:-target}/release"
wasm_dir="$root/target/wasm-profile/wasm32-wasip2/release"
out="$root/target/profile"
mkdir -p "$out"
config="${1:-}"
[[ $# -gt 0 ]] && shift
if [[ -z "$config" ]]; then
    config="$wasm_dir/profile-plugins.toml"
    cp "$root/benches/demo-chain.toml" "$config"
fi

# proxy-bench starts the profiled proxy through this wrapper. The first run fills the
# compiled-artifact cache, so compiling is not in the profile of the second.
wrapper="$out/record.sh"
cat >"$wrapper" <<SH
#!/bin/sh
export INTERPOSE_PERF_MAP=1
exec perf record -q -F 1999 --call-graph dwarf,8192 -o "$out/perf.data" -- "$bin/interpose" run --config "$config" -- "\$@"
SH
chmod +x "$wrapper"
for pass in warm-up measured; do
    echo "profile.sh: $pass run" >&2
    "$bin/proxy-bench" --skip-fastmcp --extra "profiled=$wrapper {backend}" "$@" >"$out/bench.md"
done
grep -E '^\| (direct|interpose|profiled) ' "$out/bench.md"
perf script -i "$out/perf.data" -F comm,pid,tid,ip,sym,dso --no-inline 2>/dev/null >"$out/perf.txt"
python3 benches/profile_breakdown.py "$out/perf.txt"
