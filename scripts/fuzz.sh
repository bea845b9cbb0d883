#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ (stable Rust, via cargo-afl). See docs/fuzzing.md.
#
#   scripts/fuzz.sh TARGET [MINUTES]    one target (default 10 minutes)
#   scripts/fuzz.sh all [MINUTES]       every target at once, one afl-fuzz each
#   scripts/fuzz.sh list                the targets
#
# Needs `cargo install cargo-afl` (its install builds AFL++). Runs at nice 19. Output
# in target/fuzz/TARGET/default/ (queue/, crashes/, hangs/, fuzzer_stats); a second run
# resumes from it. Exits non-zero if any crash or hang was saved.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(jsonrpc framing sniff_id sse remap config)
target=${1:?usage: scripts/fuzz.sh TARGET|all|list [MINUTES]}
minutes=${2:-10}

if [[ $target == list ]]; then
    printf '%s\n' "${TARGETS[@]}"
    exit 0
fi

afl_home=${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs
runtime=$(ls "$afl_home"/rustc-*/afl.rs-*/afl-llvm/afl-compiler-rt.o 2>/dev/null | tail -n 1)
if [[ -z $runtime ]] || ! command -v cargo-afl >/dev/null; then
    echo "AFL++ is missing: run 'cargo install cargo-afl' first" >&2
    exit 1
fi
dictionaries=$afl_home/AFLplusplus/dictionaries

# Only the workspace crates are instrumented (scripts/afl-rustc.sh), so the
# dependencies can come from the debug build: seed the AFL target directory with it.
export CARGO_TARGET_DIR=target/afl
if [[ ! -d target/afl/debug && -d target/debug ]]; then
    echo "seeding target/afl from target/debug (dependencies already built)" >&2
    mkdir -p target/afl
    cp -a target/debug target/afl/debug
fi
AFL_RUNTIME=$runtime RUSTC_WORKSPACE_WRAPPER=$PWD/scripts/afl-rustc.sh \
    nice -n 19 cargo build -p interpose-fuzz --features afl --bin fuzz-afl
binary=target/afl/debug/fuzz-afl

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
export AFL_AUTORESUME=1 AFL_NO_AFFINITY=1

run_one() {
    local name=$1 dictionary=$dictionaries/json.dict
    [[ $name == config ]] && dictionary=$dictionaries/toml.dict
    mkdir -p "target/fuzz/$name"
    # -t: an input that takes over a second is a hang (a parser of a few KiB).
    nice -n 19 cargo afl fuzz -i "fuzz/corpus/$name" -o "target/fuzz/$name" \
        -x "$dictionary" -t 1000 -V $((minutes * 60)) -- "$binary" "$name" \
        >"target/fuzz/$name.log" 2>&1 || true
}

summary() {
    local name=$1 stats=target/fuzz/$1/default/fuzzer_stats
    if [[ ! -f $stats ]]; then
        echo "$name: no stats, see target/fuzz/$name.log"
        return 1
    fi
    local seeds
    seeds=$(find "fuzz/corpus/$name" -type f | wc -l)
    awk -v name="$name" -v seeds="$seeds" -F' *: *' '
        { s[$1] = $2 }
        END {
            printf "%-9s %6.0f s  %12d execs  %8.0f/s  corpus %d -> %d  crashes %d  hangs %d\n",
                name, s["run_time"], s["execs_done"], s["execs_per_sec"], seeds,
                s["corpus_count"], s["saved_crashes"], s["saved_hangs"]
            exit (s["saved_crashes"] + s["saved_hangs"] > 0)
        }' "$stats"
}

if [[ $target == all ]]; then
    selected=("${TARGETS[@]}")
elif [[ " ${TARGETS[*]} " == *" $target "* ]]; then
    selected=("$target")
else
    echo "unknown target '$target'; one of: ${TARGETS[*]} (or all)" >&2
    exit 2
fi

echo "fuzzing ${selected[*]} for $minutes min each, in parallel" >&2
for name in "${selected[@]}"; do
    run_one "$name" &
done
wait

status=0
for name in "${selected[@]}"; do
    summary "$name" || status=1
done
for name in "${selected[@]}"; do
    for dir in crashes hangs; do
        found=$(find "target/fuzz/$name/default/$dir" -type f -name 'id:*' 2>/dev/null)
        [[ -n $found ]] && printf '%s %s:\n%s\n' "$name" "$dir" "$found"
    done
done
exit $status
