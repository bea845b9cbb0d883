#!/usr/bin/env bash
# Replay throughput: generates a recording of N messages (default 100,000) in the
# format `interpose run --record` writes, and times `interpose replay` through the demo
# chain (audit-log, tool-policy denying delete_*, redact), printing messages per second.
#   benches/replay.sh                   release build, 100,000 messages
#   benches/replay.sh --messages 20000  fewer
#   benches/replay.sh --debug           the debug build (a sanity run, not a figure)
set -euo pipefail

messages=100000
profile=release
while [[ $# -gt 0 ]]; do
    case "$1" in
        --messages) messages="$2"; shift 2 ;;
        --debug) profile=debug; shift ;;
        *) echo "usage: benches/replay.sh [--messages N] [--debug]" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ "$profile" == release ]]; then
    cargo build --release --quiet -p interpose
else
    cargo build --quiet -p interpose
fi
bin="${CARGO_TARGET_DIR:-target}/$profile/interpose"

scripts/build-plugins.sh audit-log tool-policy redact >/dev/null
wasm_dir="$root/target/wasm/wasm32-wasip2/release"
config="$wasm_dir/bench-plugins.toml"
cp "$root/benches/demo-chain.toml" "$config"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
recording="$work/recording.jsonl"

# A session's traffic, repeated: a tools/call and its answer (a 1 KiB text; one in ten
# holds an email that redact rewrites), a progress notification, and one call in
# twenty to a denied tool, which tool-policy rejects (its answer is never reached).
python3 - "$messages" "$recording" <<'EOF'
import json, sys
total, path = int(sys.argv[1]), sys.argv[2]
filler = "lorem ipsum " * 85
def line(n, direction, kind, method, message, id=None):
    out = {"v": 1, "time": "2026-01-01T00:00:00.%06dZ" % (n % 1000000), "session": "bench",
           "server": "echo", "direction": direction, "kind": kind, "method": method,
           "message": message, "verdict": "pass"}
    if id is not None:
        out["id"] = id
    return json.dumps(out, separators=(",", ":"))
with open(path, "w") as f:
    n, call = 0, 0
    while n < total:
        call += 1
        tool = "delete_all" if call % 20 == 0 else "echo"
        params = {"name": tool, "arguments": {"text": filler}}
        batch = [line(n, "to-server", "request", "tools/call",
                      {"jsonrpc": "2.0", "id": call, "method": "tools/call", "params": params}, call)]
        text = filler + (" mail alice@example.com" if call % 10 == 0 else "")
        batch.append(line(n + 1, "to-client", "response", "tools/call",
                          {"jsonrpc": "2.0", "id": call,
                           "result": {"content": [{"type": "text", "text": text}]}}, call))
        batch.append(line(n + 2, "to-client", "notification", "notifications/progress",
                          {"jsonrpc": "2.0", "method": "notifications/progress",
                           "params": {"progressToken": call, "progress": 1}}))
        for entry in batch[: total - n]:
            f.write(entry + "\n")
        n += len(batch)
EOF

echo "replay.sh: $messages messages ($(du -h "$recording" | cut -f1)), $profile build, demo chain"
start=$(date +%s.%N)
"$bin" replay "$recording" --config "$config" --quiet
end=$(date +%s.%N)
python3 -c "import sys; s, e, n = map(float, sys.argv[1:]); print(f'whole command (plugin loading included): {e - s:.2f} s, {n / (e - s):.0f} messages per second')" "$start" "$end" "$messages"
