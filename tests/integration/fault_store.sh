#!/usr/bin/env bash
# Fault injection, store side. Redis killed (SIGKILL) and restarted mid-load: with
# store.on_failure closed the gateway refuses with 503 while it is down, with open it keeps
# serving; either way, after recovery the usage recorded equals the usage served and nothing
# stays reserved — also when Redis comes back slowly, answering LOADING for seconds. The memory store's journal on a full disk (RLIMIT_FSIZE, `ulimit -f`, as
# an unprivileged stand-in for ENOSPC): the gateway survives, refuses what it cannot record
# with 503, serves again once the disk frees (prlimit), and a restart on the same journal
# loses no usage it served. TAP.
. "$(dirname "$0")/lib.sh"

export ADMIN_TOKEN=fault-admin-token
command -v redis-server >/dev/null || sl_bail "redis-server is installed"
sl_start_mock --set usage=true --set prompt_tokens=10 --set completion_tokens=5 || sl_bail "mock upstream starts"
BODY='{"model":"demo","messages":[{"role":"user","content":"hi"}],"max_tokens":5}'

config() { # STORE-YAML
    cat <<CONF
listen: [ { address: 127.0.0.1:$GW_PORT } ]
server: { workers: 2 }
log: { access_log: "off" }
admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: ADMIN_TOKEN }
store: $1
upstreams:
  mock: { type: openai, base_url: $MOCK_URL/v1, timeouts: { connect: 2s, first_byte: 5s, total: 10s } }
models:
  demo: { targets: [ { upstream: mock, model: mock-model } ] }
consumers:
  acme: { quota: { tokens: 100000000, window: month } }
plugins:
  - auth
  - quota
CONF
}
usage_of() { curl -sS --max-time 5 -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT/admin/v1/usage?consumer=acme" | sl_json "d['data'][0]['$1']"; }

# load N-LOOPS OUTFILE: sequential requests in N loops until $SL_TMP/stop exists; one
# "CODE ERROR-CODE" line per answer
load() {
    rm -f "$SL_TMP/stop"
    local i
    for ((i = 0; i < $1; i++)); do
        (
            while [ ! -e "$SL_TMP/stop" ]; do
                code=$(curl -sS --max-time 15 -o "$SL_TMP/l$i.out" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
                    -H 'content-type: application/json' --data "$BODY" "$GW_URL/v1/chat/completions" 2>/dev/null)
                err=$(sl_json 'd.get("error",{}).get("code","-")' <"$SL_TMP/l$i.out" 2>/dev/null) || err=-
                printf '%s %s\n' "$code" "$err"   # one write: lines of the loops never mix
            done >>"$2"
        ) &
        LOAD_PIDS+=($!)
    done
}
stop_load() { touch "$SL_TMP/stop"; local p; for p in "${LOAD_PIDS[@]}"; do wait "$p"; done; LOAD_PIDS=(); }
LOAD_PIDS=()
count() { grep -c "^$1 " "$2"; }   # CODE FILE
served_tokens() { echo $(( $(count 200 "$1") * 15 )); }
# usage settles after the answers: wait until it equals what was served (or give up after 10 s)
settled() { sl_wait_for 10 sh -c "[ \"\$(curl -sS -H 'Authorization: Bearer $ADMIN_TOKEN' 'http://127.0.0.1:$ADMIN_PORT/admin/v1/usage?consumer=acme' | $SL_PY -c 'import json,sys; print(json.load(sys.stdin)[\"data\"][0][\"used\"])' 2>/dev/null)\" = $1 ]"; }

REDIS_PORT=$(sl_free_port)
mkdir -p "$SL_TMP/redis"
start_redis() { # [REDIS-OPTION...]
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$SL_TMP/redis" --save '' \
        --appendonly yes --appendfsync always --enable-debug-command local "$@" >>"$SL_TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    sl_track "$REDIS_PID"
    sl_wait_for 10 redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1
}

# redis_outage MODE [loading]: one gateway on redis with on_failure MODE, load, kill, restart.
# With "loading" Redis comes back slowly: 20000 filler keys in its data and 100 us a key to
# load them (key-load-delay), so for ~2 s it accepts connections and answers every command
# with LOADING — the gateway reconnects then and its queued settles meet that answer.
redis_outage() {
    local mode=$1 slow=${2:-} out=$SL_TMP/load-$1${2:+-$2}
    local name=$mode${2:+ ($2)}
    GW_PORT=$(sl_free_port); ADMIN_PORT=$(sl_free_port)
    config "{ backend: redis, on_failure: $mode, redis: { url: \"redis://127.0.0.1:$REDIS_PORT/0\", prefix: \"$mode$slow:\" } }" >"$SL_TMP/$mode$slow.yaml"
    sl_start_gateway "$SL_TMP/$mode$slow.yaml" || { sl_not_ok "$name: gateway on redis starts"; return; }
    KEY=$("$SLUICE" key -c "$SL_TMP/$mode$slow.yaml" issue --consumer acme 2>/dev/null)
    : >"$out"
    load 3 "$out"
    sl_wait_for 10 sh -c "[ \$(grep -c '^200 ' $out) -ge 20 ]"
    if [ -n "$slow" ]; then
        redis-cli -p "$REDIS_PORT" DEBUG POPULATE 20000 filler >/dev/null
        redis-cli -p "$REDIS_PORT" BGREWRITEAOF >/dev/null # the filler into the base file, loaded key by key
        sl_wait_for 20 sh -c "find $SL_TMP/redis -name '*.base.rdb' -size +100k | grep -q . &&
            redis-cli -p $REDIS_PORT INFO persistence | grep -q '^aof_rewrite_in_progress:0' &&
            redis-cli -p $REDIS_PORT INFO persistence | grep -q '^aof_rewrite_scheduled:0'"
    fi
    kill -KILL "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null
    local before=$(wc -l <"$out")
    sl_wait_for 15 sh -c "[ \$(wc -l <$out) -ge $((before + 20)) ]"
    local during
    during=$(tail -n +$((before + 1)) "$out" | head -n 20)
    if [ -n "$slow" ]; then
        local loads took
        loads=$(grep -c 'DB loaded from append only file' "$SL_TMP/redis.log")
        start_redis --key-load-delay 100 # PING answers while it loads
        sl_wait_for 20 sh -c "[ \$(grep -c 'DB loaded from append only file' $SL_TMP/redis.log) -gt $loads ]"
        took=$(grep -o 'DB loaded from append only file: [0-9.]*' "$SL_TMP/redis.log" | tail -n 1 | grep -o '[0-9.]*$')
        sl_check "$name: redis took a while to load (${took:-?} s)" awk -v t="${took:-0}" 'BEGIN { exit !(t >= 0.5) }'
    fi
    [ -n "$slow" ] || start_redis || sl_not_ok "$name: redis restarts"
    # back to normal: 20 more answers after the restart, the last ones 200
    local mark=$(wc -l <"$out")
    sl_wait_for 20 sh -c "[ \$(tail -n +$((mark + 1)) $out | grep -c '^200 ') -ge 20 ]"
    stop_load
    if [ "$mode" = closed ]; then
        sl_like "closed: 503 while redis is down" "$during" '503 '
        sl_check "closed: never a 200 without the store ($(printf '%s' "$during" | sort | uniq -c | tr '\n' ' '))" \
            sh -c "! printf '%s' \"$during\" | grep -vE '^(503|200) '"
    else
        sl_is "$name: served while redis is down" "$(printf '%s\n' "$during" | grep -c '^200 ')" 20
    fi
    sl_check "$name: served again after redis restarts" [ "$(tail -n 5 "$out" | grep -c '^200 ')" -ge 1 ]
    local want
    want=$(served_tokens "$out")
    settled "$want"
    sl_is "$name: usage after recovery = usage served ($(count 200 "$out") answers)" "$(usage_of used)" "$want"
    # A reserve that Redis ran (and, with appendfsync always, kept) just before it was killed
    # lost its reply: the gateway reserved locally instead, and the one in Redis stays until
    # its deadline (the store's reservation TTL, 15 min). At most one per load loop (3), of 24
    # tokens each here (prompt estimate 19 + max_tokens 5); anything else is a leak.
    local resv
    resv=$(usage_of reserved)
    [ "$resv" = 0 ] || sl_diag "$name: $resv tokens reserved by commands Redis ran as it was killed (reclaimed at their deadline)"
    sl_check "$name: nothing stays reserved but what Redis ran as it died (≤ 3 × 24: $resv)" [ "${resv:-999}" -le 72 ]
    sl_gw_alive "$name: gateway still running"
    sl_stop "$GW_PID"
}
start_redis || sl_bail "redis-server starts"
redis_outage closed
redis_outage open
redis_outage open loading

# ---- journal on a full disk ----
GW_PORT=$(sl_free_port); ADMIN_PORT=$(sl_free_port)
config "{ backend: memory, path: $SL_TMP/full.journal }" >"$SL_TMP/full.yaml"
GW_LOG=$SL_TMP/full-gw.log
# 4 KiB of journal at most (about 150 requests); SIGXFSZ is left at its default, as a service manager leaves it
(ulimit -S -f 4; exec "$SLUICE" serve -c "$SL_TMP/full.yaml") >"$GW_LOG" 2>&1 &
GW_PID=$!; sl_track "$GW_PID"; GW_URL=http://127.0.0.1:$GW_PORT
sl_wait_for 15 sh -c "curl -s -o /dev/null http://127.0.0.1:$ADMIN_PORT/healthz" || sl_bail "gateway (ulimit -f 4) starts"
KEY=$("$SLUICE" key -c "$SL_TMP/full.yaml" issue --consumer acme 2>/dev/null)
out=$SL_TMP/load-full
: >"$out"
load 2 "$out"
sl_wait_for 60 sh -c "grep -q '^503 ' $out || ! kill -0 $GW_PID 2>/dev/null"
sleep 0.5
stop_load
sl_gw_alive "disk full: gateway still running"
sl_like "disk full: requests it cannot record are refused with 503" "$(grep -v '^200 ' "$out" | sort | uniq -c | tr '\n' ' ')" '^ *[0-9]+ 503 [a-z_]+ *$'
sl_is "disk full: the admin API still answers" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/healthz")" 200
# the disk frees: the records kept in memory are written and requests are served again
prlimit --pid "$GW_PID" --fsize=unlimited: # the soft limit only, as ulimit -S set it
sl_wait_for 10 sh -c "[ \$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $KEY' -H 'content-type: application/json' --data '$BODY' $GW_URL/v1/chat/completions) = 200 ] && echo '200 -' >>$out"
sl_is "disk freed: served again without a restart" "$(tail -n 1 "$out")" "200 -"
served=$(served_tokens "$out")
sl_stop "$GW_PID"
GW_PORT=$(sl_free_port); ADMIN_PORT=$(sl_free_port)
config "{ backend: memory, path: $SL_TMP/full.journal }" >"$SL_TMP/full2.yaml"
sl_start_gateway "$SL_TMP/full2.yaml" || sl_bail "gateway restarts on the journal written to a full disk"
sl_is "disk full: after a restart, usage recorded = usage served ($(count 200 "$out") answers)" "$(usage_of used)" "$served"
sl_done
