#!/usr/bin/env bash
# The cache plugin through the real gateway in front of the mock upstream, driven with curl:
# a miss then a hit (the upstream sees one request), a stream served from a non-streamed
# entry and the reverse, Cache-Control: no-cache, temperature, errors and cut streams never
# cached, the legacy completions endpoint, embeddings, scope per consumer (a test plugin names the
# consumer, standing in for auth), charge_hits in the access log; then the Redis backend
# against a real redis-server on a free port, Redis stalled and gone (misses, never
# failures). Prints TAP.
. "$(dirname "$0")/lib.sh"

sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
SL_CONF_MODELS="  demo: { targets: [ { upstream: mock, model: mock-model } ] }
  zero: { targets: [ { upstream: mock, model: mock-model } ], profile: { temperature: 0 } }
  alias-of-demo: { alias: demo }"
SL_CONF_EXTRA="plugins:
  - cache: { ttl: 1h, scope: global, max_bytes: 8MiB }"
sl_gw_up

# chat CONTENT [EXTRA JSON FIELDS]: a temperature-0 chat request body
chat() { printf '{"model":"demo","messages":[{"role":"user","content":"%s"}],"temperature":0%s}' "$1" "${2:+,$2}"; }
upstream_count() { sl_mock_requests | sl_json 'len([r for r in d if r["path"].startswith("/v1/")])'; }
content() { sl_json 'd["choices"][0]["message"]["content"]' <<<"$HTTP_BODY"; }
# sse BODY [CURL ARGS...]: a streamed request; SSE_FILE holds the body, SSE (the summary)
# and SSE_CACHE (the x-sluice-cache header) are set.
SSE_N=0
sse() {
    local body=$1 hdr
    shift
    SSE_N=$((SSE_N + 1))
    SSE_FILE=$SL_TMP/sse$SSE_N.txt
    hdr=$SL_TMP/sse$SSE_N.h
    curl -sN --max-time 30 -D "$hdr" -o "$SSE_FILE" -H 'content-type: application/json' --data-binary "$body" \
        "$@" "$GW_URL/v1/chat/completions"
    SSE=$(sl_sse_summary "$SSE_FILE")
    SSE_CACHE=$(tr -d '\r' <"$hdr" | sed -n 's/^[Xx]-[Ss]luice-[Cc]ache: *//p')
}
sj() { sl_json "$1" <<<"$SSE"; }
# gw_alive NAME: the gateway is still running (if not, its log as the diagnostic)
gw_alive() {
    if kill -0 "$GW_PID" 2>/dev/null; then sl_ok "$1"; else sl_not_ok "$1" "the gateway died; its log:
$(tail -n 40 "$GW_LOG")"; fi
}

# ---- miss, then hit ----------------------------------------------------------------------
sl_mock_clear
sl_http POST /v1/chat/completions "$(chat "first question")"
sl_is "miss: 200 from the upstream" "$HTTP_CODE" 200
sl_is "miss: x-sluice-cache: miss" "$(sl_header x-sluice-cache)" miss
first_body=$HTTP_BODY
sl_http POST /v1/chat/completions "$(chat "first question")"
sl_is "hit: 200" "$HTTP_CODE" 200
sl_is "hit: x-sluice-cache: hit" "$(sl_header x-sluice-cache)" hit
sl_is "hit: the upstream saw one request" "$(upstream_count)" 1
sl_is "hit: same body as the original (stored id kept)" \
    "$(sl_json 'json.dumps(d, sort_keys=True)' <<<"$HTTP_BODY")" "$(sl_json 'json.dumps(d, sort_keys=True)' <<<"$first_body")"
sl_like "hit: x-sluice-request-id present" "$(sl_header x-sluice-request-id)" '^req_'

# same meaning, other spelling: key order, whitespace, 0.0, the alias of the same model
sl_http POST /v1/chat/completions '{ "temperature" : 0.0e0, "messages":[{"content":"first question","role":"user"}], "model":"alias-of-demo" }'
sl_is "hit: key order, spacing, number spelling and alias do not matter" "$(sl_header x-sluice-cache) $(upstream_count)" "hit 1"

# ---- a streamed request served from the non-streamed entry ---------------------------------
sse "$(chat "first question" '"stream":true')"
sl_is "stream from body: hit" "$SSE_CACHE" hit
sl_is "stream from body: the same text, finish stop, [DONE] last, no usage unasked" \
    "$(sj '[d["text"], d["finish"], d["done_last"], d["usage"], d["bad_json"], d["errors"]]')" \
    '["hellohellohellohellohello", ["stop"], true, null, 0, 0]'
sl_is "stream from body: first chunk has the assistant role" \
    "$(grep -m1 '^data: {' "$SSE_FILE" | cut -c7- | sl_json 'd["object"]+" "+d["choices"][0]["delta"]["role"]')" \
    "chat.completion.chunk assistant"
sse "$(chat "first question" '"stream":true,"stream_options":{"include_usage":true}')"
sl_is "stream from body: usage chunk when asked" \
    "$(sj 'd["usage"]["total_tokens"]')" "$(sl_json 'd["usage"]["total_tokens"]' <<<"$first_body")"
sl_is "stream from body: still one upstream request" "$(upstream_count)" 1

# ---- a non-streamed request served from a streamed entry -----------------------------------
sl_mock_clear
sse "$(chat "second question" '"stream":true,"mock":{"texts":["Bon","jour"," \u00e0 tous"],"chunks":3}')"
sl_is "stream miss: miss" "$SSE_CACHE" miss
sl_is "stream miss: text as the upstream sent it, no usage chunk (not asked)" \
    "$(sj '[d["text"], d["usage"], d["done_last"]]')" '["Bonjour \u00e0 tous", null, true]'
sl_is "stream miss: the cache asked the upstream for usage" \
    "$(sl_mock_last | sl_json 'd["body"]["stream_options"]["include_usage"]')" true
sl_check "stream miss: no usage field leaks into chunks" bash -c "! grep -q usage '$SSE_FILE'"
sl_http POST /v1/chat/completions "$(chat "second question" '"mock":{"texts":["Bon","jour"," \u00e0 tous"],"chunks":3}')"
sl_is "body from stream: hit" "$(sl_header x-sluice-cache)" hit
sl_is "body from stream: an assembled chat.completion" \
    "$(sl_json '[d["object"], d["choices"][0]["message"]["role"], d["choices"][0]["message"]["content"], d["choices"][0]["finish_reason"]]' <<<"$HTTP_BODY")" \
    '["chat.completion", "assistant", "Bonjour \u00e0 tous", "stop"]'
sl_is "body from stream: usage kept" "$(sl_json 'd["usage"]["completion_tokens"]' <<<"$HTTP_BODY")" 3
sse "$(chat "second question" '"stream":true,"stream_options":{"include_usage":true},"mock":{"texts":["Bon","jour"," \u00e0 tous"],"chunks":3}')"
sl_is "stream from stream: hit with its usage" "$SSE_CACHE $(sj '[d["text"], d["usage"]["completion_tokens"], d["done_last"]]')" \
    'hit ["Bonjour \u00e0 tous", 3, true]'
sl_is "stream from stream: one upstream request in all" "$(upstream_count)" 1

# usage on the finish chunk (DeepSeek's shape): the entry keeps it there, without a second
# usage-only chunk, so a hit reports it once, as the miss did
usage_chunks() { grep -c '"usage":{' "$SSE_FILE"; }
body=$(chat "usage on finish" '"stream":true,"stream_options":{"include_usage":true},"mock":{"chunks":2,"usage_on_finish":true}')
sse "$body"
miss="$SSE_CACHE $(usage_chunks) $(sj 'd["usage"]["completion_tokens"]')"
sse "$body"
sl_is "usage on the finish chunk: once in the miss and once in the hit" "$miss $SSE_CACHE $(usage_chunks) $(sj 'd["usage"]["completion_tokens"]')" \
    "miss 1 2 hit 1 2"

# ---- bypasses ------------------------------------------------------------------------------
sl_mock_clear
sl_http POST /v1/chat/completions "$(chat "first question")" -H 'Cache-Control: no-cache'
sl_is "no-cache: bypass, served by the upstream" "$(sl_header x-sluice-cache) $HTTP_CODE $(upstream_count)" "bypass 200 1"
body='{"model":"demo","messages":[{"role":"user","content":"warm"}],"temperature":0.7}'
sl_http POST /v1/chat/completions "$body"
sl_http POST /v1/chat/completions "$body"
sl_is "temperature 0.7: bypass each time" "$(sl_header x-sluice-cache) $(upstream_count)" "bypass 3"
body='{"model":"demo","messages":[{"role":"user","content":"no temperature"}]}'
sl_http POST /v1/chat/completions "$body"
sl_is "no temperature (default 1): bypass" "$(sl_header x-sluice-cache)" bypass
body='{"model":"zero","messages":[{"role":"user","content":"profile says 0"}]}'
sl_http POST /v1/chat/completions "$body"
sl_http POST /v1/chat/completions "$body"
sl_is "model profile temperature 0: cached" "$(sl_header x-sluice-cache) $(upstream_count)" "hit 5"

# ---- never cached: errors, cut streams -----------------------------------------------------
sl_mock_clear
body=$(chat "fails" '"mock":{"status":500}')
sl_http POST /v1/chat/completions "$body"
code1=$HTTP_CODE
sl_http POST /v1/chat/completions "$body"
sl_is "upstream 500: an error both times, both reach the upstream" "$code1 $HTTP_CODE $(upstream_count)" "502 502 2"
body=$(chat "bad request" '"mock":{"status":400}')
sl_http POST /v1/chat/completions "$body"
sl_http POST /v1/chat/completions "$body"
sl_is "upstream 400: not cached" "$HTTP_CODE $(sl_header x-sluice-cache) $(upstream_count)" "400 miss 4"
body=$(chat "cut" '"stream":true,"mock":{"reset_after_chunks":2}')
sse "$body"
sl_is "stream cut mid-way: the client sees an error event" "$(sj 'd["errors"]')" 1
sse "$body"
sl_is "stream cut mid-way: not cached" "$SSE_CACHE $(upstream_count)" "miss 6"

gw_alive "gateway alive after errors and cut streams"

# ---- legacy completions ---------------------------------------------------------------------
sl_mock_clear
body='{"model":"demo","prompt":"once upon","temperature":0,"max_tokens":5}'
sl_http POST /v1/completions "$body"
t1=$(sl_json 'd["choices"][0]["text"]' <<<"$HTTP_BODY")
sl_http POST /v1/completions "$body"
sl_is "completions: miss then hit, one upstream request" \
    "$(sl_header x-sluice-cache) $(sl_json 'd["object"]+" "+d["choices"][0]["text"]' <<<"$HTTP_BODY") $(upstream_count)" \
    "hit text_completion $t1 1"
curl -sN --max-time 30 -o "$SL_TMP/cmpl.sse" -H 'content-type: application/json' \
    --data-binary '{"model":"demo","prompt":"once upon","temperature":0,"max_tokens":5,"stream":true}' "$GW_URL/v1/completions"
sl_is "completions: streamed hit from the body" \
    "$(sl_sse_summary "$SL_TMP/cmpl.sse" | sl_json '[d["text"], d["finish"], d["done_last"]]')" "[\"$t1\", [\"stop\"], true]"
sl_is "completions: still one upstream request" "$(upstream_count)" 1

# ---- embeddings (no sampling: always cacheable) ----------------------------------------------
sl_mock_clear
body='{"model":"demo","input":["alpha","beta"]}'
sl_http POST /v1/embeddings "$body"
e1=$(sl_header x-sluice-cache)
v1=$(sl_json 'd["data"][1]["embedding"]' <<<"$HTTP_BODY")
sl_http POST /v1/embeddings "$body"
sl_is "embeddings: miss then hit, one upstream request" "$e1 $(sl_header x-sluice-cache) $(upstream_count)" "miss hit 1"
sl_is "embeddings: the same vectors" "$(sl_json 'd["data"][1]["embedding"]' <<<"$HTTP_BODY")" "$v1"
sl_http POST /v1/embeddings '{"model":"demo","input":["alpha","beta"],"dimensions":4}'
sl_is "embeddings: another parameter is another entry" "$(sl_header x-sluice-cache) $(upstream_count)" "miss 2"

# ---- access log -----------------------------------------------------------------------------
sl_check "access log: hits are marked \"cache\":\"hit\" with the served usage" \
    sl_wait_for 5 grep -q '"cache": *"hit".*' "$SL_TMP/access.log"
line=$(grep '"cache": *"hit"' "$SL_TMP/access.log" | head -n1)
sl_is "access log: cache_charge false by default, tokens of the served answer" \
    "$(sl_json '[d["cache_charge"], d["prompt_tokens"] > 0]' <<<"$line")" "[false, true]"

gw_alive "gateway alive after the memory-backend checks"

# ---- scope per consumer (default), charge_hits, allow-lists ------------------------------------
# A test plugin (tests/unit/cache/consumer_header.c) sets the consumer from x-test-consumer,
# standing in for auth.
CONSUMER_SO=$SL_BUILD_ROOT/tests/unit/cache/test_consumer_header.so
GW_PORT=$(sl_free_port)
SL_CONF_MODELS="  demo: { targets: [ { upstream: mock, model: mock-model } ] }
  other: { targets: [ { upstream: mock, model: mock-model } ] }"
SL_CONF_EXTRA="consumers:
  acme: { models: [demo] }
  globex: { models: [demo, other] }
plugin_paths: [ \"$CONSUMER_SO\" ]
plugins:
  - test_consumer_header
  - cache: { charge_hits: true }"
sl_gw_up "$SL_TMP/scope.yaml"
sl_mock_clear
body=$(chat "scoped")
sl_http POST /v1/chat/completions "$body" -H 'x-test-consumer: acme'
a1=$(sl_header x-sluice-cache)
sl_http POST /v1/chat/completions "$body" -H 'x-test-consumer: acme'
sl_is "scope consumer: acme misses, then hits" "$a1 $(sl_header x-sluice-cache) $(upstream_count)" "miss hit 1"
sl_http POST /v1/chat/completions "$body" -H 'x-test-consumer: globex'
g1=$(sl_header x-sluice-cache)
sl_http POST /v1/chat/completions "$body" -H 'x-test-consumer: globex'
sl_is "scope consumer: globex does not get acme's entry" "$g1 $(sl_header x-sluice-cache) $(upstream_count)" "miss hit 2"
sl_http POST /v1/chat/completions "$body"
sl_is "scope consumer: anonymous has its own entries" "$(sl_header x-sluice-cache) $(upstream_count)" "miss 3"
rid=$(sl_header x-sluice-request-id)
sl_http POST /v1/chat/completions '{"model":"other","messages":[{"role":"user","content":"x"}],"temperature":0}' \
    -H 'x-test-consumer: acme'
sl_is "a model outside the consumer's allow-list is never served from the cache" "$(sl_header x-sluice-cache)" bypass
sl_http POST /v1/chat/completions "$body" -H 'x-test-consumer: acme'
rid=$(sl_header x-sluice-request-id)
sl_wait_for 5 grep -q "\"$rid\"" "$SL_TMP/access.log"
sl_is "charge_hits: true is recorded on the hit's log line for the quota plugin" \
    "$(grep "\"$rid\"" "$SL_TMP/access.log" | sl_json '[d["cache"], d["cache_charge"], d["consumer"]]')" \
    '["hit", true, "acme"]'

# ---- the Redis backend ----------------------------------------------------------------------
REDIS_PORT=$(sl_free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    >"$SL_TMP/redis.log" 2>&1 &
REDIS_PID=$!
sl_track "$REDIS_PID"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
sl_wait_for 10 sh -c "redis-cli -p $REDIS_PORT ping 2>/dev/null | grep -q PONG" || sl_bail "redis-server starts"
GW_PORT=$(sl_free_port)
SL_CONF_EXTRA="store: { backend: redis, redis: { url: \"redis://127.0.0.1:$REDIS_PORT/0\", prefix: \"t1:\" } }
plugins:
  - cache: { backend: redis, ttl: 10m, mode: always }"
sl_gw_up "$SL_TMP/redis.yaml"
sl_mock_clear
body='{"model":"demo","messages":[{"role":"user","content":"redis please"}],"temperature":0.9}'
sl_http POST /v1/chat/completions "$body"
sl_is "redis: miss" "$HTTP_CODE $(sl_header x-sluice-cache)" "200 miss"
sl_wait_for 5 sh -c "[ \"\$(redis-cli -p $REDIS_PORT --scan --pattern 't1:cache:*' | wc -l)\" -ge 1 ]"
key=$(rcli --scan --pattern 't1:cache:*' | head -n1)
sl_like "redis: stored under prefix + cache: + SHA-256" "$key" '^t1:cache:[0-9a-f]{64}$'
ttl=$(rcli pttl "$key")
sl_check "redis: stored with the ttl (PX 10m)" test "${ttl:-0}" -gt 500000 -a "${ttl:-0}" -le 600000
sl_http POST /v1/chat/completions "$body"
sl_is "redis: hit (mode always caches temperature 0.9)" "$HTTP_CODE $(sl_header x-sluice-cache) $(upstream_count)" "200 hit 1"
sl_is "redis: the hit's content" "$(content)" hellohellohellohellohello
sse "${body%\}},\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
sl_is "redis: streamed hit from the body, with usage" "$SSE_CACHE $(sj '[d["text"], d["usage"]["total_tokens"] > 0, d["done_last"]]')" \
    'hit ["hellohellohellohellohello", true, true]'
sse '{"model":"demo","messages":[{"role":"user","content":"redis stream"}],"stream":true}'
sse '{"model":"demo","messages":[{"role":"user","content":"redis stream"}],"stream":true}'
sl_is "redis: stream miss then stream hit" "$SSE_CACHE $(sj 'd["text"]') $(upstream_count)" "hit hellohellohellohellohello 2"
sl_http POST /v1/chat/completions '{"model":"demo","messages":[{"role":"user","content":"redis stream"}]}'
sl_is "redis: body assembled from the stored stream" "$(sl_header x-sluice-cache) $(content) $(upstream_count)" \
    "hit hellohellohellohellohello 2"

# Redis stalls (SIGSTOP): the lookup gives up and the request is a miss served upstream
kill -STOP "$REDIS_PID"
sl_http POST /v1/chat/completions '{"model":"demo","messages":[{"role":"user","content":"redis stalled"}]}'
sl_is "redis stalled: 200, a miss served by the upstream" "$HTTP_CODE $(sl_header x-sluice-cache) $(upstream_count)" \
    "200 miss 3"
kill -CONT "$REDIS_PID"
sl_http POST /v1/chat/completions "$body"
sl_is "redis resumed: hits again" "$HTTP_CODE $(sl_header x-sluice-cache) $(upstream_count)" "200 hit 3"

# Redis goes away: requests still succeed, as misses
sl_stop "$REDIS_PID"
sl_http POST /v1/chat/completions "$body"
sl_is "redis down: still 200, a miss served by the upstream" "$HTTP_CODE $(sl_header x-sluice-cache) $(upstream_count)" "200 miss 4"
sse '{"model":"demo","messages":[{"role":"user","content":"redis stream"}],"stream":true}'
sl_is "redis down: a stream still works" "$SSE_CACHE $(sj '[d["text"], d["done_last"]]')" \
    'miss ["hellohellohellohellohello", true]'
gw_alive "gateway alive after Redis went away"

sl_done
