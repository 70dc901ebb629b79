#!/usr/bin/env bash
# Fault injection, upstream side: the mock upstream resets mid-body, answers malformed JSON
# or malformed SSE, never answers, or trickles one byte per second. Each fault gets the
# clear outcome SPEC.md gives (an OpenAI-shaped error or a stream ended by an error event
# and [DONE]), the gateway keeps serving, and no quota reservation is left behind. TAP.
. "$(dirname "$0")/lib.sh"

export ADMIN_TOKEN=fault-admin-token
sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port); ADMIN_PORT=$(sl_free_port)
cat >"$SL_TMP/gw.yaml" <<CONF
listen: [ { address: 127.0.0.1:$GW_PORT } ]
server: { workers: 2 }
log: { access_log: $SL_TMP/access.log }
admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: ADMIN_TOKEN }
store: { backend: memory, path: $SL_TMP/sluice.journal }
upstreams:
  mock:
    type: openai
    base_url: $MOCK_URL/v1
    api_key_env: MOCK_KEY
    timeouts: { connect: 1s, first_byte: 2s, total: 4s, stream_idle: 2s }
models:
  demo: { targets: [ { upstream: mock, model: mock-model } ] }
consumers:
  acme: { quota: { tokens: 1000000, window: day } }
plugins:
  - auth
  - quota: { default_max_tokens: 64 }
CONF
sl_start_gateway "$SL_TMP/gw.yaml" || sl_bail "gateway starts"
KEY=$("$SLUICE" key -c "$SL_TMP/gw.yaml" issue --consumer acme 2>/dev/null)
[ -n "$KEY" ] || sl_bail "a key is issued"
AUTH=(-H "Authorization: Bearer $KEY")

# chat BODY-EXTRA: a chat request (stream or not) carrying the mock's per-request knobs
chat() { sl_http POST /v1/chat/completions "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"hi there\"}]$1}" "${AUTH[@]}"; }
stream() { # BODY-EXTRA -> $SL_TMP/s.sse
    curl -sS -N --max-time 20 "${AUTH[@]}" -H 'content-type: application/json' -o "$SL_TMP/s.sse" \
        --data "{\"model\":\"demo\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi there\"}]$1}" \
        "$GW_URL/v1/chat/completions" 2>/dev/null
    sl_sse_summary "$SL_TMP/s.sse"
}
err_code() { printf '%s' "$HTTP_BODY" | sl_json 'd["error"]["code"]'; }
reserved() { curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT/admin/v1/usage?consumer=acme" | sl_json 'd["data"][0]["reserved"]'; }
still_serving() { # NAME: the gateway is alive and a plain request is answered 200
    sl_gw_alive "$1: gateway still running"
    chat ''
    sl_is "$1: next request served" "$HTTP_CODE" 200
    sl_is "$1: no reservation left" "$(reserved)" 0
}

# ---- upstream resets mid-body ----
s=$(stream ',"mock":{"chunks":6,"reset_after_chunks":2}')
sl_is "reset mid-stream: the client got the chunks sent before" "$(printf '%s' "$s" | sl_json 'd["text"]')" "hellohello"
sl_is "reset mid-stream: ended by one OpenAI error event" "$(printf '%s' "$s" | sl_json 'd["errors"]')" 1
sl_is "reset mid-stream: then data: [DONE]" "$(printf '%s' "$s" | sl_json 'd["done_last"]')" true
chat ',"mock":{"close_before_headers":true}'
sl_is "reset before headers: 502" "$HTTP_CODE" 502
sl_is "reset before headers: upstream_error" "$(err_code)" upstream_error
still_serving "reset"

# ---- malformed JSON with a 200 ----
chat ',"mock":{"raw_body":"{\"choices\":[{\"message\":{\"content\":\"cut"}'
sl_like "malformed JSON answer: a 5xx, not a 200" "$HTTP_CODE" '^50[234]$'
sl_is "malformed JSON answer: OpenAI-shaped error" "$(printf '%s' "$HTTP_BODY" | sl_json 'd["error"]["type"]')" api_error
still_serving "malformed JSON"

# ---- malformed SSE ----
s=$(stream ',"mock":{"raw_content_type":"text/event-stream","raw_body":"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: {not json\n\ndata: \u00ff\n\n: comment only\n\nevent: x\n\n"}')
sl_is "malformed SSE: the stream still ends with data: [DONE]" "$(printf '%s' "$s" | sl_json 'd["done_last"]')" true
sl_like "malformed SSE: the good event reached the client" "$(printf '%s' "$s" | sl_json 'd["text"]')" '^ok'
still_serving "malformed SSE"
s=$(stream ',"mock":{"raw_content_type":"text/event-stream","raw_body":"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"no end"}')
sl_is "SSE cut without [DONE]: ended by an error event" "$(printf '%s' "$s" | sl_json 'd["errors"]')" 1
sl_is "SSE cut without [DONE]: then data: [DONE]" "$(printf '%s' "$s" | sl_json 'd["done_last"]')" true
still_serving "cut SSE"

# ---- never answers ----
chat ',"mock":{"hang":true}'
sl_is "upstream never answers: 504" "$HTTP_CODE" 504
sl_is "upstream never answers: upstream_timeout" "$(err_code)" upstream_timeout
s=$(stream ',"mock":{"chunks":5,"hang_after_chunks":2}')
sl_is "stream goes silent: ended by an error event" "$(printf '%s' "$s" | sl_json 'd["errors"]')" 1
sl_is "stream goes silent: then data: [DONE]" "$(printf '%s' "$s" | sl_json 'd["done_last"]')" true
still_serving "hang"

# ---- one byte per second ----
chat ',"mock":{"raw_body":"{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[]}","byte_delay_ms":1000}'
sl_is "1 byte/s answer: 504 when the total timeout passes" "$HTTP_CODE" 504
sl_is "1 byte/s answer: upstream_timeout" "$(err_code)" upstream_timeout
s=$(stream ',"mock":{"raw_content_type":"text/event-stream","raw_body":"data: {\"choices\":[{\"delta\":{\"content\":\"slow\"}}]}\n\ndata: [DONE]\n\n","byte_delay_ms":1000}')
# no whole event arrives before the total timeout: a 504 before any byte of the stream
sl_like "1 byte/s stream: upstream_timeout" "$(cat "$SL_TMP/s.sse")" '"code": ?"upstream_timeout"'
still_serving "trickle"
sl_wait_for 5 sh -c "[ \"\$(curl -s $MOCK_URL/__mock/stats | $SL_PY -c 'import json,sys; print(json.load(sys.stdin)[\"active_requests\"])')\" = 0 ]"
sl_is "every upstream request was closed by the gateway" "$(sl_mock_stats | sl_json 'd["active_requests"]')" 0
sl_done
