#!/usr/bin/env bash
# Hot reload through the real gateway: with 50 streams in flight the YAML's weights and
# quotas change (SIGHUP): no stream breaks, new requests follow the new config; a broken
# file is refused with FILE:LINE:COL (POST /admin/v1/reload answers 400 with the errors)
# while traffic (20 more streams) goes on; an edit of the file is picked up by itself (inotify);
# the new quota is enforced (a 10-token quota answers 429). Prints TAP.
. "$(dirname "$0")/lib.sh"

export SLUICE_SECRET=reload-test-secret
export ADMIN_TOKEN=reload-admin-token
sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
ADMIN_PORT=$(sl_free_port)
CONF=$SL_TMP/sluice.yaml
write_config() { # weight-a weight-b quota-tokens [store section]
    cat >"$CONF.new" <<CONF
listen: [ { address: 127.0.0.1:$GW_PORT } ]
server: { workers: 2 }
${4:-}
log: { access_log: $SL_TMP/access.log }
admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: ADMIN_TOKEN }
upstreams:
  a: { type: openai, base_url: $MOCK_URL/v1 }
  b: { type: openai, base_url: $MOCK_URL/v1 }
models:
  demo:
    targets:
      - { upstream: a, model: model-a, weight: $1 }
      - { upstream: b, model: model-b, weight: $2 }
consumers:
  acme: { quota: { tokens: $3, window: day } }
plugins: [ auth, quota, route ]
CONF
    mv "$CONF.new" "$CONF"
}
write_config 1 0 1000000
sl_start_gateway "$CONF" || sl_bail "gateway starts"
KEY=$("$SLUICE" key -c "$CONF" issue --consumer acme 2>/dev/null)
chat() { sl_http POST /v1/chat/completions '{"model":"demo","messages":[{"role":"user","content":"hi"}]}' -H "Authorization: Bearer $KEY"; }
admin_post() { curl -s -o "$SL_TMP/admin.out" -w '%{http_code}' -X POST -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT$1"; }

chat
sl_is "before: served by a" "$(sl_header x-sluice-upstream)" "a/model-a"

# 50 streams of 20 chunks, 100 ms apart (2 s each), in flight across the reload
sl_mock_config '{"chunks":20,"chunk_delay_ms":100}'
mkdir -p "$SL_TMP/streams"
for i in $(seq 1 50); do
    curl -sN --max-time 60 -D "$SL_TMP/streams/$i.h" "$GW_URL/v1/chat/completions" -H "Authorization: Bearer $KEY" \
        -H 'content-type: application/json' \
        -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}' >"$SL_TMP/streams/$i.sse" &
done
sleep 0.8
write_config 0 1 500000
sleep 0.1 # the file watcher may reload as well: both are fine
kill -HUP "$GW_PID"
sleep 0.5
sl_mock_config '{"chunks":2,"chunk_delay_ms":0}'
chat
sl_is "after SIGHUP: new requests follow the new weights" "$(sl_header x-sluice-upstream)" "b/model-b"
on_b=0
for _ in $(seq 1 10); do chat; [ "$(sl_header x-sluice-upstream)" = b/model-b ] && on_b=$((on_b + 1)); done
sl_is "after SIGHUP: 10 more new requests, all on b (weight 0 for a)" "$on_b" 10
wait_streams() { local j; for j in $(jobs -p); do [ "$j" = "$MOCK_PID" ] || [ "$j" = "$GW_PID" ] || wait "$j"; done; }
wait_streams
whole=0
for i in $(seq 1 50); do
    [ "$(sl_sse_summary "$SL_TMP/streams/$i.sse" | sl_json '[len(d["finish"]), d["done_last"], d["errors"], d["text"].count("hello")]')" = '[1, true, 0, 20]' ] \
        && whole=$((whole + 1))
done
sl_is "the 50 streams in flight all finished whole" "$whole" 50
sl_is "the 50 streams finished on the config they started with (all served by a)" \
    "$(cat "$SL_TMP"/streams/*.h | tr -d '\r' | grep -ci '^x-sluice-upstream: a/model-a$')" 50
usage=$(curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT/admin/v1/usage?consumer=acme")
sl_is "after SIGHUP: the new quota applies" "$(echo "$usage" | sl_json 'd["data"][0]["limit"]')" 500000
sl_check "the gateway logged the reload" grep -q 'reload (SIGHUP).*now in use' "$GW_LOG"

# a broken file is refused with its position; traffic goes on on the running config, and
# streams in flight across the refusal finish whole
sl_mock_config '{"chunks":10,"chunk_delay_ms":100}'
mkdir -p "$SL_TMP/streams2"
for i in $(seq 1 20); do
    curl -sN --max-time 60 "$GW_URL/v1/chat/completions" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
        -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}' >"$SL_TMP/streams2/$i.sse" &
done
sleep 0.5
printf 'listen: [ { address: 127.0.0.1:%s } ]\nmodels:\n  demo: { targets: [ { upstream: nowhere } ] }\n' "$GW_PORT" >"$CONF.bad"
cp "$CONF" "$SL_TMP/good.yaml"
mv "$CONF.bad" "$CONF"
code=$(admin_post /admin/v1/reload)
sl_is "POST /admin/v1/reload with a broken file: 400 invalid_config" "$code $(sl_json 'd["error"]["code"]' <"$SL_TMP/admin.out")" "400 invalid_config"
sl_like "the errors say FILE:LINE:COL" "$(sl_json 'd["errors"][0]' <"$SL_TMP/admin.out")" "^$CONF:3:[0-9]+: .*nowhere"
chat
sl_is "broken file refused: the running config keeps serving" "$HTTP_CODE $(sl_header x-sluice-upstream)" "200 b/model-b"
sl_check "the refusal is logged with the position" grep -q "$CONF:3:" "$GW_LOG"
wait_streams
whole=0
for i in $(seq 1 20); do
    [ "$(sl_sse_summary "$SL_TMP/streams2/$i.sse" | sl_json '[len(d["finish"]), d["done_last"], d["errors"], d["text"].count("hello")]')" = '[1, true, 0, 10]' ] \
        && whole=$((whole + 1))
done
sl_is "the 20 streams in flight across the refused reload all finished whole" "$whole" 20
sl_mock_config '{"chunks":2,"chunk_delay_ms":0}'

# an edit is picked up by itself
cp "$SL_TMP/good.yaml" "$CONF"
write_config 1 0 500000
ok=0
for _ in $(seq 1 30); do chat; [ "$(sl_header x-sluice-upstream)" = a/model-a ] && { ok=1; break; }; sleep 0.1; done
sl_is "a file edit is picked up without a signal (inotify)" "$ok" 1
code=$(admin_post /admin/v1/reload)
sl_is "POST /admin/v1/reload with a good file: 200" "$code" 200

# the new quota is enforced, not only reported: below what a request reserves -> 429
write_config 1 0 10
code=$(admin_post /admin/v1/reload)
sl_is "reload to a 10-token quota: 200" "$code" 200
chat
sl_is "the new quota applies to new requests: 429 insufficient_quota" \
    "$HTTP_CODE $(sl_json 'd["error"]["code"]' <<<"$HTTP_BODY")" "429 insufficient_quota"
write_config 1 0 500000
code=$(admin_post /admin/v1/reload)
chat
sl_is "and raised again: served" "$HTTP_CODE" 200

# what only a restart changes is kept, and the log says so
write_config 1 0 500000 "store: { backend: memory, fsync_every: 5s }"
code=$(admin_post /admin/v1/reload)
sl_is "reload with a new store.fsync_every: 200" "$code" 200
sl_check "the log says the store's change waits for a restart" grep -q 'store changed: takes effect at the next restart' "$GW_LOG"
chat
sl_is "and it still serves" "$HTTP_CODE" 200
sl_gw_alive "gateway still running"

sl_done
