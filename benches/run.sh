#!/usr/bin/env bash
# One command for the proxy benchmark on a fresh machine: builds the release binaries,
# creates FastMCP's venv if it is missing, then runs proxy-bench with any arguments
# given here (e.g. --calls 1000, --skip-fastmcp, --json).
#   benches/run.sh [ARGS]       stdio: proxy-bench
#   benches/run.sh http [ARGS]  HTTP->stdio: http-bench
#   benches/run.sh all [ARGS]   both, one after the other (ARGS: options both accept,
#                               e.g. --skip-fastmcp, --json, --calls N)
#   benches/run.sh plugins [ARGS]
#                               stdio, plus interpose with the demo's plugins
#                               (audit-log, tool-policy, redact) as another target
#   benches/run.sh record [ARGS]
#                               stdio, plus interpose recording every message
#                               (--record to a scratch file) as another target
#   benches/run.sh trace [ARGS]
#                               stdio, plus interpose exporting OpenTelemetry traces
#                               to a local OTLP receiver as another target
#   benches/run.sh gateway [ARGS]
#                               the gateway (several servers behind one endpoint)
#                               against one backend and the servers alone: gateway-bench
set -euo pipefail

mode=stdio
if [[ "${1:-}" =~ ^(stdio|http|all|plugins|record|trace|gateway)$ ]]; then
    mode="$1"
    shift
fi

# The FastMCP release the published figures were measured with.
FASTMCP_VERSION=4.1.6

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo build --release --quiet -p interpose -p interpose-bench

skip_fastmcp=false
for arg in "$@"; do
    [[ "$arg" == --skip-fastmcp ]] && skip_fastmcp=true
done
# The plugin and record runs compare interpose with and without them only; the
# gateway run, interpose with itself and the servers alone.
[[ "$mode" =~ ^(plugins|record|trace|gateway)$ ]] && skip_fastmcp=true
# Its own venv: FastMCP needs mcp>=2.3, which must not meet the project's other Python tools.
# Checked by import, so a half-finished install is completed rather than trusted.
if [[ "$skip_fastmcp" == false ]] && ! .venv-fastmcp/bin/python -c 'import fastmcp' 2>/dev/null; then
    echo "run.sh: creating .venv-fastmcp with fastmcp==$FASTMCP_VERSION" >&2
    python3 -m venv .venv-fastmcp
    .venv-fastmcp/bin/pip install --quiet --disable-pip-version-check "fastmcp==$FASTMCP_VERSION"
fi

bin="${CARGO_TARGET_DIR:-target}/release"
case "$mode" in
    stdio) exec "$bin/proxy-bench" "$@" ;;
    plugins)
        # The chain `interpose demo` runs, with its policy; paths are relative to the
        # config file, so it is written next to the built plugins.
        scripts/build-plugins.sh audit-log tool-policy redact >/dev/null
        wasm_dir="$root/target/wasm/wasm32-wasip2/release"
        config="$wasm_dir/bench-plugins.toml"
        cp "$root/benches/demo-chain.toml" "$config"
        exec "$bin/proxy-bench" --skip-fastmcp \
            --extra "interpose+plugins=$bin/interpose run --config $config -- {backend}" "$@"
        ;;
    record)
        # The recording grows by two lines per call (about 2.5 KiB with the 1 KiB
        # argument); it is thrown away afterwards.
        recording_dir="$(mktemp -d)"
        trap 'rm -rf "$recording_dir"' EXIT
        "$bin/proxy-bench" --skip-fastmcp \
            --extra "interpose+record=$bin/interpose run --record $recording_dir/bench.jsonl -- {backend}" "$@"
        ;;
    trace)
        # A real OTLP receiver on this machine (the one the trace tests use), taking
        # its share of the cores as a local collector would.
        [[ -x .venv/bin/python ]] || scripts/setup-tests.sh >&2
        receiver_log="$(mktemp)"
        .venv/bin/python tests/servers/otlp_receiver.py >"$receiver_log" &
        receiver=$!
        trap 'kill $receiver 2>/dev/null; rm -f "$receiver_log"' EXIT
        for _ in $(seq 100); do grep -q '^listening on ' "$receiver_log" && break; sleep 0.1; done
        endpoint="$(sed -n 's/^listening on //p' "$receiver_log")"
        [[ -n "$endpoint" ]] || { echo "run.sh: the OTLP receiver did not start" >&2; exit 1; }
        "$bin/proxy-bench" --skip-fastmcp \
            --extra "interpose+traces=$bin/interpose run --otlp-endpoint $endpoint -- {backend}" "$@"
        echo "spans received: $(grep '^spans ' "$receiver_log" | tail -1 | cut -d' ' -f2)"
        ;;
    http) exec "$bin/http-bench" "$@" ;;
    gateway) exec "$bin/gateway-bench" "$@" ;;
    all)
        "$bin/proxy-bench" "$@"
        echo
        exec "$bin/http-bench" "$@"
        ;;
esac
