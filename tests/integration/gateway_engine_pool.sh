#!/usr/bin/env bash
# The engine pool under change: a worker killed mid-stream (that client gets an error event
# and [DONE], later requests succeed, the worker comes back); a reload from 2 workers to 1
# while streams are in flight drops none of them (the retired worker drains, then stops); a
# reload back to 2 starts one; a changed launch setting rolls the workers (the old ones
# serve until their replacements are ready). Prints TAP.
. "$(dirname "$0")/lib.sh"

# no phrase: the model writes noise until max_tokens, so a stream lasts as long as we ask
sl_demo_model "$SL_TMP/noise"

GW_PORT=$(sl_free_port)
ADMIN_PORT=$(sl_free_port)
export ADMIN_TOKEN=pool-test-admin
conf() { # WORKERS [MORE ENGINE ARGS, as YAML list items]
    SL_CONF_UPSTREAMS="  local:
    type: engine
    model: $SL_TMP/noise
    served_model_name: noise
    workers: $1
    backend: cpu
    args: [--max-batch, \"8\", --threads, \"1\"${2:+, $2}]"
    SL_CONF_MODELS="  noise: { targets: [ { upstream: local, model: noise } ] }"
    SL_CONF_EXTRA="admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: ADMIN_TOKEN }
plugins:
  - route: { circuit: { failures: 0 } }"
    sl_gateway_config >"$SL_TMP/sluice.yaml.new" && mv "$SL_TMP/sluice.yaml.new" "$SL_TMP/sluice.yaml"
}
conf 2
sl_start_gateway "$SL_TMP/sluice.yaml" || sl_bail "gateway starts"

admin() { curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT$1"; }
workers() { admin /admin/v1/upstreams | sl_json "[u for u in d['upstreams'] if u['name'] == 'local'][0]['workers']"; }
count() { workers | sl_json "len([w for w in d if w['state'] $1])"; }
wait_count() { # N CONDITION
    local i
    for ((i = 0; i < 900; i++)); do [ "$(count "$2")" = "$1" ] && return 0; sleep 0.1; done
    return 1
}
pids() { workers | sl_json '" ".join(str(w["pid"]) for w in d if w["pid"])'; }
stream() { # OUT MAX_TOKENS
    curl -sN --max-time 600 "$GW_URL/v1/chat/completions" -H 'content-type: application/json' \
        -d "{\"model\":\"noise\",\"stream\":true,\"max_tokens\":$2,\"messages\":[{\"role\":\"user\",\"content\":\"go\"}]}" >"$1"
}
events() { grep -c '^data: ' "$1" 2>/dev/null; }
has_events() { [ "$(events "$1")" -ge "$2" ]; }
in_flight() { [ "$(workers | sl_json 'sum(w["outstanding"] for w in d)')" -ge "$1" ]; }
total() { [ "$(workers | sl_json 'len(d)')" = "$1" ]; }
sl_check "two engine workers ready" wait_count 2 "== 'ready'"
# How fast this engine build writes here (sanitizer builds are many times slower): the
# streams below are sized to last about 10 s, so a reload lands while they run.
t0=$(date +%s%N)
sl_http POST /v1/chat/completions '{"model":"noise","max_tokens":200,"messages":[{"role":"user","content":"hi"}]}'
ms=$((($(date +%s%N) - t0) / 1000000 + 1))
LONG=$((200 * 10000 / ms)); [ "$LONG" -lt 100 ] && LONG=100; [ "$LONG" -gt 3000 ] && LONG=3000
sl_diag "200 tokens in $ms ms: streams of $LONG tokens"

# ---- SIGKILL of the worker serving a stream ----
stream "$SL_TMP/killed.sse" 20000 &
cpid=$!
sl_wait_for 60 has_events "$SL_TMP/killed.sse" 5
busy=$(workers | sl_json '" ".join(str(w["pid"]) for w in d if w["outstanding"] > 0)')
sl_like "the stream runs on one worker" "$busy" '^[0-9]+$'
kill -KILL "$busy"
wait "$cpid"
sum=$(sl_sse_summary "$SL_TMP/killed.sse")
sl_is "killed mid-stream: the client gets one error event, then [DONE]" \
    "$(echo "$sum" | sl_json '[d["errors"], d["done_last"], d["bad_json"]]')" "[1, true, 0]"
sl_check "killed mid-stream: tokens came before the error" test "$(echo "$sum" | sl_json 'd["events"]')" -ge 6
sl_http POST /v1/chat/completions '{"model":"noise","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
sl_is "killed mid-stream: the next request is served by the other worker" "$HTTP_CODE" 200
sl_check "the killed worker comes back" wait_count 2 "== 'ready'"
sl_check "the gateway logged the kill" grep -q 'engine local#.*killed by signal 9' "$GW_LOG"

# ---- reload 2 -> 1 workers while 6 streams run ----
before=$(pids)
for i in 1 2 3 4 5 6; do stream "$SL_TMP/r$i.sse" "$LONG" & eval "sp$i=\$!"; done
sl_wait_for 60 in_flight 6
for i in 1 2 3 4 5 6; do sl_wait_for 60 has_events "$SL_TMP/r$i.sse" 2; done
conf 1
kill -HUP "$GW_PID"
sl_check "2 -> 1: one worker drains" wait_count 1 "== 'draining'"
sl_http POST /v1/chat/completions '{"model":"noise","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
sl_is "2 -> 1: a new request during the drain is served" "$HTTP_CODE" 200
broken=0
for i in 1 2 3 4 5 6; do
    eval "wait \$sp$i"
    ok=$(sl_sse_summary "$SL_TMP/r$i.sse" | sl_json 'd["errors"] == 0 and d["done_last"] and d["finish"] in (["length"], ["stop"])')
    [ "$ok" = true ] || { broken=$((broken + 1)); sl_diag "stream $i: $(sl_sse_summary "$SL_TMP/r$i.sse" | sl_json '[d["errors"], d["done_last"], d["finish"], d["events"]]')"; }
done
sl_is "2 -> 1: none of the 6 streams in flight broke" "$broken" 0
sl_check "2 -> 1: the drained worker stops, one stays" sl_wait_for 60 total 1
after=$(pids)
sl_check "2 -> 1: the remaining worker is one of the two that ran (not restarted)" \
    grep -qw "$after" <<<"$before"
sl_check "the gateway logged the drain" grep -q 'engine local#1: fewer workers in the config: draining' "$GW_LOG"
sl_check "the gateway logged the stop" grep -q 'engine local#1: drained and stopped' "$GW_LOG"

# ---- reload 1 -> 2, then a changed setting rolls both ----
conf 2
kill -HUP "$GW_PID"
sl_check "1 -> 2: a second worker starts and becomes ready" wait_count 2 "== 'ready'"
sl_check "1 -> 2: the first worker kept running" grep -qw "$after" <<<"$(pids)"
old=$(pids)
conf 2 '--max-model-len, "512"'
kill -HUP "$GW_PID"
sleep 0.3
sl_http POST /v1/chat/completions '{"model":"noise","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
sl_is "changed engine args: the old workers serve while the new ones start" "$HTTP_CODE" 200
rolled() { [ "$(count "== 'ready'")" = 2 ] && [ "$(count "!= 'ready'")" = 0 ] && ! grep -qw "${old%% *}" <<<"$(pids)"; }
sl_check "changed engine args: both workers replaced by new ones" sl_wait_for 90 rolled
sl_check "the gateway logged the hand-over" grep -q 'engine local#0: its replacement is ready: draining' "$GW_LOG"
sl_like "the new workers run with the new args" "$(tr '\0' ' ' </proc/"$(pids | cut -d' ' -f1)"/cmdline)" '--max-model-len 512'
sl_http POST /v1/chat/completions '{"model":"noise","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
sl_is "after the roll: served" "$HTTP_CODE" 200

# ---- a worker that refuses connections while the pool still counts it ready (died and
# not reaped yet, or its socket gone): the request goes to the other worker ----
sock=$(workers | sl_json 'd[0]["socket"]')
rm -f "$sock"
codes=""
for i in 1 2 3 4; do
    sl_http POST /v1/chat/completions '{"model":"noise","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}'
    codes="$codes$HTTP_CODE "
done
sl_is "a worker refusing connections: every request served by the other one" "$codes" "200 200 200 200 "
if [ "$codes" != "200 200 200 200 " ]; then # once in a CI run under ASan: 200 200 502 503 (the other worker gone?)
    sl_diag "workers now: $(workers)"
    sl_diag "gateway log since the roll: $(sed -n '/its replacement is ready/,$p' "$GW_LOG" | tail -40)"
    sl_diag "access log: $(tail -4 "$SL_TMP/access.log" 2>/dev/null)"
fi

pids_now=$(pids)
kill -TERM "$GW_PID"; wait "$GW_PID"
alive=0; for p in $pids_now; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
sl_is "SIGTERM: no engine process left" "$alive" 0
sl_done
