#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer harnesses of tests/fuzz in build-fuzz/ (clang,
# -fsanitize=fuzzer,address,undefined), then for each harness
#   1. replays the inputs of tests/fuzz/regressions/<harness>/ (crashes found before),
#   2. fuzzes for FUZZ_SECONDS (default 60) on build-fuzz/corpus/<harness>/, a working copy
#      seeded from tests/fuzz/corpus/<harness>/ that keeps what earlier runs found.
# Nothing is written into the repository: corpora, crash inputs (build-fuzz/artifacts/) and
# logs (build-fuzz/logs/) stay in build-fuzz/. Harnesses run FUZZ_JOBS at a time (default:
# the number of cores). Prints one line per harness, then "N passed, N failed"; exits
# non-zero if anything failed to build, crashed, leaked or hung.
#   FUZZ_SECONDS=8 bash scripts/fuzz.sh            what `make test` runs
#   FUZZ_ONLY="fuzz_http fuzz_cursor" bash scripts/fuzz.sh
set -uo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)
cd "$ROOT" || exit 1

SECS=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
BUILD=build-fuzz
ALL=(fuzz_http fuzz_json_body fuzz_cursor fuzz_config fuzz_router fuzz_ratelimit_local
    fuzz_static_path fuzz_ws fuzz_live_message)
read -r -a HARNESSES <<<"${FUZZ_ONLY:-${ALL[*]}}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
# The build compiles UBSan recoverable (the root CMakeLists): stop at the first report.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang is missing (scripts/deps.sh test installs clang and libclang-rt-14-dev)" >&2
    exit 1
fi

start=$(date +%s)
if ! cmake -S . -B "$BUILD" --log-level=WARNING -DCMAKE_C_COMPILER=clang -DPULSE_FUZZ=ON \
    -DPULSE_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo ||
    ! cmake --build "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" --target fuzzers; then
    echo "fuzz: the build failed"
    echo "0 passed, ${#HARNESSES[@]} failed"
    exit 1
fi
echo "fuzz: built in $(($(date +%s) - start)) s; ${SECS} s per harness, $JOBS at a time"

mkdir -p "$BUILD/corpus" "$BUILD/artifacts" "$BUILD/logs"

# Runs one harness; its verdict goes to $BUILD/logs/<h>.result as one line.
run_one() {
    local h=$1 bin=$BUILD/tests/fuzz/$1 log=$BUILD/logs/$1.log
    local corpus=$BUILD/corpus/$h art=$BUILD/artifacts/$h/ result=$BUILD/logs/$1.result
    mkdir -p "$corpus" "$art"
    : >"$log"
    if [ ! -x "$bin" ]; then
        echo "$h: FAILED, not built" >"$result"
        return
    fi
    # 1. the regressions: each must run clean
    shopt -s nullglob
    local regs=(tests/fuzz/regressions/"$h"/*)
    shopt -u nullglob
    local reg bad=()
    for reg in "${regs[@]}"; do
        "$bin" -artifact_prefix="$art" "$reg" >>"$log" 2>&1 || bad+=("$reg")
    done
    if [ ${#bad[@]} -gt 0 ]; then
        echo "$h: FAILED, regression inputs crash: ${bad[*]} (see $log)" >"$result"
        return
    fi
    # 2. fuzzing on the working corpus (the seeds are added to it on every run)
    cp -n tests/fuzz/corpus/"$h"/* "$corpus"/ 2>/dev/null
    local dict=()
    [ -f tests/fuzz/"$h".dict ] && dict=(-dict=tests/fuzz/"$h".dict)
    "$bin" -max_total_time="$SECS" -print_final_stats=1 -timeout=20 -rss_limit_mb=2048 \
        -artifact_prefix="$art" "${dict[@]}" "$corpus" >>"$log" 2>&1
    local rc=$?
    local runs
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        echo "$h: ${runs:-?} runs, no crash" >"$result"
    else
        local crash
        crash=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -n 1)
        echo "$h: FAILED after ${runs:-?} runs (exit $rc)${crash:+, input saved as $crash}" >"$result"
    fi
}

active=0
for h in "${HARNESSES[@]}"; do
    run_one "$h" &
    active=$((active + 1))
    if [ "$active" -ge "$JOBS" ]; then
        wait -n
        active=$((active - 1))
    fi
done
wait

passed=0
failed=0
for h in "${HARNESSES[@]}"; do
    line=$(cat "$BUILD/logs/$h.result" 2>/dev/null || echo "$h: FAILED, no result")
    echo "$line"
    case "$line" in
        *FAILED*)
            failed=$((failed + 1))
            # the sanitizer's or the harness's own words, for the reader of `make test`
            grep -a -m 8 -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_[a-z_]+: )|runtime error' \
                "$BUILD/logs/$h.log" | LC_ALL=C tr -c '[:print:]\n' '?' | sed 's/^/    /' |
                cut -c1-300
            ;;
        *) passed=$((passed + 1)) ;;
    esac
done
echo "fuzz: $(($(date +%s) - start)) s in all"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
