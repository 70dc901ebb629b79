# shellcheck shell=bash
# tests/e2e/console_lib.sh — for the console tests: build the console from its sources into
# the test's temp folder (so a test never serves a stale dist/), and start a gateway with the
# mock upstream, an admin listener and the console. Source after tests/integration/lib.sh.

SL_CONSOLE_SRC=$SL_SOURCE_ROOT/gateway/console
export SLUICE_ADMIN_TOKEN=${SLUICE_ADMIN_TOKEN:-console-admin-token-0123456789}

# sl_console_build: vite build into $SL_TMP/console; sets CONSOLE_DIR. 1 with a diagnostic
# when the console's npm packages are not installed.
sl_console_build() {
    CONSOLE_DIR=$SL_TMP/console
    if [ ! -x "$SL_CONSOLE_SRC/node_modules/.bin/vite" ]; then
        sl_diag "the console's npm packages are missing: cd gateway/console && npm ci"
        return 1
    fi
    if ! (cd "$SL_CONSOLE_SRC" && node_modules/.bin/vite build --logLevel error --outDir "$CONSOLE_DIR" --emptyOutDir) \
        >"$SL_TMP/vite.log" 2>&1; then
        sl_diag "vite build failed: $(cat "$SL_TMP/vite.log")"
        return 1
    fi
}

# sl_console_gateway [EXTRA YAML]: mock upstream (unless MOCK_URL is set) + gateway with auth and quota, consumer acme
# (model demo, 100000 tokens a day), the admin listener and the console. Sets what
# sl_start_mock and sl_start_gateway set, plus ADMIN_PORT, ADMIN_URL and CONF.
sl_console_gateway() {
    [ -n "${MOCK_URL:-}" ] || sl_start_mock || return 1
    GW_PORT=$(sl_free_port)
    ADMIN_PORT=$(sl_free_port)
    ADMIN_URL=http://127.0.0.1:$ADMIN_PORT
    CONF=$SL_TMP/sluice.yaml
    SL_CONF_EXTRA="admin: { listen: 127.0.0.1:$ADMIN_PORT }
console: { dir: $CONSOLE_DIR }
consumers:
  acme: { models: [${CONSOLE_MODELS:-demo}], quota: { tokens: 100000, window: day } }
plugins: ${CONSOLE_PLUGINS:-[auth, quota, route]}
${1:-}" sl_gateway_config >"$CONF"
    sl_start_gateway "$CONF"
}
