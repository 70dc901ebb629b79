#!/usr/bin/env bash
# Routing through the real gateway in front of the mock upstream: weighted canary split,
# aliases, model profiles, fallback chains (what counts as a failure, never a target twice,
# Retry-After, attempt limit), streams falling back before their first byte, circuit
# breakers and their state on the admin API, target pinning. Prints TAP.
. "$(dirname "$0")/lib.sh"

sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
ADMIN_PORT=$(sl_free_port)
DEAD_PORT=$(sl_free_port)   # nothing listens here
export ADMIN_TOKEN=admin-secret-for-tests
up() { # name base_url
    printf '  %s:\n    type: openai\n    base_url: %s\n    timeouts: { connect: 1s, first_byte: 5s, total: 30s }\n' "$1" "$2"
}
SL_CONF_UPSTREAMS="$(up a "$MOCK_URL/v1")
$(up b "$MOCK_URL/v1")
$(up c "$MOCK_URL/v1")
$(up dead "http://127.0.0.1:$DEAD_PORT/v1")
$(up x1 "$MOCK_URL/v1")
$(up x2 "$MOCK_URL/v1")
$(up x3 "$MOCK_URL/v1")"
SL_CONF_MODELS="  canary:
    targets:
      - { upstream: a, model: stable, weight: 3 }
      - { upstream: b, model: canary, weight: 1 }
  big:
    targets: [ { upstream: a, model: big-model } ]
    fallback: [ small, tiny ]
  small: { targets: [ { upstream: b, model: small-model } ] }
  tiny: { targets: [ { upstream: c, model: tiny-model } ] }
  gpt-4: { alias: big }
  r1:
    targets: [ { upstream: c, model: r1-model } ]
    profile: { temperature: 0.6, max_tokens: 333, max_tokens_limit: 1000, system_prompt: merge, force_thinking: true }
  downed:
    targets: [ { upstream: dead, model: x } ]
    fallback: [ small ]
  chain3:
    targets: [ { upstream: x1, model: f1 } ]
    fallback: [ chain3b, chain3c ]
  chain3b: { targets: [ { upstream: x2, model: f2 } ] }
  chain3c: { targets: [ { upstream: x3, model: f3 } ] }
  chain4:
    targets: [ { upstream: x1, model: g1 } ]
    fallback: [ chain4b, chain4c, chain4d ]
  chain4b: { targets: [ { upstream: x2, model: g2 } ] }
  chain4c: { targets: [ { upstream: x3, model: g3 } ] }
  chain4d: { targets: [ { upstream: x1, model: g4 } ] }
  sameup:
    targets: [ { upstream: a, model: ra1, weight: 100 }, { upstream: a, model: ra2, weight: 1 } ]"
SL_CONF_EXTRA="admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: ADMIN_TOKEN }
plugins:
  - route:
      max_attempts: 3
      backoff: { base: 10ms, max: 50ms }
      max_retry_after: 3s
      circuit: { failures: 2, cooldown: 2s }"
SL_CONF_SERVER="{ workers: 2 }"
sl_gw_up

chat() { # model [extra json fields]
    sl_http POST /v1/chat/completions "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]${2:+,$2}}"
}
models_seen() { # how many requests the mock saw since id $1, per upstream model: "m1 m2 ..."
    sl_mock_requests "$MOCK_URL" "$1" | sl_json '" ".join(r["body"]["model"] for r in d if r["path"].startswith("/v1/"))'
}
last_id() { sl_mock_requests | sl_json 'd[-1]["id"] if d else 0'; }

# ---- weighted canary ----
since=$(last_id)
n_stable=0; n_canary=0
for i in $(seq 1 40); do
    chat canary
    case "$(sl_header x-sluice-upstream)" in a/stable) n_stable=$((n_stable + 1)) ;; b/canary) n_canary=$((n_canary + 1)) ;; esac
done
sl_is "canary 3:1 over 40 requests: 30 stable" "$n_stable" 30
sl_is "canary 3:1 over 40 requests: 10 canary" "$n_canary" 10

# ---- alias ----
chat gpt-4
sl_is "alias: gpt-4 is served by big's target" "$(sl_header x-sluice-upstream)" "a/big-model"
sl_is "alias: no fallback header when the first target serves" "$(sl_header x-sluice-fallback)" ""

# ---- profiles ----
since=$(last_id)
sl_http POST /v1/chat/completions '{"model":"r1","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"2+2?"}]}'
body=$(sl_mock_requests "$MOCK_URL" "$since" | sl_json 'd[-1]["body"]')
sl_is "profile: default temperature" "$(echo "$body" | sl_json 'd["temperature"]')" "0.6"
sl_is "profile: default max_tokens" "$(echo "$body" | sl_json 'd["max_tokens"]')" "333"
sl_is "profile: system prompt merged into the first user message" \
    "$(echo "$body" | sl_json '[m["role"] for m in d["messages"]][:1] + [d["messages"][0]["content"]]')" \
    '["user", "You are terse.\n\n2+2?"]'
sl_is "profile: force_thinking prefills <think>" \
    "$(echo "$body" | sl_json '[d["messages"][-1]["role"], d["messages"][-1]["content"], d["continue_final_message"]]')" \
    '["assistant", "<think>\n", true]'
since=$(last_id)
sl_http POST /v1/chat/completions '{"model":"r1","max_tokens":5000,"temperature":0.1,"messages":[{"role":"user","content":"x"}]}'
body=$(sl_mock_requests "$MOCK_URL" "$since" | sl_json 'd[-1]["body"]')
sl_is "profile: max_tokens lowered to max_tokens_limit" "$(echo "$body" | sl_json 'd["max_tokens"]')" "1000"
sl_is "profile: the client's temperature wins over the default" "$(echo "$body" | sl_json 'd["temperature"]')" "0.1"
# the profile's edits are made in the client's own text: its spelling is kept around them
since=$(last_id)
sl_http POST /v1/chat/completions '{ "model": "r1",  "x": 1.50, "messages": [ {"role": "user", "content": "caf\u00e9"} ] }'
text=$(sl_mock_requests "$MOCK_URL" "$since" | sl_json 'd[-1]["text"]')
sl_is "profile: edits made in the client's text" "$text" \
    '{ "model": "r1-model",  "x": 1.50, "messages": [{"role": "user", "content": "caf\u00e9"},{"role":"assistant","content":"<think>\n","prefix":true}] ,"temperature":0.59999999999999998,"max_tokens":333,"continue_final_message":true,"add_generation_prompt":false}'

# ---- fallback on 5xx ----
sl_mock_config '{"by_model":{"big-model":{"status":503}}}'
since=$(last_id)
chat big
sl_is "fallback: 503 from big → served by small" "$HTTP_CODE $(sl_header x-sluice-upstream)" "200 b/small-model"
sl_is "fallback: x-sluice-fallback counts the failed targets" "$(sl_header x-sluice-fallback)" "1"
sl_is "fallback: upstream saw big then small, once each" "$(models_seen "$since")" "big-model small-model"
sl_check "fallback: access log names the path taken" sl_wait_for 5 grep -q '"attempts":\["a/big-model: upstream a answered 503"\]' "$SL_TMP/access.log"

# ---- 4xx other than 429 never falls back ----
sl_mock_config '{"by_model":{"big-model":{"status":400,"error_message":"bad param"}}}'
since=$(last_id)
chat big
sl_is "no fallback on 400: the client gets the upstream's 400" "$HTTP_CODE" "400"
sl_is "no fallback on 400: only big was tried" "$(models_seen "$since")" "big-model"

# ---- the whole chain, and the attempt limit (upstreams x1-x3: their breakers open here) ----
sl_mock_config '{"by_model":{"f1":{"status":500},"f2":{"status":502},"f3":{"status":500}}}'
since=$(last_id)
chat chain3
sl_is "every target fails: 502 upstream_error" "$HTTP_CODE $(echo "$HTTP_BODY" | sl_json 'd["error"]["code"]')" "502 upstream_error"
sl_is "every target fails: each tried once, in order" "$(models_seen "$since")" "f1 f2 f3"
sl_mock_config '{"by_model":{"g1":{"status":500},"g2":{"status":500},"g3":{"status":500},"g4":{"status":500}}}'
since=$(last_id)
chat chain4
sl_is "max_attempts 3: a plan of 4 failing targets stops after 3" "$(models_seen "$since")" "g1 g2 g3"
sl_mock_reset

# ---- connection refused falls back ----
sl_mock_reset
since=$(last_id)
chat downed
sl_is "connect refused → fallback serves" "$HTTP_CODE $(sl_header x-sluice-upstream)" "200 b/small-model"

# ---- Retry-After on 429, next target on the same upstream ----
sl_mock_config '{"by_model":{"ra1":{"status":429,"retry_after":"1"}}}'
since=$(last_id)
chat sameup
times=$(sl_mock_requests "$MOCK_URL" "$since" | sl_json '[r["time"] for r in d if r["path"].startswith("/v1/")]')
sl_is "429 → the same upstream's other target serves" "$HTTP_CODE $(sl_header x-sluice-upstream)" "200 a/ra2"
gap=$(echo "$times" | sl_json 'int(d[1] - d[0]) if len(d) == 2 else -1')
sl_check "Retry-After: 1 honoured before the retry on the same upstream (gap ${gap} ms)" [ "$gap" -ge 950 ]
sl_mock_reset

# ---- streams fall back before their first byte ----
sl_mock_config '{"by_model":{"big-model":{"close_before_headers":true}}}'
curl -sN --max-time 20 "$GW_URL/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"big","stream":true,"messages":[{"role":"user","content":"hi"}]}' >"$SL_TMP/s1.sse"
sum=$(sl_sse_summary "$SL_TMP/s1.sse")
sl_is "stream: upstream gone before headers → fallback streams the answer" \
    "$(echo "$sum" | sl_json '[d["text"], d["done_last"], d["errors"]]')" '["hellohellohellohellohello", true, 0]'
sl_mock_config '{"by_model":{"big-model":{"stream":true,"reset_after_chunks":2}}}'
since=$(last_id)
curl -sN --max-time 20 "$GW_URL/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"big","stream":true,"messages":[{"role":"user","content":"hi"}]}' >"$SL_TMP/s2.sse"
sum=$(sl_sse_summary "$SL_TMP/s2.sse")
sl_is "stream: failure after the first byte → no fallback, error event, then [DONE]" \
    "$(echo "$sum" | sl_json '[d["errors"], d["done_last"]]')" '[1, true]'
sl_is "stream: after the first byte only the first target was tried" "$(models_seen "$since")" "big-model"
sl_mock_reset

# ---- circuit breaker ----
admin() { curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT$1"; }
circuit() { admin /admin/v1/upstreams | sl_json "[u['circuit'] for u in d['upstreams'] if u['name'] == '$1'][0]"; }
chat downed; chat downed
sl_is "circuit: open after 2 consecutive failures" "$(circuit dead)" "open"
chat downed
sl_is "circuit open: the request is served by the fallback" "$HTTP_CODE $(sl_header x-sluice-fallback)" "200 1"
sl_check "circuit open: the dead upstream was skipped" sl_wait_for 5 grep -q '"dead/x: circuit open"' "$SL_TMP/access.log"
sleep 2.2
sl_is "circuit: half-open after the cool-down" "$(circuit dead)" "half_open"
chat downed
sl_is "circuit: the failed probe opens it again" "$(circuit dead)" "open"
sl_is "admin: other upstreams stay closed" "$(circuit b)" "closed"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/admin/v1/upstreams")
sl_is "admin: no token → 401" "$code" "401"

# ---- pinning a target needs allow_target_pin ----
sl_http POST /v1/chat/completions '{"model":"canary","messages":[]}' -H 'x-sluice-target: b/canary'
sl_is "pin header without allow_target_pin: 403" "$HTTP_CODE $(echo "$HTTP_BODY" | sl_json 'd["error"]["code"]')" "403 target_pin_not_allowed"

sl_done
