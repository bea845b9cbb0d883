#!/usr/bin/env bash
# A walk-through of third-party plugins, on a fresh machine: a local OCI registry
# (the Debian package `docker-registry`, installed if missing), a key pair, and the
# shipped `tool-policy` plugin signed, inspected, pushed, pulled, and loaded by
# reference by a proxy that requires signatures. Then an unsigned push is refused.
# Every command it runs is printed, with its output.
#
#   scripts/demo-registry.sh
#
# Uses $INTERPOSE_BIN when set (the tests do), else builds interpose (release).
# Everything it writes goes to a scratch directory, removed at the end with the
# registry it started.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v docker-registry >/dev/null; then
    echo "installing the OCI registry (apt-get install docker-registry)" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if ! apt-cache policy docker-registry 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        $sudo apt-get update -q >&2
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >&2
fi
if [ -n "${INTERPOSE_BIN:-}" ]; then
    bin="$INTERPOSE_BIN"
else
    cargo build --release -p interpose --quiet
    bin="$root/target/release/interpose"
fi
work="$(mktemp -d)"
registry_pid=""
cleanup() {
    [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
if ! scripts/build-plugins.sh tool-policy >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    exit 1
fi
plugin_built="$root/target/wasm/wasm32-wasip2/release/tool_policy.wasm"
cd "$work"
export INTERPOSE_CACHE_DIR="$work/cache"

# The registry, on a free loopback port.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >registry.yml <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry-data
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve registry.yml >registry.log 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
registry="127.0.0.1:$port"

# Prints a command as typed (with `interpose` for the binary), then runs it.
show() {
    printf '\n$ interpose'
    printf ' %s' "$@"
    printf '\n'
    "$bin" "$@" 2>&1
}

echo "== A local OCI registry at $registry; working in a scratch directory"
cp "$plugin_built" tool_policy.wasm

echo
echo "== 1. The publisher makes a key pair and signs the plugin"
show plugin keygen acme
show plugin sign tool_policy.wasm --key acme.key

echo
echo "== 2. Anyone can see what the plugin is and asks for before running it"
show plugin inspect tool_policy.wasm --key acme.pub

echo
echo "== 3. The publisher pushes it; its signature goes along"
show plugin push tool_policy.wasm "$registry/acme/tool-policy:1.0"

echo
echo "== 4. An operator pulls it into the content-addressed cache"
show plugin pull "$registry/acme/tool-policy:1.0"

echo
echo "== 5. ... and loads it by reference, trusting acme's key only"
cat >interpose.toml <<EOF
[trust]
require_signature = true
trusted_keys = ["acme.pub"]

[[plugins]]
path = "oci://$registry/acme/tool-policy:1.0"
config = { deny = ["demo_add"] }
EOF
printf '\n$ cat interpose.toml\n'
cat interpose.toml
show check --config interpose.toml && echo "(exit 0: the plugin loaded, its signature verified)"

echo
echo "== 6. The proxy runs it: the demo backend behind it, a client calling demo_add"
printf '\n$ interpose run --config interpose.toml -- interpose demo --serve\n'
coproc PROXY { "$bin" run --config interpose.toml -- "$bin" demo --serve 2>proxy.log; }
ask() {
    printf '%s\n' "$1" >&"${PROXY[1]}"
    printf '> %s\n' "$1"
    if [ "${2:-}" != "notification" ]; then
        local answer
        IFS= read -r -t 60 answer <&"${PROXY[0]}"
        printf '< %s\n' "${answer:0:240}"
    fi
}
ask '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"walk-through","version":"1"}}}'
ask '{"jsonrpc":"2.0","method":"notifications/initialized"}' notification
ask '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"demo_add","arguments":{"a":2,"b":3}}}'
# The client leaves: the proxy and its backend exit.
eval "exec ${PROXY[1]}>&-"
wait "$PROXY_PID" || true

echo
echo "== 7. An unsigned push is refused by the same configuration"
cp "$plugin_built" unsigned.wasm
show plugin push unsigned.wasm "$registry/acme/tool-policy:1.0-unsigned"
sed -i "s|tool-policy:1.0\"|tool-policy:1.0-unsigned\"|" interpose.toml
if show check --config interpose.toml; then
    echo "an unsigned plugin was accepted" >&2
    exit 1
fi
echo "(exit 1: refused)"
