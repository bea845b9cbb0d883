#!/usr/bin/env bash
# RUSTC_WORKSPACE_WRAPPER used by scripts/fuzz.sh: adds the AFL++ coverage
# instrumentation (the flags `cargo afl build` uses) to the workspace crates only, so
# the dependencies (wasmtime, tokio, ...) are the plain debug build already on disk
# instead of an instrumented rebuild of everything. Build scripts stay plain: they
# run at build time, without the AFL++ runtime.
set -euo pipefail
rustc=$1
shift
case " $* " in
*" --crate-name build_script_"*) exec "$rustc" "$@" ;;
esac
exec "$rustc" "$@" \
    -C opt-level=2 \
    -C passes=sancov-module \
    -C llvm-args=-sanitizer-coverage-level=3 \
    -C llvm-args=-sanitizer-coverage-trace-pc-guard \
    -C llvm-args=-sanitizer-coverage-prune-blocks=0 \
    -C llvm-args=-sanitizer-coverage-trace-compares \
    -C "link-arg=${AFL_RUNTIME:?set by scripts/fuzz.sh}"
