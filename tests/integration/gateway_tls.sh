#!/usr/bin/env bash
# A TLS listener (self-signed certificate made now with `openssl req`) beside a plain one:
# curl --cacert gets answers over HTTPS, including a stream and keep-alive. Prints TAP.
. "$(dirname "$0")/lib.sh"

cert=$SL_TMP/tls.crt key=$SL_TMP/tls.key
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$key" -out "$cert" -days 1 -subj /CN=localhost \
    -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' >"$SL_TMP/openssl.log" 2>&1 \
    || sl_bail "self-signed certificate made" "$(cat "$SL_TMP/openssl.log")"

sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
TLS_PORT=$(sl_free_port)
SL_CONF_LISTEN="  - address: 127.0.0.1:$GW_PORT
  - address: 127.0.0.1:$TLS_PORT
    tls: { cert: $cert, key: $key }"
sl_gateway_config >"$SL_TMP/sluice.yaml"
sl_start_gateway "$SL_TMP/sluice.yaml" "https://127.0.0.1:$TLS_PORT/v1/models" --cacert "$cert" \
    || sl_bail "gateway starts and answers on its TLS listener"
TLS_URL=https://127.0.0.1:$TLS_PORT

code=$(curl -sS -o "$SL_TMP/models.json" -w '%{http_code}' --max-time 10 --cacert "$cert" "$TLS_URL/v1/models")
sl_is "https: GET /v1/models with --cacert" "$code $(sl_json 'd["object"]' <"$SL_TMP/models.json")" "200 list"

chat='{"model":"demo","messages":[{"role":"user","content":"hi"}]}'
out=$(curl -sS --max-time 10 --cacert "$cert" -H 'content-type: application/json' --data "$chat" "$TLS_URL/v1/chat/completions")
sl_is "https: chat completion" "$(sl_json 'd["choices"][0]["message"]["content"]' <<<"$out")" hellohellohellohellohello

curl -sSN -o "$SL_TMP/s.sse" --max-time 20 --cacert "$cert" -H 'content-type: application/json' \
    --data '{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}],"mock":{"texts":["t","l","s"],"chunks":3}}' \
    "$TLS_URL/v1/chat/completions"
sl_is "https: streamed chat ends with [DONE]" "$(sl_sse_summary "$SL_TMP/s.sse" | sl_json 'd["text"]+" "+str(d["done_last"])')" "tls True"

v=$(curl -sv -o /dev/null -o /dev/null --max-time 10 --cacert "$cert" "$TLS_URL/v1/models" "$TLS_URL/v1/models" 2>&1)
sl_like "https: keep-alive re-uses the TLS connection" "$v" 'Re-using existing connection'

curl -sS -o /dev/null --max-time 10 "$TLS_URL/v1/models" 2>/dev/null
sl_is "https: a client without the CA refuses the certificate (curl exit 60)" "$?" 60

v=$(openssl s_client -connect "127.0.0.1:$TLS_PORT" -CAfile "$cert" -verify_return_error </dev/null 2>&1)
sl_like "https: openssl s_client verifies the chain" "$v" 'Verify return code: 0 \(ok\)'

code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$TLS_PORT/v1/models")
sl_check "https: plain HTTP on the TLS port gets no 200 (got $code)" test "$code" != 200

code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$GW_PORT/v1/models")
sl_is "plain listener beside the TLS one still answers" "$code" 200

sl_done
