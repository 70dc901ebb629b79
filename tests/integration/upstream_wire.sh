#!/usr/bin/env bash
# The gateway's own HTTP/1.1 upstream client (gateway/upstream_h1.c) against an upstream
# written at the byte level (tests/mock/raw_upstream.py): chunked with extensions and
# trailers, one byte at a time, HTTP/1.0 to the close, 100 Continue, connection reuse, a
# pooled connection closed while idle and one closed as the next request arrives (sent
# again on a new connection, once), and malformed or truncated answers (502, never a
# crash, and the gateway goes on serving). TAP.
. "$(dirname "$0")/lib.sh"

UP_PORT=$(sl_free_port); GW_PORT=$(sl_free_port)
"$SL_PY" "$SL_SOURCE_ROOT/tests/mock/raw_upstream.py" "$UP_PORT" >"$SL_TMP/raw.log" 2>&1 &
sl_track $!
sl_wait_for 10 curl -sf -o /dev/null "http://127.0.0.1:$UP_PORT/stats" || sl_bail "raw upstream starts"
cat >"$SL_TMP/gw.yaml" <<CONF
listen: [ { address: 127.0.0.1:$GW_PORT } ]
server: { workers: 1 }
upstreams:
  raw:
    type: openai
    base_url: http://127.0.0.1:$UP_PORT/v1
    timeouts: { connect: 1s, first_byte: 3s, total: 5s }
models:
  demo: { targets: [ { upstream: raw, model: raw-model } ] }
plugins:
  - route
CONF
sl_start_gateway "$SL_TMP/gw.yaml" || sl_bail "gateway starts"

ask() { sl_http POST /v1/chat/completions "{\"model\":\"demo\",\"scenario\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"; }
content() { printf '%s' "$HTTP_BODY" | sl_json 'd["choices"][0]["message"]["content"]'; }
stat() { curl -s "http://127.0.0.1:$UP_PORT/stats" | sl_json "d[\"$1\"]"; }

# a 4 MiB prompt: more than the socket takes at once, sent as the upstream reads it
"$SL_PY" -c 'import json; print(json.dumps({"model": "demo", "scenario": "length", "messages": [{"role": "user", "content": "x" * (4 << 20)}]}))' >"$SL_TMP/big.json"
HTTP_BODY=$(curl -sS --max-time 30 -H 'content-type: application/json' --data-binary @"$SL_TMP/big.json" "$GW_URL/v1/chat/completions")
sl_is "4 MiB request body: answered whole" "$(content)" "ok length"

for s in length chunked trickle http10 continue; do
    ask "$s"
    sl_is "$s: 200" "$HTTP_CODE" 200
    sl_is "$s: the upstream's answer, whole" "$(content)" "ok $s"
done

# reuse: ten requests in a row ride one connection
c0=$(stat connections)
for i in $(seq 10); do ask length; done
sl_is "reuse: ten requests answered" "$HTTP_CODE" 200
sl_is "reuse: on one pooled connection" "$(( $(stat connections) - c0 ))" 0

# the upstream closes a pooled connection while it is idle: the next request is not lost
ask close_idle
sl_is "closed while idle: answered" "$(content)" "ok close_idle"
sleep 0.4
ask length
sl_is "closed while idle: the next request gets a new connection and its answer" "$(content)" "ok length"

# the upstream reads the next request on a pooled connection and closes without a word:
# sent again, once, on a new connection
ask drop_next
sl_is "stale pooled connection: first answered" "$(content)" "ok drop_next"
r0=$(stat requests)
ask length
sl_is "stale pooled connection: the request is sent again on a new connection" "$HTTP_CODE $(content)" "200 ok length"
sl_is "stale pooled connection: the upstream saw it twice (dropped, then answered)" "$(( $(stat requests) - r0 ))" 2

for s in two_lengths short huge_head bad_chunk; do
    ask "$s"
    sl_is "$s: 502" "$HTTP_CODE" 502
    sl_is "$s: upstream_error" "$(printf '%s' "$HTTP_BODY" | sl_json 'd["error"]["code"]')" upstream_error
done
ask length
sl_is "after the malformed ones: still serving" "$HTTP_CODE $(content)" "200 ok length"

# nobody listens: a connect failure, 502
cat >"$SL_TMP/gw2.yaml" <<CONF
listen: [ { address: 127.0.0.1:$GW_PORT } ]
upstreams:
  gone: { type: openai, base_url: "http://127.0.0.1:$(sl_free_port)/v1" }
models:
  demo: { targets: [ { upstream: gone, model: m } ] }
plugins: [ route ]
CONF
sl_stop "$GW_PID"
sl_start_gateway "$SL_TMP/gw2.yaml" || sl_bail "gateway starts (second config)"
ask length
sl_is "connection refused: 502" "$HTTP_CODE" 502
sl_gw_alive "connection refused: gateway still running"
sl_done
