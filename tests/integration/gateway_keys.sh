#!/usr/bin/env bash
# Consumers and API keys through the real gateway: keys issued with the CLI and the admin
# API, every credential header form, unknown/revoked/expired keys, the model allow-list,
# keys declared by hash, JWT (HS256), durability across kill -9 (memory journal), and
# revocation reaching a second gateway that shares a real redis-server. Prints TAP.
. "$(dirname "$0")/lib.sh"

export SLUICE_SECRET=test-server-secret-0123456789
export ADMIN_TOKEN=admin-token-for-tests
export JWT_SECRET=jwt-shared-secret-for-acme-jwt

sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
ADMIN_PORT=$(sl_free_port)
DECLARED_KEY=sk-sluice-Declared0123456789abcdefghijKLMN
DECLARED_HASH=$("$SLUICE" key hash "$DECLARED_KEY")
sl_is "key hash: 64 hex characters" "$(printf %s "$DECLARED_HASH" | tr -cd '0-9a-f' | wc -c)" "64"

config() { # store-yaml admin-port gw-port
    cat <<CONF
listen: [ { address: 127.0.0.1:$3 } ]
server: { workers: 2 }
log: { access_log: $SL_TMP/access.log }
admin: { listen: 127.0.0.1:$2, token_env: ADMIN_TOKEN }
store: $1
upstreams:
  mock: { type: openai, base_url: $MOCK_URL/v1 }
models:
  demo: { targets: [ { upstream: mock, model: mock-model } ] }
  other: { targets: [ { upstream: mock, model: other-model } ] }
consumers:
  acme: { models: [demo] }
  globex: {}
  declared: { keys: [ "$DECLARED_HASH" ] }
  jwtco: { jwt: { alg: HS256, secret_env: JWT_SECRET } }
plugins: [ auth ]
CONF
}
config "{ backend: memory, path: $SL_TMP/store.journal }" "$ADMIN_PORT" "$GW_PORT" >"$SL_TMP/gw.yaml"
sl_start_gateway "$SL_TMP/gw.yaml" || sl_bail "gateway with auth starts"
CLI=("$SLUICE" key -c "$SL_TMP/gw.yaml")

KEY=$("${CLI[@]}" issue --consumer acme --name ci --expires 30d 2>"$SL_TMP/issue.err")
sl_like "key issue prints a key" "$KEY" '^sk-sluice-[0-9A-Za-z]{32}$'
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
chat() { curl -s -o /dev/null -w '%{http_code}' "$GW_URL/v1/chat/completions" -H 'content-type: application/json' \
    -d "{\"model\":\"${1}\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" "${@:2}"; }
sl_is "Authorization: Bearer KEY" "$(chat demo -H "Authorization: Bearer $KEY")" 200
sl_is "Authorization: KEY (bare)" "$(chat demo -H "Authorization: $KEY")" 200
sl_is "api-key: KEY" "$(chat demo -H "api-key: $KEY")" 200
sl_is "x-api-key: KEY" "$(chat demo -H "x-api-key: $KEY")" 200
sl_is "no credential: 401" "$(chat demo)" 401
sl_http POST /v1/chat/completions '{"model":"demo","messages":[]}' -H "Authorization: Bearer sk-sluice-00000000000000000000000000000000"
sl_is "unknown key: 401 invalid_api_key" "$HTTP_CODE $(echo "$HTTP_BODY" | sl_json 'd["error"]["code"]')" "401 invalid_api_key"
sl_is "garbage credential: 401" "$(chat demo -H 'Authorization: Bearer hello')" 401
sl_http POST /v1/chat/completions '{"model":"other","messages":[]}' -H "Authorization: Bearer $KEY"
sl_is "model outside the allow-list: 404 model_not_found" "$HTTP_CODE $(echo "$HTTP_BODY" | sl_json 'd["error"]["code"]')" "404 model_not_found"
sl_http GET /v1/models '' -H "Authorization: Bearer $KEY"
sl_is "/v1/models lists only the allowed models" "$(echo "$HTTP_BODY" | sl_json '[m["id"] for m in d["data"]]')" '["demo"]'
# the access log is written in batches every 100 ms
sl_check "the access log names the consumer" sl_wait_for 10 grep -q '"consumer":"acme"' "$SL_TMP/access.log"
sl_check "the access log never holds the key" bash -c "! grep -q '$KEY' '$SL_TMP/access.log'"

# admin API directly
admin() { curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" "$@"; }
resp=$(admin -X POST "http://127.0.0.1:$ADMIN_PORT/admin/v1/keys" -d '{"consumer":"globex","name":"web"}')
KEY2=$(echo "$resp" | sl_json 'd["key"]')
ID2=$(echo "$resp" | sl_json 'd["id"]')
sl_like "admin POST /keys: id and key" "$ID2 $KEY2" '^key_[0-9A-Za-z]+ sk-sluice-'
sl_is "admin POST /keys for an unknown consumer: 400" \
    "$(status -H "Authorization: Bearer $ADMIN_TOKEN" -X POST "http://127.0.0.1:$ADMIN_PORT/admin/v1/keys" -d '{"consumer":"nobody"}')" 400
list=$(admin "http://127.0.0.1:$ADMIN_PORT/admin/v1/keys?consumer=globex")
sl_is "admin GET /keys?consumer=: that consumer's keys, no secret" \
    "$(echo "$list" | sl_json '[(k["consumer"], k["name"], "key" in k, "hash" in k) for k in d["data"]]')" '[["globex", "web", false, false]]'
sl_like "key list (CLI) shows both keys" "$("${CLI[@]}" list | wc -l | tr -d ' ')" '^3$'
sl_is "other consumer's key works" "$(chat other -H "Authorization: Bearer $KEY2")" 200
sl_is "admin without the token: 401" "$(status "http://127.0.0.1:$ADMIN_PORT/admin/v1/keys")" 401

# revocation
sl_check "key revoke (CLI)" "${CLI[@]}" revoke "$ID2"
sl_is "a revoked key: 401" "$(chat other -H "Authorization: Bearer $KEY2")" 401
sl_is "revoking an unknown id: 404" "$(status -H "Authorization: Bearer $ADMIN_TOKEN" -X DELETE "http://127.0.0.1:$ADMIN_PORT/admin/v1/keys/key_nope")" 404

# declared by hash, JWT
sl_is "a key declared in the config by hash" "$(chat demo -H "Authorization: Bearer $DECLARED_KEY")" 200
now=$(date +%s)
jwt() { python3 - "$1" "$JWT_SECRET" <<'PY'
import base64, hashlib, hmac, json, sys
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b'=').decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()); p = b(sys.argv[1].encode())
s = b(hmac.new(sys.argv[2].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
print(f"{h}.{p}.{s}")
PY
}
sl_is "JWT HS256 with sub and exp" "$(chat demo -H "Authorization: Bearer $(jwt "{\"sub\":\"jwtco\",\"exp\":$((now + 600))}")")" 200
sl_is "JWT expired: 401" "$(chat demo -H "Authorization: Bearer $(jwt "{\"sub\":\"jwtco\",\"exp\":$((now - 600))}")")" 401
sl_is "JWT not yet valid (nbf): 401" "$(chat demo -H "Authorization: Bearer $(jwt "{\"sub\":\"jwtco\",\"exp\":$((now + 600)),\"nbf\":$((now + 300))}")")" 401
sl_is "JWT for a consumer without jwt: 401" "$(chat demo -H "Authorization: Bearer $(jwt "{\"sub\":\"acme\",\"exp\":$((now + 600))}")")" 401
# change a character inside the signature: the last one holds 2 padding bits, so a new last
# character can decode to the same signature (1 run in 16 passed a "bad" token)
bad=$(jwt "{\"sub\":\"jwtco\",\"exp\":$((now + 600))}"); c=A; [ "${bad: -10:1}" = A ] && c=B
bad="${bad:0:${#bad}-10}$c${bad: -9}"
sl_is "JWT with a bad signature: 401" "$(chat demo -H "Authorization: Bearer $bad")" 401

# kill -9: nothing issued or revoked is lost
KEY3=$("${CLI[@]}" issue --consumer acme 2>/dev/null)
kill -KILL "$GW_PID"; wait "$GW_PID" 2>/dev/null
sl_start_gateway "$SL_TMP/gw.yaml" || sl_bail "gateway restarts after kill -9"
sl_is "after kill -9: the key issued just before works" "$(chat demo -H "Authorization: Bearer $KEY3")" 200
sl_is "after kill -9: the first key works" "$(chat demo -H "Authorization: Bearer $KEY")" 200
sl_is "after kill -9: the revoked key stays revoked" "$(chat other -H "Authorization: Bearer $KEY2")" 401

# two gateways sharing one redis: a revocation reaches the other within 1 s
REDIS_PORT=$(sl_free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$SL_TMP/redis.log" 2>&1 &
sl_track $!
sl_wait_for 10 redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || sl_bail "redis-server starts"
GA=$(sl_free_port); GB=$(sl_free_port); AA=$(sl_free_port); AB=$(sl_free_port)
config "{ backend: redis, redis: { url: \"redis://127.0.0.1:$REDIS_PORT/0\", prefix: \"t:\" } }" "$AA" "$GA" >"$SL_TMP/a.yaml"
config "{ backend: redis, redis: { url: \"redis://127.0.0.1:$REDIS_PORT/0\", prefix: \"t:\" } }" "$AB" "$GB" >"$SL_TMP/b.yaml"
GW_PORT=$GA; sl_start_gateway "$SL_TMP/a.yaml" || sl_bail "gateway A (redis) starts"; URL_A=$GW_URL
GW_PORT=$GB; sl_start_gateway "$SL_TMP/b.yaml" || sl_bail "gateway B (redis) starts"; URL_B=$GW_URL
RK=$("$SLUICE" key -c "$SL_TMP/a.yaml" issue --consumer acme 2>/dev/null)
RID=$("$SLUICE" key -c "$SL_TMP/a.yaml" list --json | sl_json 'd[-1]["id"]')
GW_URL=$URL_B
sl_is "redis: a key issued on A works on B" "$(chat demo -H "Authorization: Bearer $RK")" 200
"$SLUICE" key -c "$SL_TMP/a.yaml" revoke "$RID" >/dev/null
t0=$(date +%s%N)
refused_on_b() { [ "$(chat demo -H "Authorization: Bearer $RK")" = 401 ]; }
sl_check "redis: revoked on A, refused on B" sl_wait_for 10 refused_on_b
sl_diag "revocation reached B after $((($(date +%s%N) - t0) / 1000000)) ms (the SPEC asks for 1 s; not asserted: timing depends on the machine's load)"
GW_URL=$URL_A
sl_is "redis: and on A" "$(chat demo -H "Authorization: Bearer $RK")" 401

sl_done
