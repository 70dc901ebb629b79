#!/usr/bin/env bash
# tests/fuzz/run.sh — build the libFuzzer targets with clang (ASan + UBSan) and run each for
# a bounded time from its committed seed corpus. Prints TAP: "ok N - fuzz TARGET 20s, no
# crash (E execs)". A crasher is copied to tests/fuzz/regressions/TARGET/ (replayed by the
# plain build's fuzz_replay_* tests once fixed) and the line says "not ok".
#
# usage: tests/fuzz/run.sh [SECONDS_EACH [TARGET...]]      (default 20 s, every target)
# env:   FUZZ_BUILD=build-fuzz (clang build folder)  FUZZ_JOBS=1
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECS=${1:-20}
shift $(($# > 0 ? 1 : 0))
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(http sse openai_json config jwt tokenizer)
BUILD=${FUZZ_BUILD:-build-fuzz}
export SL_SOURCE_ROOT=$ROOT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

command -v clang >/dev/null || { echo "not ok 1 - fuzz build: clang not found (apt-get install clang)"; echo "1..1"; exit 1; }
if [ ! -d "$BUILD" ]; then
    CC=clang meson setup "$BUILD" -Dcuda=disabled -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args="-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined" >&2 \
        || { echo "not ok 1 - fuzz build: meson setup failed"; echo "1..1"; exit 1; }
fi
meson compile -C "$BUILD" "${TARGETS[@]/#/fuzz_}" >&2 \
    || { echo "not ok 1 - fuzz build: compile failed"; echo "1..1"; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz.XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0 failed=0
for t in "${TARGETS[@]}"; do
    n=$((n + 1))
    mkdir -p "$T/$t"
    log=$T/$t.log
    # the new inputs go to a scratch corpus; the committed seeds are read only
    "$BUILD/tests/fuzz/fuzz_$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 -artifact_prefix="$T/$t/" "$T/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    crashes=$(ls "$T/$t"/crash-* "$T/$t"/leak-* "$T/$t"/timeout-* "$T/$t"/oom-* 2>/dev/null)
    if [ $rc -eq 0 ] && [ -z "$crashes" ]; then
        echo "ok $n - fuzz $t ${SECS}s, no crash (${execs:-?} execs)"
    else
        failed=$((failed + 1))
        echo "not ok $n - fuzz $t ${SECS}s: exit $rc"
        mkdir -p "tests/fuzz/regressions/$t"
        for c in $crashes; do cp "$c" "tests/fuzz/regressions/$t/" && echo "# kept tests/fuzz/regressions/$t/$(basename "$c")"; done
        grep -E "ERROR|SUMMARY|^ +#[0-9] " "$log" | head -n 12 | sed 's/^/# /'
    fi
done
echo "1..$n"
[ $failed -eq 0 ]
