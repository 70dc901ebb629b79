#!/usr/bin/env bash
# Runs only in a sanitizer build (-Db_sanitize=address,undefined or thread; meson registers it there):
# the sanitizer-built gateway with the full chain serves a few thousand mixed requests (streams, cache
# hits, fallbacks, quota refusals, guard blocks, clients leaving mid-stream) through 12 config
# reloads (SIGHUP and POST /admin/v1/reload), then stops on SIGTERM. LeakSanitizer,
# AddressSanitizer and UBSan (or ThreadSanitizer) must report nothing and the gateway must exit 0. TAP.
. "$(dirname "$0")/lib.sh"
. "$SL_SOURCE_ROOT/tests/soak/soak_config.sh"

export ADMIN_TOKEN=leak-admin-token
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
REQUESTS=${LEAK_REQUESTS:-3000}
sl_start_mock "${soak_mock_args[@]}" || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port); ADMIN_PORT=$(sl_free_port)
ACCESS_LOG=$SL_TMP/access.log
CONF=$SL_TMP/leak.yaml
soak_config >"$CONF"
sl_start_gateway "$CONF" || sl_bail "the sanitizer-built gateway starts"
KEY=$("$SLUICE" key -c "$CONF" issue --consumer acme 2>/dev/null)
POOR=$("$SLUICE" key -c "$CONF" issue --consumer poor 2>/dev/null)
[ -n "$KEY" ] && [ -n "$POOR" ] || sl_bail "keys are issued"

"$SL_PY" "$SL_SOURCE_ROOT/tests/soak/mixed_load.py" "$GW_URL" --key "$KEY" --poor-key "$POOR" \
    --threads 4 --requests "$REQUESTS" >"$SL_TMP/load.json" &
LOAD=$!
reloads=0 reload_ok=0
for ((i = 0; i < 12; i++)); do
    sleep 0.5
    # each reload changes something real: the cache size and the guard's words
    sed -i "s/max_bytes: [0-9]*MiB/max_bytes: $((4 + i % 3))MiB/; s/deny: \[forbiddenword[^]]*\]/deny: [forbiddenword, word$i]/" "$CONF"
    if ((i % 2)); then
        sl_signal HUP "$GW_PID" && reload_ok=$((reload_ok + 1))
    else
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $ADMIN_TOKEN" \
               "http://127.0.0.1:$ADMIN_PORT/admin/v1/reload")
        [ "$code" = 200 ] && reload_ok=$((reload_ok + 1))
    fi
    reloads=$((reloads + 1))
done
wait "$LOAD"
load=$(cat "$SL_TMP/load.json")
sl_is "$REQUESTS mixed requests answered" "$(printf '%s' "$load" | sl_json 'd["requests"]')" "$REQUESTS"
sl_is "every answer as expected for its kind" "$(printf '%s' "$load" | sl_json 'd["errors"]')" 0 || sl_diag "$load"
sl_is "$reloads reloads accepted" "$reload_ok" "$reloads"
sl_check "reloads were applied (log)" grep -q -i "reload" "$GW_LOG"
sl_gw_alive "gateway still running after the load"
sl_signal TERM "$GW_PID"
sl_wait_for 60 sh -c "! kill -0 $GW_PID 2>/dev/null"
wait "$GW_PID"; st=$?
sl_is "gateway exits 0 on SIGTERM" "$st" 0
report=$(grep -E "LeakSanitizer|AddressSanitizer|ThreadSanitizer|runtime error|SUMMARY: " "$GW_LOG" | head -n 5)
sl_is "no sanitizer report (leaks, memory errors, undefined behaviour)" "$report" ""
[ -n "$report" ] && sl_diag "$(grep -A 25 -E 'ERROR: (LeakSanitizer|AddressSanitizer)|WARNING: ThreadSanitizer|runtime error' "$GW_LOG" | head -n 60)"
sl_done
