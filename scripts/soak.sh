#!/usr/bin/env bash
# Soak test: the release proxy with the demo plugin chain (audit-log, tool-policy,
# redact) in front of the echo backend, at a fixed request rate with payloads of
# 100 B to 256 KiB, over stdio and then over Streamable HTTP. Reports the proxy's RSS
# every 10 s, RSS growth after warm-up, lost / duplicated / unknown answers (by id)
# and latency percentiles. Exits non-zero on a lost or duplicated answer or RSS growth
# of 5 % or more. See docs/fuzzing.md ("Soak").
#
#   scripts/soak.sh [--minutes N] [--rate R] [--transport stdio|http|both]
#                   [--binary PATH] [--timeout-ms MS] [--out DIR]
#
# Defaults: 10 minutes per transport, 20 requests/s, both transports one after the
# other, target/release/interpose (built if missing). Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10
rate=20
transport=both
binary=target/release/interpose
timeout_ms=
out=target/soak
while [[ $# -gt 0 ]]; do
    case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --transport) transport=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --timeout-ms) timeout_ms=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "soak: unknown argument $1" >&2; exit 2 ;;
    esac
done
case $transport in
stdio | http) transports=("$transport") ;;
both) transports=(stdio http) ;;
*) echo "soak: --transport is stdio, http or both" >&2; exit 2 ;;
esac

if [[ ! -x $binary ]]; then
    [[ $binary == target/release/interpose ]] || { echo "soak: no $binary" >&2; exit 1; }
    cargo build --release -p interpose
fi
backend=target/debug/echo-backend
[[ -x $backend ]] || cargo build -p interpose-bench --bin echo-backend
plugins=target/wasm/wasm32-wasip2/release
for name in audit_log tool_policy redact; do
    [[ -f $plugins/$name.wasm ]] || scripts/build-plugins.sh
done

python=python3
[[ -x .venv/bin/python ]] && python=.venv/bin/python
mkdir -p "$out"
status=0
for t in "${transports[@]}"; do
    echo "== soak over $t: $minutes min at $rate req/s, binary $binary"
    extra=()
    [[ -n $timeout_ms ]] && extra=(--timeout-ms "$timeout_ms")
    "$python" benches/soak.py --transport "$t" --minutes "$minutes" --rate "$rate" \
        --binary "$binary" --backend "$backend" --plugin-dir "$plugins" \
        --json "$out/$t.json" --log "$out/$t.log" "${extra[@]}" || status=1
done
echo "reports: $out/{stdio,http}.json; proxy logs: $out/{stdio,http}.log"
exit $status
