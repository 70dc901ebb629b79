#!/usr/bin/env bash
# Prometheus metrics through the real gateway in front of the mock upstream: GET /metrics on
# the admin listener needs the admin token; after a known mix of requests (served, streamed,
# unauthenticated, unknown model, guard block, cache miss and hit, a fallback past a dead
# upstream) the exposition passes a strict parser of the text format and every counter,
# histogram and gauge says what was done. Prints TAP.
. "$(dirname "$0")/lib.sh"

export ADMIN_TOKEN=admin-token-for-metrics
sl_start_mock --set prompt_tokens=7 --set completion_tokens=5 || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
ADMIN_PORT=$(sl_free_port)
DEAD_PORT=$(sl_free_port)   # nothing listens here
ADMIN_URL=http://127.0.0.1:$ADMIN_PORT
SL_CONF_UPSTREAMS="  mock: { type: openai, base_url: $MOCK_URL/v1 }
  dead: { type: openai, base_url: http://127.0.0.1:$DEAD_PORT/v1, timeouts: { connect: 1s } }"
SL_CONF_MODELS="  demo: { targets: [ { upstream: mock, model: mock-model } ] }
  slow: { targets: [ { upstream: mock, model: mock-model } ] }
  slowclient: { targets: [ { upstream: mock, model: mock-model } ] }
  fb:
    targets: [ { upstream: dead, model: x } ]
    fallback: [ demo ]
  'we\"ird': { targets: [ { upstream: mock, model: mock-model } ] }"
SL_CONF_EXTRA="admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: ADMIN_TOKEN }
consumers:
  acme: {}
plugins:
  - auth
  - guard: { deny: [ forbiddenword ], apply_to: request }
  - cache: { ttl: 1h, max_bytes: 1MiB }
  - route: { circuit: { failures: 1, cooldown: 1h } }"
sl_gw_up "$SL_TMP/gw.yaml"

KEY=$("$SLUICE" key -c "$SL_TMP/gw.yaml" issue --consumer acme 2>"$SL_TMP/issue.err")
[[ $KEY == sk-sluice-* ]] || sl_bail "a key for acme" "$(cat "$SL_TMP/issue.err")"
AUTH=(-H "Authorization: Bearer $KEY")
chat() { # model content [extra json] [curl args, replacing the key]
    local args=("${@:4}")
    [ ${#args[@]} -gt 0 ] || args=("${AUTH[@]}")
    sl_http POST /v1/chat/completions "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"$2\"}]${3:+,$3}}" \
        "${args[@]}"
}

# ---- the admin route ----
code=$(curl -s -o /dev/null -w '%{http_code}' "$ADMIN_URL/metrics")
sl_is "/metrics without the admin token: 401" "$code" 401
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' "$ADMIN_URL/metrics")
sl_is "/metrics with a wrong token: 401" "$code" 401

# ---- a known mix of requests ----
for i in 1 2 3; do chat demo "hello $i" '"temperature":0.7'; done
sl_is "three served requests" "$HTTP_CODE" 200
for i in 1 2; do
    curl -sS -N "$GW_URL/v1/chat/completions" "${AUTH[@]}" -H 'content-type: application/json' \
        -d '{"model":"demo","stream":true,"temperature":0.7,"messages":[{"role":"user","content":"stream please"}]}' \
        >"$SL_TMP/s$i.sse"
done
sl_is "streams end with [DONE]" "$(sl_sse_summary "$SL_TMP/s2.sse" | sl_json 'd["done_last"]')" true
chat demo hi '' -H 'Authorization: Bearer sk-sluice-00000000000000000000000000000000'
sl_is "unknown key: 401" "$HTTP_CODE" 401
chat nope hi
sl_is "unknown model: 404" "$HTTP_CODE" 404
chat demo "say forbiddenword now"
sl_is "guard block: 400" "$HTTP_CODE" 400
chat demo "cache me" '"temperature":0'
sl_is "cache miss" "$(sl_header x-sluice-cache)" miss
chat demo "cache me" '"temperature":0'
sl_is "cache hit" "$(sl_header x-sluice-cache)" hit
chat fb "fall back"
sl_is "fallback past the dead upstream: 200 after one failure" "$HTTP_CODE $(sl_header x-sluice-fallback)" "200 1"
chat 'we\"ird' "quoted model name" '"temperature":0.7'
sl_is "a model name with a quote is served" "$HTTP_CODE" 200
chat slow "take your time" '"temperature":0.7,"mock":{"headers_delay_ms":400}'
sl_is "a request the upstream answers after 400 ms" "$HTTP_CODE" 200
# a client that sends its head, then its body 400 ms later: the request's duration counts from
# the head, the gateway's overhead leaves the client's part out
status=$("$SL_PY" - "$GW_PORT" "$KEY" <<'PY'
import socket, sys, time
body = b'{"model":"slowclient","temperature":0.7,"messages":[{"role":"user","content":"slowly"}]}'
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Authorization: Bearer " + sys.argv[2].encode() + b"\r\nConnection: close\r\n"
          b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
time.sleep(0.4)
s.sendall(body)
resp = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    resp += d
print(resp.split(b" ", 2)[1].decode())
PY
)
sl_is "a client that sends its body 400 ms after its head is served" "$status" 200

# ---- the exposition ----
curl -sS -D "$SL_TMP/m.h" -o "$SL_TMP/m.txt" -H "Authorization: Bearer $ADMIN_TOKEN" "$ADMIN_URL/metrics"
sl_like "content type is the text format 0.0.4" "$(tr -d '\r' <"$SL_TMP/m.h" | grep -i '^content-type:')" \
    '^[Cc]ontent-[Tt]ype: text/plain; version=0\.0\.4'
if "$SL_PY" "$SL_SOURCE_ROOT/tests/integration/prom_parse.py" "$SL_TMP/m.txt" >"$SL_TMP/m.json" 2>"$SL_TMP/m.err"; then
    sl_ok "the exposition passes the strict parser"
else
    sl_bail "the exposition passes the strict parser" "$(cat "$SL_TMP/m.err")
$(head -c 3000 "$SL_TMP/m.txt")"
fi

# m NAME [label=value ...]: the sum of NAME's samples whose labels include those given.
m() {
    "$SL_PY" - "$SL_TMP/m.json" "$@" <<'PY'
import json, sys
samples = json.load(open(sys.argv[1]))
want = dict(a.split('=', 1) for a in sys.argv[3:])
v = sum(s[2] for s in samples if s[0] == sys.argv[2] and all(s[1].get(k) == x for k, x in want.items()))
print(int(v) if v == int(v) else v)
PY
}
sl_is "requests: acme demo 200 via mock (3 + 2 streams + the miss)" \
    "$(m sluice_requests_total consumer=acme model=demo upstream=mock status=200)" 6
sl_is "requests: the cache hit, served by no upstream" \
    "$(m sluice_requests_total consumer=acme model=demo upstream=none status=200)" 1
sl_is "requests: acme demo 200 on any upstream" "$(m sluice_requests_total consumer=acme model=demo status=200)" 7
sl_is "requests: an unknown key is anonymous" "$(m sluice_requests_total consumer=anonymous model=demo status=401)" 1
sl_is "requests: an unknown model is 'other'" "$(m sluice_requests_total consumer=acme model=other status=404)" 1
sl_is "requests: the guard block" "$(m sluice_requests_total consumer=acme model=demo status=400)" 1
sl_is "requests: the fallback served by mock under model fb" \
    "$(m sluice_requests_total consumer=acme model=fb upstream=mock status=200)" 1
sl_is "requests: the quoted model name, unescaped by the parser" \
    "$(m sluice_requests_total model='we"ird' status=200)" 1
sl_is "prompt tokens: 7 per served answer (3 + 2 streams + miss + hit replayed)" \
    "$(m sluice_prompt_tokens_total consumer=acme model=demo)" 49
sl_is "completion tokens: 5 per served answer" "$(m sluice_completion_tokens_total consumer=acme model=demo)" 35
sl_is "no tokens for the anonymous 401" "$(m sluice_prompt_tokens_total consumer=anonymous)" 0
sl_is "duration histogram: one observation per demo request (7 served, 401, guard block)" \
    "$(m sluice_request_duration_seconds_count model=demo)" 9
sl_is "duration histogram: +Inf bucket = count" \
    "$(m sluice_request_duration_seconds_bucket model=demo le=+Inf)" 9
sl_is "gateway overhead: one observation per demo request, as the duration" \
    "$(m sluice_gateway_overhead_seconds_count model=demo)" 9
sl_is "the slow request's duration is over 250 ms (the upstream's 400 ms in it)" \
    "$(m sluice_request_duration_seconds_bucket model=slow le=0.25) $(m sluice_request_duration_seconds_count model=slow)" "0 1"
sl_is "its gateway overhead is under 250 ms: the upstream's time is not the gateway's" \
    "$(m sluice_gateway_overhead_seconds_bucket model=slow le=0.25)" 1
sl_is "the slow client's duration counts from its head: over 250 ms" \
    "$(m sluice_request_duration_seconds_bucket model=slowclient le=0.25) $(m sluice_request_duration_seconds_count model=slowclient)" "0 1"
sl_is "... and its gateway overhead leaves the client's 400 ms out" \
    "$(m sluice_gateway_overhead_seconds_bucket model=slowclient le=0.25)" 1
sl_is "time to first token: only the two streams" "$(m sluice_time_to_first_token_seconds_count model=demo)" 2
sl_is "time to first token: both under 60 s" \
    "$(m sluice_time_to_first_token_seconds_bucket model=demo le=60)" 2
gaps=0
for i in 1 2; do gaps=$((gaps + $(sl_sse_summary "$SL_TMP/s$i.sse" | sl_json 'd["events"]') - 2)); done
sl_is "inter-token latency: one gap between each two events of the two streams ([DONE] aside)" \
    "$(m sluice_inter_token_latency_seconds_count model=demo)" "$gaps"
sl_is "inter-token latency: +Inf bucket = count" \
    "$(m sluice_inter_token_latency_seconds_bucket model=demo le=+Inf)" "$gaps"
sl_is "cache hits" "$(m sluice_cache_hits_total)" 1
sl_is "cache misses" "$(m sluice_cache_misses_total)" 1
sl_is "fallbacks fb -> demo" "$(m sluice_fallbacks_total from=fb to=demo)" 1
sl_is "guard blocks by stage and rule" "$(m sluice_guard_blocks_total stage=request rule='deny[0]')" 1
sl_is "circuit of the dead upstream: open (1)" "$(m sluice_upstream_circuit_state upstream=dead)" 1
sl_is "circuit of the mock: closed (0)" "$(m sluice_upstream_circuit_state upstream=mock)" 0
sl_check "no per-key label anywhere" bash -c "! grep -q 'sk-sluice' '$SL_TMP/m.txt'"
sl_check "every family has HELP and TYPE" bash -c \
    "[ \$(grep -c '^# HELP sluice_' '$SL_TMP/m.txt') = \$(grep -c '^# TYPE sluice_' '$SL_TMP/m.txt') ]"

# counters only grow, across scrapes
chat demo "one more" '"temperature":0.7'
curl -sS -o "$SL_TMP/m.txt" -H "Authorization: Bearer $ADMIN_TOKEN" "$ADMIN_URL/metrics"
"$SL_PY" "$SL_SOURCE_ROOT/tests/integration/prom_parse.py" "$SL_TMP/m.txt" >"$SL_TMP/m.json" 2>"$SL_TMP/m.err"
sl_is "a later scrape counts the next request" \
    "$(m sluice_requests_total consumer=acme model=demo upstream=mock status=200)" 7

sl_gw_alive "gateway still running"
sl_done
