#!/usr/bin/env bash
# Runs the JavaScript unit tests under plain Node: the SDK (sdk/js), the
# scaffold template, and every plugins/*-js. No toolchain, no WebAssembly: the
# tests exercise plugin logic natively. `npm install` in a plugin only links
# the SDK (a file: dependency); nothing is downloaded.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

command -v node >/dev/null || { echo "test-js: node is not installed (Node 20+ needed)" >&2; exit 1; }

link_sdk() {
    npm install --prefix "$1" --offline --no-audit --no-fund --loglevel=error >/dev/null
}

echo "==> sdk/js"
(cd sdk/js && node --test test/)

for dir in plugins/*-js; do
    [ -f "$dir/package.json" ] || continue
    echo "==> $dir"
    link_sdk "$dir"
    (cd "$dir" && node --test)
done

echo "==> sdk/js/template (as plugins/<name> would hold it)"
scratch="$(mktemp -d "$root/plugins/.template-test.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
cp -r sdk/js/template/. "$scratch/"
link_sdk "$scratch"
(cd "$scratch" && node --test)
