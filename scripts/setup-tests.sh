#!/usr/bin/env bash
# Installs what the end-to-end tests (tests/e2e) need, on a fresh machine or again:
#   - a Python venv at <repo>/.venv with tests/requirements.txt
#   - the Node test servers into tests/node_modules (npm ci, from tests/package-lock.json)
#   - an OCI registry (the Debian package `docker-registry`) for the plugin
#     distribution tests, which start and stop their own instances
#   - a Valkey/Redis server (the Debian package `valkey-server`, or `redis-server`
#     where Valkey is not packaged) for the plugin store tests, which start and
#     stop their own instances
# Idempotent: a step whose inputs did not change since it last succeeded is skipped.
# Quiet: one line per step; a failing step prints its output and stops the script.
# It does not build interpose; the tests take the binary from $INTERPOSE_BIN
# (default: target/debug/interpose).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

PYTHON="${PYTHON:-python3}"
VENV="$REPO/.venv"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

step() { printf 'setup-tests: %s\n' "$*"; }

run() {
    if ! "$@" >"$LOG" 2>&1; then
        printf 'setup-tests: FAILED: %s\n' "$*" >&2
        cat "$LOG" >&2
        exit 1
    fi
}

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# 1. Python venv
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    step "venv $VENV exists"
else
    step "creating venv $VENV ($("$PYTHON" --version 2>&1))"
    rm -rf "$VENV"
    run "$PYTHON" -m venv "$VENV"
fi

# 2. Python packages
want="$(hash_of tests/requirements.txt)"
stamp="$VENV/.e2e-requirements.sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c 'import mcp, pytest' 2>/dev/null; then
    step "python packages up to date (tests/requirements.txt)"
else
    step "pip install -r tests/requirements.txt"
    run "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
    echo "$want" >"$stamp"
fi

# 3. Node packages
command -v node >/dev/null || { echo "setup-tests: FAILED: node is not installed (Node 20+ needed)" >&2; exit 1; }
want="$(hash_of tests/package.json tests/package-lock.json)"
stamp="tests/node_modules/.e2e-package-lock.sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    step "npm packages up to date (tests/package-lock.json)"
else
    step "npm ci in tests/ (node $(node --version))"
    run npm ci --prefix tests --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
fi

# 4. An OCI registry (host/tests/plugins/plugin_oci.rs starts one per test)
if command -v docker-registry >/dev/null; then
    step "docker-registry installed"
else
    step "apt-get install docker-registry"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Package lists may be empty on a fresh machine.
    if ! apt-cache policy docker-registry 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        run $sudo apt-get update -q
    fi
    run $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry
fi

# 5. A Valkey or Redis server (host/tests/plugins/plugin_store.rs starts one per test)
if command -v valkey-server >/dev/null || command -v redis-server >/dev/null; then
    step "valkey-server or redis-server installed"
else
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if ! apt-cache policy valkey-server redis-server 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        run $sudo apt-get update -q
    fi
    # Valkey where the release packages it (Debian 13), else Redis (Debian 12).
    server=redis-server
    if apt-cache policy valkey-server 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        server=valkey-server
    fi
    step "apt-get install $server"
    run $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$server"
fi

step "done; run the suite with: .venv/bin/pytest tests/e2e"
