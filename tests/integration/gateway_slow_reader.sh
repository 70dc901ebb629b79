#!/usr/bin/env bash
# A 200 MiB SSE stream from the mock through the gateway to a client that reads slowly
# (64 KiB, then a pause). The gateway must apply backpressure instead of buffering: its RSS
# stays within start + 64 MiB (a memory bound, not a time bound), and every byte arrives
# in order. Prints the RSS samples as TAP comments.
. "$(dirname "$0")/lib.sh"

TOTAL=$((200 * 1024 * 1024))
BOUND_KIB=$((64 * 1024))

sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
SL_CONF_SERVER="{ workers: 2 }"
SL_CONF_UPSTREAMS="  mock:
    type: openai
    base_url: $MOCK_URL/v1
    api_key_env: MOCK_KEY
    timeouts: { connect: 2s, first_byte: 10s, total: 300s }"
sl_gw_up

# Warm up (threads, pools, first allocations) before taking the baseline.
for i in 1 2 3; do
    curl -s -o /dev/null --max-time 10 -H 'content-type: application/json' \
        --data '{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}' "$GW_URL/v1/chat/completions"
done
base=$(sl_rss_kib "$GW_PID")
sl_like "gateway RSS readable" "${base:-}" '^[0-9]+$'
base=${base:-0}

body="{\"model\":\"demo\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"a long story\"}],\"mock\":{\"total_bytes\":$TOTAL,\"event_bytes\":16384}}"
"$SL_PY" "$SL_SOURCE_ROOT/tests/integration/slow_reader.py" 127.0.0.1 "$GW_PORT" "$body" 65536 0.002 \
    >"$SL_TMP/reader.json" 2>"$SL_TMP/reader.err" &
reader=$!
sl_track "$reader"

max=$base
samples=()
while sl_is_ours "$reader"; do
    r=$(sl_rss_kib "$GW_PID")
    if [ -n "$r" ]; then
        samples+=("$((r / 1024))")
        [ "$r" -gt "$max" ] && max=$r
    fi
    sleep 0.5
done
wait "$reader"
rc=$?
sl_diag "gateway RSS MiB, every 0.5 s (baseline $((base / 1024))): ${samples[*]}"
sum=$(cat "$SL_TMP/reader.json")
sl_diag "reader: $sum $(head -c 500 "$SL_TMP/reader.err")"

sl_is "slow reader: stream complete, in order, finish stop, [DONE]" "$rc" 0
mock=$(sl_mock_stats | sl_json 'd["last_stream"]')
sl_is "slow reader: every event and content byte the mock sent arrived" \
    "$(sl_json 'str(d["events"])+" "+str(d["content_bytes"])' <<<"$sum")" \
    "$(sl_json 'str(d["events"])+" "+str(d["content_bytes"])' <<<"$mock")"
sl_check "slow reader: the mock sent the whole 200 MiB stream" \
    test "$(sl_json 'd["bytes"]' <<<"$mock" || echo 0)" -ge "$TOTAL"
sl_check "gateway RSS stayed within baseline + 64 MiB (max $((max / 1024)) MiB, baseline $((base / 1024)) MiB)" \
    test "$max" -le $((base + BOUND_KIB))

sl_done
