#!/usr/bin/env bash
# The engine pool behind the real gateway: `type: engine` upstreams run sluice-engine
# processes (CPU backend, the demo model) on unix sockets; requests wait for /health, go to
# the least busy worker, survive a worker crash (restarted with backoff), fall back to a
# hosted model when no worker is up, and no engine outlives the gateway (SIGTERM or kill -9).
# Prints TAP.
. "$(dirname "$0")/lib.sh"

PHRASE="Hello from the sluice demo model."
sl_demo_model "$SL_TMP/demo" --phrase "$PHRASE"

sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
ADMIN_PORT=$(sl_free_port)
export ADMIN_TOKEN=engine-test-admin
SL_CONF_UPSTREAMS="  local:
    type: engine
    model: $SL_TMP/demo
    served_model_name: demo
    workers: 2
    backend: cpu
    args: [--max-batch, \"4\"]
  hosted:
    type: openai
    base_url: $MOCK_URL/v1
    timeouts: { connect: 2s, first_byte: 10s, total: 60s }"
SL_CONF_MODELS="  demo:
    targets: [ { upstream: local, model: demo } ]
    fallback: [ hosted-small ]
  hosted-small: { targets: [ { upstream: hosted, model: small-model } ] }"
SL_CONF_EXTRA="admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: ADMIN_TOKEN }
plugins:
  - route: { circuit: { failures: 0 } }"
sl_gw_up

admin() { curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT$1"; }
workers() { admin /admin/v1/upstreams | sl_json "[u for u in d['upstreams'] if u['name'] == 'local'][0]['workers']"; }
n_ready() { workers | sl_json 'len([w for w in d if w["state"] == "ready"])'; }
wait_ready() { # N
    local i
    for ((i = 0; i < 600; i++)); do [ "$(n_ready)" = "$1" ] && return 0; sleep 0.1; done
    return 1
}
sl_check "both engine workers become ready (/health)" wait_ready 2
pids=$(workers | sl_json '" ".join(str(w["pid"]) for w in d)')
sl_like "each worker runs sluice-engine on a unix socket" \
    "$(for p in $pids; do tr '\0' ' ' </proc/$p/cmdline; echo; done | grep -c -- '--listen unix:')" '^2$'

sl_http POST /v1/chat/completions '{"model":"demo","messages":[{"role":"user","content":"hi"}],"max_tokens":32}'
sl_is "chat through the gateway to the engine" "$HTTP_CODE $(echo "$HTTP_BODY" | sl_json 'd["choices"][0]["message"]["content"]')" "200 $PHRASE"
sl_is "x-sluice-upstream names the engine upstream" "$(sl_header x-sluice-upstream)" "local/demo"
sl_is "usage comes from the engine" "$(echo "$HTTP_BODY" | sl_json 'd["usage"]["completion_tokens"] > 0')" "true"
curl -sN --max-time 60 "$GW_URL/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}' >"$SL_TMP/s.sse"
sl_is "stream through the gateway to the engine" "$(sl_sse_summary "$SL_TMP/s.sse" | sl_json '[d["text"], d["done_last"]]')" \
    "[\"$PHRASE\", true]"

# several at once: both workers take requests
seq 1 8 | xargs -P 8 -I{} curl -s -o /dev/null --max-time 60 "$GW_URL/v1/chat/completions" \
    -H 'content-type: application/json' -d '{"model":"demo","messages":[{"role":"user","content":"hi"}],"max_tokens":32}'
sl_is "no request left outstanding" "$(workers | sl_json 'sum(w["outstanding"] for w in d)')" 0

# a crash: routed around, restarted
victim=${pids%% *}
kill -KILL "$victim"
sleep 0.3
sl_http POST /v1/chat/completions '{"model":"demo","messages":[{"role":"user","content":"hi"}],"max_tokens":32}'
sl_is "one worker killed: the other serves" "$HTTP_CODE $(sl_header x-sluice-upstream)" "200 local/demo"
sl_check "the killed worker restarts and becomes ready again" wait_ready 2
sl_is "its restart is counted" "$(workers | sl_json 'sum(w["restarts"] for w in d)')" 1
sl_check "the gateway logged the crash" grep -q 'engine local#.*killed by signal 9' "$GW_LOG"

# none up: the fallback serves
pids=$(workers | sl_json '" ".join(str(w["pid"]) for w in d)')
kill -KILL $pids
sleep 0.3
sl_http POST /v1/chat/completions '{"model":"demo","messages":[{"role":"user","content":"hi"}]}'
sl_is "no engine worker up: the hosted fallback serves" "$HTTP_CODE $(sl_header x-sluice-upstream) $(sl_header x-sluice-fallback)" \
    "200 hosted/small-model 1"
sl_check "both come back" wait_ready 2

# no orphans: SIGTERM stops the engines after the gateway drained; kill -9 takes them too
pids=$(workers | sl_json '" ".join(str(w["pid"]) for w in d)')
kill -TERM "$GW_PID"
wait "$GW_PID"; rc=$?
sl_is "SIGTERM: the gateway exits 0" "$rc" 0
alive=0; for p in $pids; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
sl_is "SIGTERM: no engine process left" "$alive" 0
sl_start_gateway "$SL_TMP/sluice.yaml" || sl_bail "gateway starts again"
sl_check "engines ready again" wait_ready 2
pids=$(workers | sl_json '" ".join(str(w["pid"]) for w in d)')
kill -KILL "$GW_PID"; wait "$GW_PID" 2>/dev/null
gone() { local p; for p in $pids; do kill -0 "$p" 2>/dev/null && return 1; done; return 0; }
sl_check "kill -9 of the gateway: its engines die with it" sl_wait_for 5 gone

sl_done
