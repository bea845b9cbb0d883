#!/usr/bin/env bash
# Policies per user, end to end: an identity provider, interpose with [auth] and
# tool-policy in front of the test MCP server tests/servers/full_server.py, and two
# users calling the same tools. `interpose-test` holds `mcp:tools mcp:admin`,
# `interpose-other` `mcp:tools`: `add` and `echo` are answered for the first and
# refused for the second, and each lists only the tools it may call.
#
#   examples/policy-per-user/run.sh          # IdP on 127.0.0.1:9400, interpose on :8400
#   IDP_PORT=9500 PORT=8500 examples/policy-per-user/run.sh
#
# Needs node with tests/node_modules and .venv (scripts/setup-tests.sh), curl, jq, the
# plugin (scripts/build-plugins.sh tool-policy) and interpose ($INTERPOSE_BIN, else
# target/debug/interpose).
set -euo pipefail
[ -n "${DEBUG_EXAMPLE:-}" ] && set -x

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
interpose="${INTERPOSE_BIN:-$root/target/debug/interpose}"
python="${PYTHON:-$root/.venv/bin/python}"
idp_port="${IDP_PORT:-9400}"
port="${PORT:-8400}"
url="http://127.0.0.1:$port"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The configuration, with the ports asked for.
sed -e "s/:9400/:$idp_port/" -e "s/:8400/:$port/" \
    -e "s#\"../../target/#\"$root/target/#" "$here/interpose.toml" >"$work/interpose.toml"

node "$root/tests/idp/idp.mjs" --port "$idp_port" >"$work/idp.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do grep -q READY "$work/idp.out" && break; sleep 0.1; done
grep -q READY "$work/idp.out" || { echo "the identity provider did not start" >&2; exit 1; }

"$interpose" run --listen "$url" --config "$work/interpose.toml" \
    -- "$python" "$root/tests/servers/full_server.py" 2>"$work/interpose.log" &
pids+=($!)
for _ in $(seq 300); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$url/healthz" >/dev/null || { cat "$work/interpose.log" >&2; exit 1; }

# A client_credentials token for `client:secret` with these scopes, for this resource.
token() {
    curl -sf -u "$1" -d grant_type=client_credentials -d "scope=$2" -d "resource=$url/mcp" \
        "http://127.0.0.1:$idp_port/token" | jq -r .access_token
}

# Posts one JSON-RPC message; prints the answer's JSON (the SSE data, or the body).
post() {
    local token="$1" session="$2" body="$3"
    curl -s "$url/mcp" -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
        -H "Accept: application/json, text/event-stream" ${session:+-H "Mcp-Session-Id: $session"} \
        -d "$body" | sed -n -e 's/^data: //p' -e t -e '/^{/p'
}

# Opens a session; prints its id.
open_session() {
    local initialize='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"example","version":"1"}}}'
    local session
    session="$(curl -s -D - -o /dev/null "$url/mcp" -H "Authorization: Bearer $1" \
        -H "Content-Type: application/json" -H "Accept: application/json, text/event-stream" \
        -d "$initialize" | tr -d '\r' | tee "$work/initialize.headers" | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')"
    [ -n "$session" ] || { echo "initialize failed:" >&2; cat "$work/initialize.headers" "$work/interpose.log" >&2; exit 1; }
    post "$1" "$session" '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null
    echo "$session"
}

for user in "interpose-test:interpose-secret|mcp:tools mcp:admin" "interpose-other:other-secret|mcp:tools"; do
    client="${user%%|*}" scopes="${user#*|}"
    name="${client%%:*}"
    access="$(token "$client" "$scopes")"
    session="$(open_session "$access")"
    tools="$(post "$access" "$session" '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' |
        jq -r '[.result.tools[].name | select(. == "add" or . == "echo")] | join(", ")')"
    echo "$name ($scopes) lists: ${tools:-neither add nor echo}"
    for call in '{"name":"add","arguments":{"a":2,"b":3}}' '{"name":"echo","arguments":{"text":"hello"}}'; do
        tool="$(jq -r .name <<<"$call")"
        answer="$(post "$access" "$session" "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":$call}")"
        if jq -e .error >/dev/null <<<"$answer"; then
            echo "$name calls $tool: refused: $(jq -r .error.message <<<"$answer")"
        else
            echo "$name calls $tool: ok: $(jq -c '.result.content[0].text' <<<"$answer")"
        fi
    done
done
