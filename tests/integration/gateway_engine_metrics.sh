#!/usr/bin/env bash
# The gateway's /metrics carries its engine workers' own gauges (they listen on unix
# sockets Prometheus cannot reach): queue length, running sequences, KV-cache use and
# tokens per second of each worker, labelled upstream and worker, merged family by family
# so the exposition stays valid (strict parser). Prints TAP.
. "$(dirname "$0")/lib.sh"

sl_demo_model "$SL_TMP/demo" --phrase "Hello from the engine."
sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
ADMIN_PORT=$(sl_free_port)
export ADMIN_TOKEN=engine-metrics-admin
SL_CONF_UPSTREAMS="  local:
    type: engine
    model: $SL_TMP/demo
    served_model_name: demo
    workers: 2
    backend: cpu
    args: [--threads, \"1\"]"
SL_CONF_MODELS="  demo: { targets: [ { upstream: local, model: demo } ] }"
SL_CONF_EXTRA="admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: ADMIN_TOKEN }
plugins: [ route ]"
sl_gw_up

scrape() { curl -sS -o "$SL_TMP/m.txt" -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT/metrics" &&
    "$SL_PY" "$SL_SOURCE_ROOT/tests/integration/prom_parse.py" "$SL_TMP/m.txt" >"$SL_TMP/m.json" 2>"$SL_TMP/m.err"; }
m() { # NAME [label=value ...]: sum of matching samples
    "$SL_PY" - "$SL_TMP/m.json" "$@" <<'PY'
import json, sys
samples = json.load(open(sys.argv[1]))
want = dict(a.split('=', 1) for a in sys.argv[3:])
v = sum(s[2] for s in samples if s[0] == sys.argv[2] and all(s[1].get(k) == x for k, x in want.items()))
print(int(v) if v == int(v) else v)
PY
}
ready() { scrape && [ "$(m sluice_engine_workers upstream=local state=ready)" = 2 ]; }
sl_check "both engine workers become ready" sl_wait_for 60 ready
sl_http POST /v1/chat/completions '{"model":"demo","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
sl_is "a request served by an engine worker" "$HTTP_CODE" 200
if scrape; then sl_ok "the exposition with the workers' families passes the strict parser"; else
    sl_not_ok "the exposition with the workers' families passes the strict parser" "$(cat "$SL_TMP/m.err")"; fi
for f in sluice_engine_queue_length sluice_engine_running_sequences sluice_engine_kv_cache_usage_ratio \
    sluice_engine_tokens_per_second; do
    n=$("$SL_PY" -c 'import json,sys; print(len([s for s in json.load(open(sys.argv[1])) if s[0] == sys.argv[2] and s[1].get("upstream") == "local" and s[1].get("model") == "demo"]))' "$SL_TMP/m.json" "$f")
    sl_is "$f: one sample per worker, labelled upstream, worker and model" "$n" 2
done
sl_is "workers are labelled 0 and 1" \
    "$("$SL_PY" -c 'import json,sys; print(sorted({s[1]["worker"] for s in json.load(open(sys.argv[1])) if s[0] == "sluice_engine_max_batch"}))' "$SL_TMP/m.json")" \
    "['0', '1']"
sl_is "generated tokens: the request's completion counted by a worker" \
    "$(m sluice_engine_generation_tokens_total upstream=local)" \
    "$(sl_json 'd["usage"]["completion_tokens"]' <<<"$HTTP_BODY")"
sl_is "each family once (HELP and TYPE)" "$(grep -c '^# TYPE sluice_engine_queue_length ' "$SL_TMP/m.txt")" 1

# a worker gone: the scrape still answers, with the other's gauges
pid=$(curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT/admin/v1/upstreams" |
    sl_json '[u for u in d["upstreams"] if u["name"] == "local"][0]["workers"][0]["pid"]')
kill -STOP "$pid"
scrape
n1=$("$SL_PY" -c 'import json,sys; print(len([s for s in json.load(open(sys.argv[1])) if s[0] == "sluice_engine_max_batch" and s[1].get("worker") == "1"]))' "$SL_TMP/m.json")
sl_is "a stopped worker: /metrics answers after the 1 s wait, with the other worker's gauges only" \
    "$n1 $(grep -c 'worker="0"' "$SL_TMP/m.txt")" "1 0"
kill -CONT "$pid"
sl_gw_alive "gateway still running"
sl_done
