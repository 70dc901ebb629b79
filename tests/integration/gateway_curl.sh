#!/usr/bin/env bash
# The gateway in front of the mock upstream, driven with curl: the client API, headers,
# keep-alive, OpenAI-shaped errors, cancellation on client disconnect, upstream failures
# mid-stream, slowloris, graceful shutdown on SIGTERM. Prints TAP.
. "$(dirname "$0")/lib.sh"

sl_start_mock --set "require_key=\"$MOCK_KEY\"" || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
DEAD_PORT=$(sl_free_port)   # nothing listens here: the "down" upstream
SL_CONF_SERVER="{ workers: 2, max_body_size: 64KiB, header_timeout: 1s, body_timeout: 1s, idle_timeout: 2s, shutdown_timeout: 20s }"
SL_CONF_UPSTREAMS="  mock:
    type: openai
    base_url: $MOCK_URL/v1
    api_key_env: MOCK_KEY
    timeouts: { connect: 2s, first_byte: 5s, total: 30s }
  slowup:
    type: openai
    base_url: $MOCK_URL/v1
    api_key_env: MOCK_KEY
    timeouts: { connect: 2s, first_byte: 1s, total: 30s }
  idleup:
    type: openai
    base_url: $MOCK_URL/v1
    api_key_env: MOCK_KEY
    timeouts: { connect: 2s, first_byte: 5s, total: 30s, stream_idle: 1s }
  down:
    type: openai
    base_url: http://127.0.0.1:$DEAD_PORT/v1
    api_key_env: MOCK_KEY
    timeouts: { connect: 2s, first_byte: 5s, total: 30s }"
SL_CONF_MODELS="  demo: { targets: [ { upstream: mock, model: mock-model } ] }
  slow: { targets: [ { upstream: slowup, model: mock-model } ] }
  broken: { targets: [ { upstream: down, model: mock-model } ] }
  idle: { targets: [ { upstream: idleup, model: mock-model } ] }"
sl_gw_up

chat() { # chat MODEL [EXTRA JSON FIELDS]
    printf '{"model":"%s","messages":[{"role":"user","content":"say hello"}]%s}' "$1" "${2:+,$2}"
}
# is_error CODE TYPE ERRCODE: the last response is an OpenAI error with this status, type, code.
is_error() {
    local name=$1 status=$2 type=$3 code=$4 got
    got="$HTTP_CODE $(sl_json 'd["error"]["type"]+" "+str(d["error"]["code"])+(" msg" if d["error"]["message"] else "")' <<<"$HTTP_BODY")"
    sl_is "$name" "$got" "$status $type $code msg"
}

# ---- non-streamed chat, headers, what the upstream saw -----------------------------------
sl_mock_clear
sl_http POST /v1/chat/completions "$(chat demo '"custom_field":{"a":1}')"
sl_is "chat: 200" "$HTTP_CODE" 200
sl_is "chat: assistant content from the upstream" \
    "$(sl_json 'd["choices"][0]["message"]["content"]' <<<"$HTTP_BODY")" hellohellohellohellohello
sl_is "chat: object and usage" "$(sl_json 'd["object"]+" "+str(d["usage"]["total_tokens"])' <<<"$HTTP_BODY")" "chat.completion 7"
rid1=$(sl_header x-sluice-request-id)
sl_like "header x-sluice-request-id present" "$rid1" '^[A-Za-z0-9_.:-]{4,}$'
sl_like "header x-sluice-upstream names the upstream" "$(sl_header x-sluice-upstream)" 'mock'
up=$(sl_mock_last)
sl_is "upstream got the rewritten model" "$(sl_json 'd["body"]["model"]' <<<"$up")" mock-model
sl_is "upstream got Authorization from api_key_env" "$(sl_json 'd["headers"]["authorization"]' <<<"$up")" "Bearer $MOCK_KEY"
sl_is "upstream path" "$(sl_json 'd["method"]+" "+d["path"]' <<<"$up")" "POST /v1/chat/completions"
# the body the upstream gets, byte for byte: the client's own text (model replaced,
# stream_options added last) where no plugin changed it, else serialised from the tree
upstream_text() { sl_mock_clear; sl_http POST /v1/chat/completions "$1" >/dev/null; sl_mock_last | sl_json 'd["text"]'; }
sl_is "upstream body: compact text, model replaced in place" \
    "$(upstream_text '{"model":"demo","messages":[{"role":"user","content":"héllo"}],"n":1,"x":{"model":"demo"}}')" \
    '{"model":"mock-model","messages":[{"role":"user","content":"héllo"}],"n":1,"x":{"model":"demo"}}'
sl_is "upstream body: stream gains stream_options at the end" \
    "$(upstream_text '{"messages":[{"role":"user","content":"hi"}],"stream":true,"model":"demo"}')" \
    '{"messages":[{"role":"user","content":"hi"}],"stream":true,"model":"mock-model","stream_options":{"include_usage":true}}'
sl_is "upstream body: stream_options asked without usage gets it inside" \
    "$(upstream_text '{"model":"demo","stream_options":{"include_usage":false},"stream":true,"messages":[{"role":"user","content":"hi"}]}')" \
    '{"model":"mock-model","stream_options":{"include_usage":true},"stream":true,"messages":[{"role":"user","content":"hi"}]}'
sl_is "upstream body: stream_options with other members gets include_usage added last" \
    "$(upstream_text '{"model":"demo","stream_options":{ "x": 1 },"stream":true,"messages":[{"role":"user","content":"hi"}]}')" \
    '{"model":"mock-model","stream_options":{ "x": 1 ,"include_usage":true},"stream":true,"messages":[{"role":"user","content":"hi"}]}'
sl_is "upstream body: stream_options null is replaced in its place" \
    "$(upstream_text '{"model":"demo","stream_options":null,"stream":true,"messages":[{"role":"user","content":"hi"}]}')" \
    '{"model":"mock-model","stream_options":{"include_usage":true},"stream":true,"messages":[{"role":"user","content":"hi"}]}'
sl_is "upstream body: text with spaces and escapes goes on in the client's spelling" \
    "$(upstream_text ' { "model" : "demo", "messages": [{"role": "user", "content": "a\"b\u00e9"}], "t": 1.50 } ')" \
    '{ "model" : "mock-model", "messages": [{"role": "user", "content": "a\"b\u00e9"}], "t": 1.50 }'
sl_is "upstream body: stream_options added after the client's spacing" \
    "$(upstream_text '{"model": "demo", "stream": true, "messages": []
}')" \
    '{"model": "mock-model", "stream": true, "messages": []
,"stream_options":{"include_usage":true}}'
sl_is "upstream body: a text jansson reads (an exponent) is serialised compact from the tree" \
    "$(upstream_text '{ "model" : "demo", "messages": [{"role": "user", "content": "a\"b\u00e9"}], "t": 1e2 }')" \
    '{"model":"mock-model","messages":[{"role":"user","content":"a\"bé"}],"t":100.0}'
sl_is "unknown request fields passed through" "$(sl_json 'd["body"]["custom_field"]["a"]' <<<"$up")" 1
sl_http POST /v1/chat/completions "$(chat demo)"
sl_check "request ids differ per request" test -n "$(sl_header x-sluice-request-id)" -a "$(sl_header x-sluice-request-id)" != "$rid1"
sl_wait_for 5 grep -qF "$rid1" "$SL_TMP/access.log"
line=$(grep -F "$rid1" "$SL_TMP/access.log" 2>/dev/null | head -n1)
sl_is "access log: a JSON line for the request (status 200)" "$(sl_json 'str(d["status"])' <<<"$line")" 200
sl_check "access log: never the upstream key" bash -c '! grep -qF "$1" "$2"' _ "$MOCK_KEY" "$SL_TMP/access.log"

# ---- streamed chat ------------------------------------------------------------------------
sse=$SL_TMP/stream.sse
curl -sSN -D "$SL_TMP/stream.h" -o "$sse" --max-time 20 -H 'content-type: application/json' \
    --data "$(chat demo '"stream":true,"mock":{"texts":["a","b","c","d"],"chunks":4,"chunk_delay_ms":20}')" \
    "$GW_URL/v1/chat/completions"
sum=$(sl_sse_summary "$sse")
sl_like "stream: content-type text/event-stream" "$(tr -d '\r' <"$SL_TMP/stream.h" | grep -i '^content-type:')" 'text/event-stream'
sl_check "stream: x-sluice-request-id and x-sluice-upstream on the SSE response" \
    test "$(grep -ciE '^x-sluice-(request-id|upstream):' "$SL_TMP/stream.h")" = 2
sl_is "stream: chunks in order" "$(sl_json 'd["text"]' <<<"$sum")" abcd
sl_is "stream: ends with [DONE], every event JSON, finish stop" \
    "$(sl_json 'str(d["done_last"])+" "+str(d["bad_json"])+" "+",".join(d["finish"])' <<<"$sum")" "True 0 stop"
sl_is "stream: no usage chunk the client did not ask for" "$(sl_json 'd["usage"]' <<<"$sum")" null
sl_is "stream: upstream asked for usage (stream_options.include_usage)" \
    "$(sl_mock_last | sl_json 'd["body"]["stream_options"]["include_usage"]')" true

curl -sSN -o "$sse" --max-time 20 -H 'content-type: application/json' \
    --data "$(chat demo '"stream":true,"stream_options":{"include_usage":true},"mock":{"chunks":3}')" \
    "$GW_URL/v1/chat/completions"
sl_is "stream: usage chunk when the client asks" \
    "$(sl_sse_summary "$sse" | sl_json 'str(d["usage"]["completion_tokens"])+" "+str(d["done_last"])')" "3 True"

curl -sSN -o "$sse" --max-time 20 -H 'content-type: application/json' \
    --data "$(chat demo '"stream":true,"mock":{"texts":["one ","two ","three"],"chunks":3,"split_events":4}')" \
    "$GW_URL/v1/chat/completions"
sl_is "stream: events split across TCP writes arrive whole" \
    "$(sl_sse_summary "$sse" | sl_json 'd["text"]+"|"+str(d["bad_json"])+"|"+str(d["done_last"])')" "one two three|0|True"

# ---- legacy completions, embeddings, models ------------------------------------------------
sl_http POST /v1/completions '{"model":"demo","prompt":"once upon","mock":{"text":"t","chunks":3}}'
sl_is "completions: 200 text_completion" "$HTTP_CODE $(sl_json 'd["object"]+" "+d["choices"][0]["text"]' <<<"$HTTP_BODY")" "200 text_completion ttt"
sl_is "completions: upstream path and model" "$(sl_mock_last | sl_json 'd["path"]+" "+d["body"]["model"]')" "/v1/completions mock-model"
curl -sSN -o "$sse" --max-time 20 -H 'content-type: application/json' \
    --data '{"model":"demo","prompt":"once upon","stream":true,"mock":{"texts":["x","y"],"chunks":2}}' \
    "$GW_URL/v1/completions"
sl_is "completions: streamed" "$(sl_sse_summary "$sse" | sl_json 'd["text"]+" "+str(d["done_last"])')" "xy True"

sl_http POST /v1/embeddings '{"model":"demo","input":["alpha","beta"]}'
sl_is "embeddings: 200 with two vectors" "$HTTP_CODE $(sl_json 'str(len(d["data"]))+" "+str(len(d["data"][1]["embedding"]))' <<<"$HTTP_BODY")" "200 2 8"
sl_is "embeddings: upstream path and model" "$(sl_mock_last | sl_json 'd["path"]+" "+d["body"]["model"]')" "/v1/embeddings mock-model"

sl_http GET /v1/models
sl_is "models: 200 OpenAI list" "$HTTP_CODE $(sl_json 'd["object"]' <<<"$HTTP_BODY")" "200 list"
sl_is "models: lists the client-facing names" \
    "$(sl_json '" ".join(sorted(m["id"] for m in d["data"]))' <<<"$HTTP_BODY")" "broken demo idle slow"

# ---- keep-alive ---------------------------------------------------------------------------
v=$(curl -sv -o /dev/null -o /dev/null --max-time 10 "$GW_URL/v1/models" "$GW_URL/v1/models" 2>&1)
sl_like "keep-alive: second request re-uses the connection" "$v" 'Re-using existing connection'
v=$(curl -sv -o /dev/null -o /dev/null --max-time 10 -H 'content-type: application/json' \
    --data "$(chat demo)" "$GW_URL/v1/chat/completions" --next -H 'content-type: application/json' \
    --data "$(chat demo)" "$GW_URL/v1/chat/completions" 2>&1)
sl_like "keep-alive: two POSTs over one connection" "$v" 'Re-using existing connection'
before=$(sl_mock_stats | sl_json 'd["total_connections"]')
for i in 1 2 3 4 5 6 7 8 9 10; do curl -s -o /dev/null --max-time 10 -H 'content-type: application/json' --data "$(chat demo)" "$GW_URL/v1/chat/completions"; done
after=$(sl_mock_stats | sl_json 'd["total_connections"]')
# 1 of the new ones is the stats query itself; each worker thread may open its own.
new=$((after - before - 1))
sl_check "upstream connections reused (10 requests, $new new upstream connections)" test "$new" -le 4

# ---- errors -------------------------------------------------------------------------------
sl_http POST /v1/chat/completions '{"model":"demo","messages":['
is_error "malformed JSON: 400 invalid_request" 400 invalid_request_error invalid_request
big=$(head -c 100000 /dev/zero | tr '\0' 'a')
sl_http POST /v1/chat/completions "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"$big\"}]}"
is_error "body over max_body_size: 413 invalid_request" 413 invalid_request_error invalid_request
sl_http POST /v1/chat/completions "$(chat no-such-model)"
is_error "unknown model: 404 model_not_found" 404 invalid_request_error model_not_found
sl_http POST /v1/chat/completions "$(chat broken)"
sl_like "upstream down: 502/503 upstream_error" \
    "$HTTP_CODE $(sl_json 'd["error"]["type"]+" "+d["error"]["code"]' <<<"$HTTP_BODY")" '^50[23] api_error upstream_error$'
sl_http POST /v1/chat/completions "$(chat slow '"mock":{"headers_delay_ms":4000}')"
is_error "upstream past first_byte timeout: 504 upstream_timeout" 504 api_error upstream_timeout
sl_http POST /v1/chat/completions "$(chat demo '"mock":{"status":500,"error_message":"boom"}')"
sl_like "upstream 500: 5xx with an OpenAI error body" \
    "$HTTP_CODE $(sl_json 'd["error"]["type"]+" "+str(bool(d["error"]["message"]))' <<<"$HTTP_BODY")" '^5[0-9][0-9] [a-z_]+ True$'
sl_http POST /v1/chat/completions "$(chat demo '"mock":{"status":400,"error_code":"context_length_exceeded","error_message":"too long"}')"
is_error "upstream 400 passed through to the client" 400 invalid_request_error context_length_exceeded
sl_http POST /v1/chat/completions "$(chat demo)"
sl_is "after errors the gateway still serves" "$HTTP_CODE" 200

# ---- upstream failure mid-stream: an error event and [DONE], never a silent cut ------------
curl -sSN -o "$sse" --max-time 20 -H 'content-type: application/json' \
    --data "$(chat demo '"stream":true,"mock":{"texts":["p","q","r"],"chunks":10,"reset_after_chunks":2}')" \
    "$GW_URL/v1/chat/completions"
sl_is "upstream reset mid-stream: chunks so far, an error event, then [DONE]" \
    "$(sl_sse_summary "$sse" | sl_json 'd["text"]+" "+str(d["errors"])+" "+str(d["done_last"])')" "pq 1 True"

# ---- client disconnect cancels the upstream request --------------------------------------
curl -sSN -o /dev/null --max-time 1.5 -H 'content-type: application/json' \
    --data "$(chat demo '"stream":true,"mock":{"chunks":600,"chunk_delay_ms":50,"tag":"leave-early"}')" \
    "$GW_URL/v1/chat/completions" 2>/dev/null
outcome() { sl_mock_requests | sl_json '[r for r in d if (r["body"] or {}).get("mock", {}).get("tag") == "leave-early"][0]["outcome"]'; }
upstream_closed() { [ "$(outcome)" = aborted ]; }
sl_wait_for 10 upstream_closed
sl_is "client disconnect mid-stream closes the upstream request" "$(outcome)" aborted
sl_is "no upstream request left running" "$(sl_mock_stats | sl_json 'd["active_requests"]')" 0

# ---- slowloris: headers one byte per second are cut off by header_timeout -----------------
slow=$("$SL_PY" - "$GW_PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(1.0)
head = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris-test\r\nAccept: */*\r\n\r\n"
t0 = time.monotonic()
for i, b in enumerate(head):
    try:
        s.send(bytes([b]))
        data = s.recv(4096)
        print(f"closed after {i + 1} bytes ({time.monotonic() - t0:.0f} s): {data[:12]!r}")
        sys.exit(0)
    except socket.timeout:
        continue
    except OSError as e:
        print(f"closed after {i + 1} bytes ({time.monotonic() - t0:.0f} s): {e}")
        sys.exit(0)
    if i >= 20:
        break
print(f"still open after {i + 1} bytes")
PY
)
sl_like "slowloris: connection cut by header_timeout ($slow)" "$slow" '^closed after'

# A body that stops short is cut by body_timeout; an idle keep-alive connection by idle_timeout.
cut=$("$SL_PY" - "$GW_PORT" <<'PY'
import socket, sys
port = int(sys.argv[1])
def wait_close(s):
    s.settimeout(15)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return data, "closed"
            data += d
    except socket.timeout:
        return data, "open"
    except OSError:
        return data, "closed"
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: 100\r\n\r\n{\"model\":")
data, state = wait_close(s)
print("body:", state, data[:12])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
data, state = wait_close(s)
print("idle:", state, data[:12])
PY
)
sl_like "a body that stops short is cut by body_timeout" "$(grep '^body:' <<<"$cut")" '^body: closed'
sl_like "an idle keep-alive connection is closed by idle_timeout, after its answer" "$(grep '^idle:' <<<"$cut")" "^idle: closed b'HTTP/1.1 200"

# ---- more upstream failures ---------------------------------------------------------------
rm -f "$sse"
curl -sSN -o "$sse" --max-time 20 -H 'content-type: application/json' \
    --data "$(chat idle '"stream":true,"mock":{"texts":["p","q"],"chunks":10,"hang_after_chunks":2}')" \
    "$GW_URL/v1/chat/completions"
sl_is "upstream silent past stream_idle: chunks so far, an error event, then [DONE]" \
    "$(sl_sse_summary "$sse" | sl_json 'd["text"]+" "+str(d["errors"])+" "+str(d["done_last"])')" "pq 1 True"
sl_http POST /v1/chat/completions "$(chat demo '"mock":{"close_before_headers":true}')"
sl_like "upstream resets before answering: 502/503 upstream_error" \
    "$HTTP_CODE $(sl_json 'd["error"]["code"]' <<<"$HTTP_BODY")" '^50[23] upstream_error$'

# ---- HTTP/1.1 and content details ----------------------------------------------------------
sl_mock_clear
sl_http POST /v1/chat/completions "$(chat demo)" -H 'Authorization: Bearer sk-client-secret-123' \
    -H 'x-api-key: sk-client-secret-123'
reqs=$(sl_mock_requests)
sl_check "the client's own credentials are not forwarded upstream" \
    test "$HTTP_CODE" = 200 -a -n "$reqs" -a "${reqs/sk-client-secret-123/}" = "$reqs"

printf '%s' "$(chat demo)" >"$SL_TMP/body.json"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -H 'content-type: application/json' \
    -H 'Transfer-Encoding: chunked' --data-binary @"$SL_TMP/body.json" "$GW_URL/v1/chat/completions")
sl_is "request body sent chunked (Transfer-Encoding: chunked)" "$code" 200

code=$(curl -sS -0 -o /dev/null -w '%{http_code}' --max-time 10 "$GW_URL/v1/models")
sl_is "HTTP/1.0 request answered" "$code" 200

v=$(curl -sv -o /dev/null -o /dev/null --max-time 10 -H 'Connection: close' "$GW_URL/v1/models" "$GW_URL/v1/models" 2>&1)
sl_check "Connection: close is honoured (no re-use)" test "$(grep -c 'Re-using' <<<"$v")" = 0 -a "$(grep -c '< HTTP/1.1 200' <<<"$v")" = 2

piped=$("$SL_PY" - "$GW_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(10)
s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
except OSError as e:
    print("error", e)
print(data.count(b"HTTP/1.1 200"))
PY
)
sl_is "two pipelined requests get two responses, then close" "$piped" 2

sl_http GET /v1/no-such-endpoint
sl_is "unknown path: 404 with an OpenAI error" "$HTTP_CODE $(sl_json 'str(bool(d["error"]["message"]))' <<<"$HTTP_BODY")" "404 True"

sl_http POST /v1/chat/completions "$(chat demo '"mock":{"text":"abcdefghij","chunks":20000}')"
sl_is "a 200 kB answer passes intact" "$HTTP_CODE $(sl_json 'str(len(d["choices"][0]["message"]["content"]))' <<<"$HTTP_BODY")" "200 200000"

rm -f "$sse"
curl -sSN -o "$sse" --max-time 20 -H 'content-type: application/json' \
    --data "$(chat demo '"stream":true,"mock":{"texts":["héllo ","世界 ","🚀!"],"chunks":3,"split_events":7}')" \
    "$GW_URL/v1/chat/completions"
sl_is "UTF-8 split across TCP writes arrives intact" "$(sl_sse_summary "$sse" | sl_json 'd["text"]')" "héllo 世界 🚀!"

par_pids=()
for i in $(seq 1 40); do
    curl -sSN -o "$SL_TMP/par$i.sse" --max-time 30 -H 'content-type: application/json' \
        --data "$(chat demo "\"stream\":true,\"mock\":{\"texts\":[\"$i-\"],\"chunks\":10,\"chunk_delay_ms\":20}")" \
        "$GW_URL/v1/chat/completions" 2>/dev/null &
    par_pids+=($!)
    sl_track "$!"
done
for p in "${par_pids[@]}"; do wait "$p"; done
complete=$("$SL_PY" - "$SL_TMP" <<'PY'
import sys
n = 0
for i in range(1, 41):
    try:
        t = open(f"{sys.argv[1]}/par{i}.sse", encoding="utf-8").read()
    except OSError:
        continue
    if t.count(f'"{i}-"') == 10 and t.rstrip().endswith("data: [DONE]"):
        n += 1
print(n)
PY
)
sl_is "40 concurrent streams each complete with their own chunks" "$complete" 40

sl_gw_alive "the gateway survived everything above"

# ---- SIGTERM: the request in flight completes, then the gateway exits 0 -------------------
sl_mock_clear
rm -f "$sse"
curl -sSN -o "$sse" --max-time 30 -H 'content-type: application/json' \
    --data "$(chat demo '"stream":true,"mock":{"chunks":15,"chunk_delay_ms":100}')" \
    "$GW_URL/v1/chat/completions" &
curl_pid=$!
sl_track "$curl_pid"
in_flight() { [ "$(sl_mock_stats | sl_json 'd["active_requests"]')" -ge 1 ]; }
sl_wait_for 10 in_flight
sl_signal TERM "$GW_PID"
sl_wait_for 5 grep -q SIGTERM "$GW_LOG"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$GW_URL/v1/models")
sl_like "SIGTERM: no new requests accepted while draining (got $code)" "$code" '^(000|503)$'
wait "$curl_pid"
sl_is "SIGTERM: the request in flight completes" \
    "$(sl_sse_summary "$sse" | sl_json 'str(len(d["text"]))+" "+str(d["done_last"])')" "75 True"
gw_gone() { ! sl_is_ours "$GW_PID"; }
if sl_wait_for 25 gw_gone; then
    wait "$GW_PID"
    sl_is "SIGTERM: the gateway then exits 0" "$?" 0
else
    sl_not_ok "SIGTERM: the gateway then exits 0" "still running 25 s after SIGTERM"
fi

sl_done
