#!/usr/bin/env bash
# Runs the official MCP conformance suite's server scenarios (pinned in
# tests/conformance/package.json) at protocol revisions 2025-11-25 and 2026-07-28,
# against the reference server (tests/conformance/server.mjs, TypeScript SDK v2):
#   direct      the suite talks to the reference server over HTTP
#   http-http   through `interpose run --listen http://... -- http://.../mcp`
#   http-stdio  through `interpose run --listen http://... -- node server.mjs --stdio`
# Each (revision, mode) gets a fresh interpose, so one run cannot leave state behind
# for the next. Prints a table per revision and exits 1 when a scenario that passes
# directly fails through interpose (with CONFORMANCE_STRICT=1, also when interpose
# adds warnings). See docs/conformance.md.
#
# Installs the pinned npm packages first (npm ci; skipped when the lockfile is
# unchanged). Does not build interpose: the binary is $INTERPOSE_BIN
# (default target/debug/interpose). Results go to $CONFORMANCE_OUT
# (default target/conformance): the suite's checks.json per scenario, the
# interpose and server logs, and summary.json.
# Usage: scripts/conformance.sh [--spec-version REV]... [--scenario NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
DIR="$REPO/tests/conformance"
BIN="${INTERPOSE_BIN:-target/debug/interpose}"
OUT="${CONFORMANCE_OUT:-$REPO/target/conformance}"
REVISIONS=()
SCENARIO=()
while [ $# -gt 0 ]; do
    case "$1" in
        --spec-version) REVISIONS+=("$2"); shift 2 ;;
        --scenario) SCENARIO=(--scenario "$2"); shift 2 ;;
        *) echo "conformance: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ ${#REVISIONS[@]} -gt 0 ] || REVISIONS=(2025-11-25 2026-07-28)

say() { printf 'conformance: %s\n' "$*"; }
fail() { printf 'conformance: FAILED: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || fail "node is not installed (Node 20+ needed)"
[ -x "$BIN" ] || fail "no interpose binary at $BIN (cargo build, or set INTERPOSE_BIN)"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

# 1. Pinned packages (npm ci from the lockfile), skipped when nothing changed.
want="$(cat "$DIR/package.json" "$DIR/package-lock.json" | sha256sum | cut -d' ' -f1)"
stamp="$DIR/node_modules/.conformance-package-lock.sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "npm packages up to date (tests/conformance/package-lock.json)"
else
    say "npm ci in tests/conformance (node $(node --version))"
    log="$(mktemp)"
    if ! npm ci --prefix "$DIR" --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
        cat "$log" >&2; rm -f "$log"; fail "npm ci"
    fi
    rm -f "$log"
    echo "$want" >"$stamp"
fi

# The suite needs Node 22 for one API (fs.globSync); node20/register.mjs supplies it
# to the suite's bundle on Node 20 and does nothing on later versions.
SUITE=(node --import "$DIR/node20/register.mjs" "$DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js")

# 2. Processes: every one started here is stopped on exit.
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Waits until something accepts TCP connections on 127.0.0.1:$1 (at most 30 s);
# fails early when process $2 exits.
wait_listening() {
    for _ in $(seq 1 150); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

rm -rf "$OUT"
mkdir -p "$OUT"
started=$SECONDS

backend_port="$(free_port)"
node "$DIR/server.mjs" --port "$backend_port" >"$OUT/server-http.log" 2>&1 &
backend=$!
PIDS+=("$backend")
wait_listening "$backend_port" "$backend" || { cat "$OUT/server-http.log" >&2; fail "reference server did not start"; }
say "reference server at http://127.0.0.1:$backend_port/mcp; interpose: $BIN"

run_suite() { # revision mode url
    local dir="$OUT/$1/$2" began=$SECONDS
    mkdir -p "$dir"
    # Exit status ignored: the report compares the modes scenario by scenario.
    "${SUITE[@]}" server --url "$3" --suite all --spec-version "$1" "${SCENARIO[@]}" -o "$dir" >"$dir/suite.log" 2>&1 || true
    say "$1 $2: $(grep -E '^(Total|Passed):' "$dir/suite.log" || echo 'no summary, see suite.log') ($((SECONDS - began)) s)"
}

run_proxied() { # revision mode backend...
    local revision="$1" mode="$2"
    shift 2
    local port
    port="$(free_port)"
    mkdir -p "$OUT/$revision/$mode"
    "$BIN" run --listen "http://127.0.0.1:$port" -- "$@" >"$OUT/$revision/$mode/interpose.log" 2>&1 &
    local proxy=$!
    PIDS+=("$proxy")
    wait_listening "$port" "$proxy" || { cat "$OUT/$revision/$mode/interpose.log" >&2; fail "interpose did not start"; }
    run_suite "$revision" "$mode" "http://127.0.0.1:$port/mcp"
    stop "$proxy"
}

for revision in "${REVISIONS[@]}"; do
    run_suite "$revision" direct "http://127.0.0.1:$backend_port/mcp"
    run_proxied "$revision" http-http "http://127.0.0.1:$backend_port/mcp"
    run_proxied "$revision" http-stdio node "$DIR/server.mjs" --stdio
done
say "suite runs took $((SECONDS - started)) s; results in $OUT"

# 3. The table, and the verdict.
node "$DIR/report.mjs" "$OUT"
