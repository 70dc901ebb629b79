#!/usr/bin/env bash
# The console in headless Chromium (tests/e2e/console.mjs): starts the mock upstream, an
# R1-like upstream, and a gateway serving the console; console.mjs prints the TAP.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/console_lib.sh"

CHROMIUM=${SL_CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || sl_bail "chromium is installed ($CHROMIUM: apt-get install chromium)"
[ -d "$SL_SOURCE_ROOT/tests/node_modules/playwright-core" ] || sl_bail "playwright-core is installed (cd tests && npm ci)"
sl_console_build || sl_bail "the console builds (vite)"

R1_PORT_FILE=$SL_TMP/r1.port
: >"$R1_PORT_FILE"
"$SL_NODE" "$(dirname "$0")/r1_upstream.mjs" >"$R1_PORT_FILE" 2>"$SL_TMP/r1.log" &
sl_track $!
sl_wait_for 15 grep -q '^[0-9]' "$R1_PORT_FILE" || sl_bail "the R1-like upstream starts" "$(cat "$SL_TMP/r1.log")"
R1_URL=http://127.0.0.1:$(head -n1 "$R1_PORT_FILE")

sl_start_mock || sl_bail "mock upstream starts"
SL_CONF_UPSTREAMS="  mock:
    type: openai
    base_url: $MOCK_URL/v1
    api_key_env: MOCK_KEY
    timeouts: { connect: 2s, first_byte: 5s, total: 60s }
  r1:
    type: openai
    base_url: $R1_URL/v1
    timeouts: { connect: 2s, first_byte: 5s, total: 30s }"
SL_CONF_MODELS="  demo: { targets: [ { upstream: mock, model: mock-model } ] }
  deepseek-r1: { targets: [ { upstream: r1, model: r1-model } ] }"
CONSOLE_MODELS="demo, deepseek-r1"
CONSOLE_PLUGINS="[auth, { guard: { deny: [forbidden phrase] } }, quota, route]"
sl_console_gateway || sl_bail "gateway with the console starts"

# a key for the chat page, issued through the admin API
key=$(curl -sS -X POST -H "Authorization: Bearer $SLUICE_ADMIN_TOKEN" -H 'content-type: application/json' \
    --data '{"consumer":"acme","name":"chat"}' "$ADMIN_URL/admin/v1/keys" | sl_json 'd["key"]')
[ -n "$key" ] || sl_bail "a key for the chat page"

mkdir -p "$SL_BUILD_ROOT"
GW_URL=$GW_URL ADMIN_URL=$ADMIN_URL ADMIN_TOKEN=$SLUICE_ADMIN_TOKEN CHAT_KEY=$key MOCK_URL=$MOCK_URL \
GW_LOG=$GW_LOG CHROMIUM=$CHROMIUM SHOT_DIR=$SL_BUILD_ROOT \
    "$SL_NODE" "$(dirname "$0")/console.mjs"
rc=$?
[ $rc -eq 0 ] || sl_diag "gateway log (tail): $(tail -n 15 "$GW_LOG")"
exit $rc
