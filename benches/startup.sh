#!/usr/bin/env bash
# Start-up: how long from starting `interpose run` to the answer of the first
# `initialize`, in front of the Rust echo backend, with
#   none    no plugins
#   rust3   the demo's three Rust plugins (audit-log, tool-policy, redact), cached
#   python  the scaffolded Python plugin, after `interpose plugin build`
#   js      the scaffolded JavaScript plugin, after `interpose plugin build`
# Rounds are interleaved (one start of each per round), so a noisy moment hits all
# alike. Run 1 of python and js is the first start after their build.
#
#   benches/startup.sh [--runs N] [--rust-only]
#
# Builds the release binaries. Python and JavaScript need the toolchains
# `interpose plugin build` installs on first use (see the SDK READMEs); --rust-only
# leaves them out. The compiled-plugin cache is a fresh temporary directory.
set -euo pipefail

runs=20
guests=true
while [ "$#" -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --rust-only) guests=false; shift ;;
        *) echo "usage: $0 [--runs N] [--rust-only]" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --quiet -p interpose -p interpose-bench
interpose="$target/release/interpose"
backend="$target/release/echo-backend"
scripts/build-plugins.sh audit-log tool-policy redact >/dev/null
wasm="$root/target/wasm/wasm32-wasip2/release"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export INTERPOSE_CACHE_DIR="$work/cache"

declare -A args
args[none]=""
args[rust3]="--plugin $wasm/audit_log.wasm --plugin $wasm/tool_policy.wasm --plugin $wasm/redact.wasm"
# `interpose check` leaves the compiled plugins in the cache, as a build does.
# shellcheck disable=SC2086
"$interpose" check ${args[rust3]} >/dev/null
scenarios=(none rust3)
if $guests; then
    for lang in python js; do
        "$interpose" plugin new "demo-$lang" --lang "$lang" --dir "$work" >/dev/null
        echo "interpose plugin build (the scaffolded $lang plugin):" >&2
        component="$("$interpose" plugin build "$work/demo-$lang" 2> >(sed 's/^/  /' >&2))"
        args[$lang]="--plugin $component"
        scenarios+=("$lang")
    done
fi

init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"startup","version":"0"}}}'

# Milliseconds from starting the proxy to reading the answer of `initialize`.
first_answer_ms() {
    local started line
    started=$EPOCHREALTIME
    # shellcheck disable=SC2086
    coproc PROXY { exec "$interpose" run $1 -- "$backend" 2>>"$work/log"; }
    printf '%s\n' "$init" >&"${PROXY[1]}"
    IFS= read -r -t 300 line <&"${PROXY[0]}" || { echo "no answer; log: $work/log" >&2; exit 1; }
    local ended=$EPOCHREALTIME
    [[ "$line" == *'"id":1'*'"result"'* ]] || { echo "unexpected answer: $line" >&2; exit 1; }
    exec {PROXY[1]}>&-
    wait "$PROXY_PID" || true
    echo "$started $ended" | awk '{ printf "%.1f\n", ($2 - $1) * 1000 }'
}

declare -A times
for ((run = 1; run <= runs; run++)); do
    for name in "${scenarios[@]}"; do
        times[$name]+="$(first_answer_ms "${args[$name]}") "
    done
done

printf '%-8s %10s %10s %10s %12s %12s\n' target "median ms" "min ms" "max ms" "first ms" "added ms"
none_median=""
for name in "${scenarios[@]}"; do
    read -r first _ <<<"${times[$name]}"
    stats="$(tr ' ' '\n' <<<"${times[$name]}" | grep . | sort -n | awk '
        { v[NR] = $1 }
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.1f %.1f %.1f", m, v[1], v[NR] }')"
    read -r median min max <<<"$stats"
    [ -z "$none_median" ] && none_median="$median"
    added="$(awk -v a="$median" -v b="$none_median" 'BEGIN { printf "%.1f", a - b }')"
    printf '%-8s %10s %10s %10s %12s %12s\n' "$name" "$median" "$min" "$max" "$first" "$added"
done
