# shellcheck shell=bash
# soak_config: the full-chain gateway config the soak and leak tests run, in front of the mock
# at MOCK_URL (started with tests/soak's mock settings: see soak_mock_args). Needs GW_PORT,
# ADMIN_PORT, SL_TMP; ACCESS_LOG (default off). Consumers: acme (large quota), poor (50
# tokens: quota refusals). Model demo on upstream mock; model broken on upstream mock2 (the
# same mock, whose model broken-model answers 500) falls back to demo.
soak_mock_args=(--set usage=true --set prompt_tokens=5 --set completion_tokens=5 --set chunks=8
                --set 'by_model={"broken-model":{"status":500}}')
soak_config() {
    cat <<CONF
listen: [ { address: 127.0.0.1:$GW_PORT } ]
server: { workers: 2 }
log: { access_log: ${ACCESS_LOG:-\"off\"} }
admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: ADMIN_TOKEN }
store: { backend: memory, path: $SL_TMP/soak.journal }
upstreams:
  mock: { type: openai, base_url: $MOCK_URL/v1, timeouts: { connect: 2s, first_byte: 10s, total: 30s } }
  mock2: { type: openai, base_url: $MOCK_URL/v1, timeouts: { connect: 2s, first_byte: 10s, total: 30s } }
models:
  demo: { targets: [ { upstream: mock, model: mock-model } ] }
  broken: { targets: [ { upstream: mock2, model: broken-model } ], fallback: [demo] }
consumers:
  acme: { quota: { tokens: 1000000000, window: month }, rate: { rpm: 10000000 } }
  poor: { quota: { tokens: 50, window: month } }
plugins:
  - auth
  - guard: { deny: [forbiddenword], deny_regex: ["internal[- ]only"], mask: [email] }
  - ratelimit
  - quota
  - cache: { ttl: 1h, scope: consumer, max_bytes: 4MiB }
  - route
CONF
}
