#!/usr/bin/env bash
# Throughput of two interpose replicas sharing one Valkey/Redis against one replica,
# on this machine: starts `valkey-server` (or `redis-server`) on a free loopback port,
# the Rust echo backend over HTTP, and two replicas (`interpose run --listen`, with
# `[replicas]`, `[store] url` and the plugins `rate-limit` + `response-cache`) in
# front of it; then http-bench opens N sessions spread over both replicas in turn
# (`two`) and N sessions on replica A alone (`one`), and has them all call `echo` at
# once, the two loads in interleaved rounds. Everything it started is stopped at exit.
#
#   benches/replicas.sh                   # http-bench's defaults: 100 sessions x 50 calls, 3 rounds
#   benches/replicas.sh --sessions 32 --rounds 5 --json
#
# Every call has its own argument (--distinct-arguments): the cache misses, so each
# call makes three store round trips (the rate limit's INCR, the cache's GET and SET)
# and reaches the backend. Builds the release binaries (into ${CARGO_TARGET_DIR:-target})
# and the two plugins first. Options after the script's name go to http-bench.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo build --release --quiet -p interpose -p interpose-bench
scripts/build-plugins.sh rate-limit response-cache >/dev/null
bin="${CARGO_TARGET_DIR:-target}/release"
wasm="$root/target/wasm/wasm32-wasip2/release"

store_server="$(command -v valkey-server || command -v redis-server || true)"
[[ -n "$store_server" ]] || { echo "replicas.sh: no valkey-server or redis-server (scripts/setup-tests.sh installs one)" >&2; exit 1; }

scratch="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 60 s for something to listen on 127.0.0.1:$1.
wait_for_port() {
    for _ in $(seq 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "replicas.sh: nothing listens on port $1 (logs in $scratch)" >&2
    exit 1
}

store_port="$(free_port)"
"$store_server" --bind 127.0.0.1 --port "$store_port" --save "" --appendonly no \
    >"$scratch/store.log" 2>&1 &
pids+=($!)
backend_port="$(free_port)"
"$bin/echo-backend" --http "127.0.0.1:$backend_port" 2>"$scratch/backend.log" &
pids+=($!)
wait_for_port "$store_port"
wait_for_port "$backend_port"

cat >"$scratch/replica.toml" <<EOF
[replicas]
key_env = "INTERPOSE_SESSION_KEY"
name_env = "INTERPOSE_REPLICA_NAME"

[store]
url = "redis://127.0.0.1:$store_port"
timeout_ms = 1000

[[plugins]]
path = "$wasm/rate_limit.wasm"
name = "rate-limit"
# 100 sessions calling at once on 2 cores queue for the store: the default 50 ms
# deadline would fail calls, which is not what is measured here.
timeout_ms = 1000
[[plugins.config.limits]]
tools = ["*"]
per = "session"
max = 1000000000
window_s = 3600

[[plugins]]
path = "$wasm/response_cache.wasm"
name = "response-cache"
timeout_ms = 1000
failure_policy = "skip"
[plugins.config]
tools = ["echo"]
EOF

INTERPOSE_SESSION_KEY="$(head -c 32 /dev/urandom | base64)"
export INTERPOSE_SESSION_KEY
urls=()
for name in a b; do
    port="$(free_port)"
    INTERPOSE_REPLICA_NAME="$name" "$bin/interpose" run --listen "http://127.0.0.1:$port" \
        --max-sessions 1000 --config "$scratch/replica.toml" \
        -- "http://127.0.0.1:$backend_port/mcp" 2>"$scratch/replica-$name.log" &
    pids+=($!)
    wait_for_port "$port"
    urls+=("http://127.0.0.1:$port/mcp")
done

echo "replicas.sh: $store_server on $store_port, echo backend on $backend_port, replicas at ${urls[*]}" >&2
"$bin/http-bench" --url "one=${urls[0]}" --url "two=${urls[0]},${urls[1]}" \
    --distinct-arguments "$@"
