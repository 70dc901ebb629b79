#!/usr/bin/env bash
# Prefix affinity in the engine pool: a conversation's second turn goes to the worker that
# served its first, where the engine's prefix cache still holds it, even while another
# request keeps that worker the busier one (usage.prompt_tokens_details.cached_tokens > 0).
# With prefix_affinity: 0 the same sequence goes to the least busy worker and finds nothing
# cached: the check can fail. Two CPU workers on the demo model. Prints TAP.
. "$(dirname "$0")/lib.sh"

sl_demo_model "$SL_TMP/noise"

GW_PORT=$(sl_free_port)
ADMIN_PORT=$(sl_free_port)
export ADMIN_TOKEN=affinity-test-admin
conf() { # PREFIX_AFFINITY
    SL_CONF_UPSTREAMS="  local:
    type: engine
    model: $SL_TMP/noise
    served_model_name: noise
    workers: 2
    backend: cpu
    prefix_affinity: $1
    args: [--max-batch, \"8\", --threads, \"1\"]"
    SL_CONF_MODELS="  noise: { targets: [ { upstream: local, model: noise } ] }"
    SL_CONF_EXTRA="admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: ADMIN_TOKEN }"
    sl_gateway_config >"$SL_TMP/sluice.yaml"
}
admin() { curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT$1"; }
workers() { admin /admin/v1/upstreams | sl_json "[u for u in d['upstreams'] if u['name'] == 'local'][0]['workers']"; }
ready() { [ "$(workers | sl_json "len([w for w in d if w['state'] == 'ready'])")" = 2 ]; }
in_flight() { [ "$(workers | sl_json 'sum(w["outstanding"] for w in d)')" = "$1" ]; }
chat() { # MESSAGES-JSON: sets HTTP_CODE, HTTP_BODY
    sl_http POST /v1/chat/completions "{\"model\":\"noise\",\"max_tokens\":4,\"temperature\":0,\"messages\":$1}"
}

# CONVERSATIONS: for each, turn 1 on idle workers, then a long stream starts, then turn 2
# while it runs. Sets CACHED: how many second turns found their first one cached.
run() {
    local c cached=0 first a s_pid
    for c in 1 2 3 4; do
        first="Conversation number $c. Please read this paragraph about rivers, mountains, old bridges and the people who built them long ago, then answer."
        chat "[{\"role\":\"user\",\"content\":\"$first\"}]"
        [ "$HTTP_CODE" = 200 ] || { sl_diag "turn 1 of $c: $HTTP_CODE $HTTP_BODY"; continue; }
        a=$(echo "$HTTP_BODY" | sl_json 'json.dumps(d["choices"][0]["message"]["content"])')
        curl -sN --max-time 300 "$GW_URL/v1/chat/completions" -H 'content-type: application/json' \
            -d '{"model":"noise","stream":true,"max_tokens":20000,"messages":[{"role":"user","content":"go"}]}' \
            >/dev/null 2>&1 &
        s_pid=$!
        sl_wait_for 60 in_flight 1 || sl_diag "the stream of $c did not start"
        chat "[{\"role\":\"user\",\"content\":\"$first\"},{\"role\":\"assistant\",\"content\":$a},{\"role\":\"user\",\"content\":\"And then?\"}]"
        kill "$s_pid" 2>/dev/null
        wait "$s_pid" 2>/dev/null
        sl_wait_for 60 in_flight 0 || sl_diag "the stream of $c did not end"
        [ -n "${SL_DEBUG:-}" ] && sl_diag "turn 2 of $c: $HTTP_CODE $HTTP_BODY" >&2
        if [ "$HTTP_CODE" = 200 ] &&
            [ "$(echo "$HTTP_BODY" | sl_json 'd["usage"].get("prompt_tokens_details", {}).get("cached_tokens", 0)')" -gt 0 ]; then
            cached=$((cached + 1))
        fi
    done
    CACHED=$cached
}

conf 4
sl_start_gateway "$SL_TMP/sluice.yaml" || sl_bail "gateway starts"
sl_check "two engine workers ready" sl_wait_for 90 ready
run; on=$CACHED
sl_is "prefix_affinity 4: every second turn finds its first one cached" "$on" 4
sl_stop "$GW_PID"

conf 0
sl_start_gateway "$SL_TMP/sluice.yaml" || sl_bail "gateway starts again"
sl_check "prefix_affinity 0: two engine workers ready" sl_wait_for 90 ready
run; off=$CACHED
sl_diag "second turns cached: $on of 4 with affinity, $off of 4 without"
sl_check "prefix_affinity 0: the least busy worker, where turn 1 is not cached" test "$off" -lt "$on"
sl_stop "$GW_PID"
sl_done
