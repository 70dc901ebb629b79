/* The config schema: a good file gives the right values; each kind of mistake gives the
 * exact FILE:LINE:COL: message a user sees from `sluice check`; all mistakes at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "plugin.h"

/* ---- a fake plugin: options { level: 1..3 }, counts frees ---- */

typedef struct fake_conf { long long level; } fake_conf;
static int fake_frees;
static bool fake_saw_null;

static int fake_parse(const sl_ynode *node, sl_plugin_ctx *ctx, void **conf)
{
    static const char *const keys[] = {"level", NULL};
    fake_conf *f = calloc(1, sizeof *f);
    *conf = f;
    f->level = 1;
    if (!node) {
        fake_saw_null = true;
        return 0;
    }
    if (sl_ymap_check_keys(node, keys, ctx->diag) < 0)
        return -1;
    const sl_ynode *l = sl_ymap_get(node, "level");
    if (l && sl_ynode_int(l, ctx->diag, 1, 3, &f->level) < 0)
        return -1;
    return 0;
}

static void fake_free(void *conf)
{
    fake_frees++;
    free(conf);
}

static const sl_plugin fake_plugin = {.name = "fake", .api_version = SL_PLUGIN_API_VERSION,
                                      .config_parse = fake_parse, .config_free = fake_free};
static const sl_plugin plain_plugin = {.name = "plain", .api_version = SL_PLUGIN_API_VERSION};
/* stands in for the built-in route until it exists (a built-in of the name wins) */
static const sl_plugin fake_route = {.name = "route", .api_version = SL_PLUGIN_API_VERSION};

/* ---- helpers ---- */

static sl_config *load(const char *yaml, sl_diag *d)
{
    FILE *f = fopen("t.yaml", "w");
    assert_non_null(f);
    fputs(yaml, f);
    fclose(f);
    sl_diag_init(d, NULL);
    d->quiet = true;
    return sl_config_load("t.yaml", d);
}

static void expect_errors(const char *yaml, const char *const *want, size_t n, bool prefix)
{
    sl_diag d;
    sl_config *c = load(yaml, &d);
    bool same = !c && d.n == n;
    for (size_t i = 0; same && i < n; i++)
        same = prefix ? strncmp(d.lines[i], want[i], strlen(want[i])) == 0 : strcmp(d.lines[i], want[i]) == 0;
    if (!same) {
        for (size_t i = 0; i < n; i++)
            print_message("# want: %s\n", want[i]);
        for (size_t i = 0; i < d.n; i++)
            print_message("# got:  %s\n", d.lines[i]);
        if (c)
            print_message("# (and the config loaded)\n");
    }
    sl_config_unref(c);
    sl_diag_free(&d);
    assert_true(same);
}
#define EXPECT_ERRORS(yaml, ...)                                                                \
    do {                                                                                        \
        const char *const want_[] = {__VA_ARGS__};                                              \
        expect_errors((yaml), want_, sizeof want_ / sizeof *want_, false);                      \
    } while (0)
#define EXPECT_ERROR_PREFIX(yaml, p)                                                            \
    do {                                                                                        \
        const char *const want_[] = {p};                                                        \
        expect_errors((yaml), want_, 1, true);                                                  \
    } while (0)

#define BASE "upstreams:\n  up1: { type: openai, base_url: http://127.0.0.1:9/v1 }\n"

/* ---- good configs ---- */

static const char full[] =
    "listen:\n"
    "  - address: 0.0.0.0:8080\n"
    "  - address: \"[::1]:8443\"\n"
    "    tls: { cert: /etc/sluice/tls.crt, key: /etc/sluice/tls.key }\n"
    "  - unix:/run/sluice.sock\n"
    "  - 9000\n"
    "server: { workers: 4, max_body_size: 16MiB, header_timeout: 5s, idle_timeout: 2m,\n"
    "          body_timeout: 30s, shutdown_timeout: 10s, stream_buffer: 64KiB }\n"
    "admin: { listen: 127.0.0.1:9090, token_env: TEST_SLUICE_ADMIN }\n"
    "store:\n"
    "  backend: redis\n"
    "  path: var/j\n"
    "  fsync_every: 250ms\n"
    "  redis: { url: redis://127.0.0.1:6379/1, prefix: \"t:\" }\n"
    "  secret_env: TEST_SLUICE_SECRET\n"
    "  on_failure: open\n"
    "log: { access_log: \"off\", level: debug }\n"
    "x-timeouts: &t { connect: 2s, first_byte: 30s, total: 10m, stream_idle: 45s }\n"
    "upstreams:\n"
    "  deepseek-api:\n"
    "    type: openai\n"
    "    base_url: https://api.deepseek.com/v1/\n"
    "    api_key_env: TEST_DEEPSEEK_KEY\n"
    "    headers: { X-Team: infra }\n"
    "    timeouts: *t\n"
    "    pool_size: 8\n"
    "  r1-7b:\n"
    "    type: engine\n"
    "    model: /models/DeepSeek-R1-Distill-Qwen-7B/\n"
    "    workers: 2\n"
    "    gpus: [[0], [1, 2]]\n"
    "    backend: cpu\n"
    "    args: [--max-batch, \"32\"]\n"
    "models:\n"
    "  deepseek-r1:\n"
    "    targets:\n"
    "      - { upstream: r1-7b, weight: 90 }\n"
    "      - { upstream: deepseek-api, model: deepseek-reasoner, weight: 10 }\n"
    "    fallback: [small]\n"
    "    sticky: true\n"
    "    profile: { temperature: 0.6, max_tokens: 8192, max_tokens_limit: 16384,\n"
    "               system_prompt: merge, force_thinking: true }\n"
    "  small: { upstream: deepseek-api, model: deepseek-chat }\n"
    "  gpt-4: { alias: deepseek-r1 }\n"
    "  gpt-4o: { alias: gpt-4 }\n"
    "consumers:\n"
    "  acme:\n"
    "    models: [deepseek-r1, gpt-4]\n"
    "    quota: { tokens: 1_000_000, window: day }\n"
    "    rate: { rpm: 600, tpm: 200000, per_model: true }\n"
    "    allow_target_pin: yes\n"
    "    jwt: { alg: HS256, secret_env: TEST_JWT_SECRET }\n"
    "    keys: [3f1a9c]\n"
    "  open:\n"
    "plugins:\n"
    "  - fake: { level: 3 }\n"
    "  - plain\n";

static void full_config_loads_with_values(void **state)
{
    setenv("TEST_DEEPSEEK_KEY", "sk-upstream", 1);
    setenv("TEST_SLUICE_ADMIN", "admintoken", 1);
    setenv("TEST_SLUICE_SECRET", "s3cret", 1);
    setenv("TEST_JWT_SECRET", "jwtsecret", 1);
    sl_diag d;
    sl_config *c = load(full, &d);
    for (size_t i = 0; i < d.n; i++)
        print_message("# %s\n", d.lines[i]);
    assert_non_null(c);
    assert_int_equal(d.n_warnings, 0);

    assert_int_equal(c->n_listen, 4);
    assert_string_equal(c->listen[0].address, "0.0.0.0:8080");
    assert_null(c->listen[0].tls_cert);
    assert_string_equal(c->listen[1].address, "[::1]:8443");
    assert_string_equal(c->listen[1].tls_cert, "/etc/sluice/tls.crt");
    assert_string_equal(c->listen[1].tls_key, "/etc/sluice/tls.key");
    assert_string_equal(c->listen[2].address, "unix:/run/sluice.sock");
    assert_string_equal(c->listen[3].address, "0.0.0.0:9000");

    assert_int_equal(c->server.workers, 4);
    assert_int_equal(c->server.max_body_bytes, 16LL << 20);
    assert_int_equal(c->server.header_timeout_ms, 5000);
    assert_int_equal(c->server.idle_timeout_ms, 120000);
    assert_int_equal(c->server.body_timeout_ms, 30000);
    assert_int_equal(c->server.shutdown_timeout_ms, 10000);
    assert_int_equal(c->server.stream_buffer_bytes, 65536);

    assert_string_equal(c->admin.listen, "127.0.0.1:9090");
    assert_string_equal(c->admin.token, "admintoken");
    assert_int_equal(c->store.backend, SL_STORE_REDIS);
    assert_string_equal(c->store.path, "var/j");
    assert_string_equal(c->store.redis_url, "redis://127.0.0.1:6379/1");
    assert_string_equal(c->store.redis_prefix, "t:");
    assert_string_equal(c->store.secret, "s3cret");
    assert_true(c->store.fail_open);
    assert_int_equal(c->store.fsync_every_ms, 250);
    assert_string_equal(c->log.access_log, "off");
    assert_string_equal(c->log.level, "debug");

    const sl_upstream_conf *api = sl_config_upstream(c, "deepseek-api");
    assert_non_null(api);
    assert_int_equal(api->type, SL_UPSTREAM_OPENAI);
    assert_string_equal(api->base_url, "https://api.deepseek.com/v1");
    assert_string_equal(api->api_key, "sk-upstream");
    assert_int_equal(api->n_headers, 1);
    assert_string_equal(api->headers[0].name, "X-Team");
    assert_string_equal(api->headers[0].value, "infra");
    assert_int_equal(api->connect_timeout_ms, 2000);
    assert_int_equal(api->first_byte_timeout_ms, 30000);
    assert_int_equal(api->total_timeout_ms, 600000);
    assert_int_equal(api->stream_idle_timeout_ms, 45000);
    assert_int_equal(api->pool_size, 8);
    const sl_upstream_conf *eng = sl_config_upstream(c, "r1-7b");
    assert_int_equal(eng->type, SL_UPSTREAM_ENGINE);
    assert_string_equal(eng->served_model_name, "DeepSeek-R1-Distill-Qwen-7B");
    assert_int_equal(eng->workers, 2);
    assert_int_equal(eng->n_gpus[0], 1);
    assert_int_equal(eng->gpus[0][0], 0);
    assert_int_equal(eng->n_gpus[1], 2);
    assert_int_equal(eng->gpus[1][1], 2);
    assert_string_equal(eng->backend, "cpu");
    assert_int_equal(eng->n_args, 2);
    assert_string_equal(eng->args[1], "32");

    const sl_model_conf *m = sl_config_model(c, "deepseek-r1");
    assert_non_null(m);
    assert_int_equal(m->n_targets, 2);
    assert_ptr_equal(m->targets[0].up, eng);
    assert_string_equal(m->targets[0].model, "DeepSeek-R1-Distill-Qwen-7B");
    assert_int_equal(m->targets[0].weight, 90);
    assert_ptr_equal(m->targets[1].up, api);
    assert_string_equal(m->targets[1].model, "deepseek-reasoner");
    assert_int_equal(m->n_fallback, 1);
    assert_string_equal(m->fallback[0], "small");
    assert_true(m->sticky);
    assert_true(m->profile.has_temperature);
    assert_true(m->profile.temperature > 0.59 && m->profile.temperature < 0.61);
    assert_int_equal(m->profile.max_tokens, 8192);
    assert_int_equal(m->profile.max_tokens_limit, 16384);
    assert_true(m->profile.system_prompt_merge);
    assert_true(m->profile.force_thinking);
    assert_ptr_equal(sl_config_model(c, "gpt-4o"), m);   /* alias of an alias */
    assert_null(sl_config_model(c, "nope"));
    const sl_model_conf *small = sl_config_model(c, "small");
    assert_int_equal(small->targets[0].weight, 1);
    assert_false(small->profile.has_temperature);

    const sl_consumer_conf *k = sl_config_consumer(c, "acme");
    assert_int_equal(k->n_models, 2);
    assert_int_equal(k->quota_tokens, 1000000);
    assert_int_equal(k->quota_window, SL_WINDOW_DAY);
    assert_int_equal(k->rpm, 600);
    assert_int_equal(k->tpm, 200000);
    assert_true(k->rate_per_model);
    assert_true(k->allow_target_pin);
    assert_string_equal(k->jwt_alg, "HS256");
    assert_string_equal(k->jwt_secret, "jwtsecret");
    assert_int_equal(k->n_key_hashes, 1);
    const sl_consumer_conf *open = sl_config_consumer(c, "open");
    assert_non_null(open);
    assert_null(open->models);
    assert_int_equal(open->quota_tokens, 0);

    assert_int_equal(c->n_plugins, 3);
    assert_string_equal(c->plugins[0].plugin->name, "fake");
    assert_int_equal(((fake_conf *)c->plugins[0].conf)->level, 3);
    assert_string_equal(c->plugins[1].plugin->name, "plain");
    assert_ptr_equal(c->plugins[2].plugin, sl_plugin_find("route"));   /* appended last */

    int frees = fake_frees;
    assert_ptr_equal(sl_config_ref(c), c);
    sl_config_unref(c);
    assert_int_equal(fake_frees, frees);      /* still held */
    sl_config_unref(c);
    assert_int_equal(fake_frees, frees + 1);  /* plugin conf freed with the config */
    sl_diag_free(&d);
}

static void empty_file_gives_defaults(void **state)
{
    unsetenv("SLUICE_SECRET");
    sl_diag d;
    sl_config *c = load("# nothing yet\n", &d);
    assert_non_null(c);
    assert_int_equal(c->n_listen, 1);
    assert_string_equal(c->listen[0].address, "0.0.0.0:8080");
    assert_int_equal(c->server.workers, 0);
    assert_int_equal(c->server.max_body_bytes, 8LL << 20);
    assert_int_equal(c->server.header_timeout_ms, 10000);
    assert_int_equal(c->server.idle_timeout_ms, 60000);
    assert_int_equal(c->server.body_timeout_ms, 60000);
    assert_int_equal(c->server.shutdown_timeout_ms, 30000);
    assert_int_equal(c->server.stream_buffer_bytes, 256 << 10);
    assert_null(c->admin.listen);
    assert_int_equal(c->store.backend, SL_STORE_MEMORY);
    assert_false(c->store.fail_open);
    assert_int_equal(c->store.fsync_every_ms, 1000);
    assert_string_equal(c->store.secret_env, "SLUICE_SECRET");
    assert_null(c->store.secret);
    assert_string_equal(c->log.access_log, "-");
    assert_string_equal(c->log.level, "info");
    assert_int_equal(c->n_upstreams + c->n_models + c->n_consumers, 0);
    assert_int_equal(c->n_plugins, 1);
    assert_string_equal(c->plugins[0].plugin->name, "route");
    sl_config_unref(c);
    sl_diag_free(&d);
}

static void upstream_defaults(void **state)
{
    sl_diag d;
    sl_config *c = load(BASE "  e: { type: engine, model: models/tiny }\n"
                             "models:\n  m1: { upstream: up1 }\n  m2: { upstream: e }\n", &d);
    assert_non_null(c);
    const sl_upstream_conf *u = sl_config_upstream(c, "up1");
    assert_int_equal(u->connect_timeout_ms, 10000);
    assert_int_equal(u->first_byte_timeout_ms, 120000);
    assert_int_equal(u->total_timeout_ms, 600000);
    assert_int_equal(u->stream_idle_timeout_ms, 60000);
    assert_int_equal(u->pool_size, 64);
    assert_null(u->api_key_env);
    const sl_upstream_conf *e = sl_config_upstream(c, "e");
    assert_int_equal(e->workers, 1);
    assert_null(e->gpus);
    assert_string_equal(e->backend, "auto");
    assert_string_equal(e->served_model_name, "tiny");
    /* a target's model defaults to the client-facing name (openai) or the served name (engine) */
    assert_string_equal(sl_config_model(c, "m1")->targets[0].model, "m1");
    assert_string_equal(sl_config_model(c, "m2")->targets[0].model, "tiny");
    sl_config_unref(c);
    sl_diag_free(&d);
}

static void unset_env_is_a_warning(void **state)
{
    unsetenv("TEST_UNSET_KEY");
    sl_diag d;
    sl_config *c = load("upstreams:\n  u: { type: openai, base_url: http://x, api_key_env: TEST_UNSET_KEY }\n", &d);
    assert_non_null(c);
    assert_int_equal(d.n, 0);
    assert_int_equal(d.n_warnings, 1);
    assert_string_equal(d.warnings[0], "t.yaml:2:55: warning: upstreams.u.api_key_env: environment "
                                       "variable TEST_UNSET_KEY is not set");
    assert_null(sl_config_upstream(c, "u")->api_key);
    sl_config_unref(c);
    sl_diag_free(&d);
}

/* ---- each kind of mistake ---- */

static void unknown_key(void **state)
{
    EXPECT_ERRORS("upstreams:\n  u:\n    type: openai\n    base_url: http://x\n    timout: { connect: 1s }\n",
                  "t.yaml:5:5: upstreams.u: unknown key 'timout' (did you mean 'timeouts'?)");
    EXPECT_ERRORS("listen: [\"0.0.0.0:0\"]\nlsiten: 1\n",
                  "t.yaml:2:1: unknown key 'lsiten' (did you mean 'listen'?)");
}

static void wrong_type(void **state)
{
    EXPECT_ERRORS("server:\n  workers: four\n",
                  "t.yaml:2:12: server.workers: expected a whole number (got \"four\")");
    EXPECT_ERRORS("server:\n  workers: 5000\n",
                  "t.yaml:2:12: server.workers: expected a number from 0 to 1024 (got 5000)");
    EXPECT_ERRORS("models: [a, b]\n",
                  "t.yaml:1:9: models: expected a map of NAME: {...} (got a list)");
    EXPECT_ERRORS("store: { backend: mysql }\n",
                  "t.yaml:1:19: store.backend: expected one of memory, redis (got \"mysql\")");
    EXPECT_ERRORS("store: { fsync_every: often }\n",
                  "t.yaml:1:23: store.fsync_every: expected a duration like 500ms, 10s, 2m (got \"often\")");
}

static void dangling_upstream(void **state)
{
    EXPECT_ERRORS(BASE "models:\n  m1:\n    targets:\n      - { upstream: up1 }\n      - { upstream: up2 }\n",
                  "t.yaml:7:21: models.m1.targets[1].upstream: no upstream named 'up2' (did you mean 'up1'?)");
}

static void dangling_model_references(void **state)
{
    EXPECT_ERRORS(BASE "models:\n  m1: { upstream: up1, fallback: [m2, m1] }\n  old: { alias: m9 }\n"
                       "consumers:\n  acme: { models: [m1, gpt-5] }\n",
                  "t.yaml:4:35: models.m1.fallback[0]: no model named 'm2' (did you mean 'm1'?)",
                  "t.yaml:4:39: models.m1.fallback[1]: a model cannot fall back to itself",
                  "t.yaml:5:17: models.old.alias: no model named 'm9' (did you mean 'm1'?)",
                  "t.yaml:7:24: consumers.acme.models[1]: no model named 'gpt-5' (known: m1, old)");
}

static void bad_duration(void **state)
{
    EXPECT_ERRORS("upstreams:\n  deepseek:\n    type: openai\n    base_url: https://api.deepseek.com\n"
                  "    timeouts:\n      connect: ten\n",
                  "t.yaml:6:16: upstreams.deepseek.timeouts.connect: expected a duration like 500ms, 10s, 2m "
                  "(got \"ten\")");
}

static void bad_size(void **state)
{
    EXPECT_ERRORS("server:\n  max_body_size: 12XB\n",
                  "t.yaml:2:18: server.max_body_size: expected a size like 512, 64KiB, 256MiB, 1GiB (got \"12XB\")");
    EXPECT_ERRORS("server:\n  stream_buffer: 16\n",
                  "t.yaml:2:18: server.stream_buffer: expected at least 4096 bytes (got 16)");
}

static void secret_written_inline(void **state)
{
    EXPECT_ERRORS("upstreams:\n  u:\n    type: openai\n    base_url: http://x\n    api_key: sk-live-123\n",
                  "t.yaml:5:5: upstreams.u: 'api_key' must not be written in the file: put the secret in an "
                  "environment variable and name that variable with api_key_env");
    EXPECT_ERRORS("admin: { listen: 127.0.0.1:0, token: hunter2 }\n",
                  "t.yaml:1:31: admin: 'token' must not be written in the file: put the secret in an "
                  "environment variable and name that variable with token_env");
    EXPECT_ERRORS("upstreams:\n  u: { type: openai, base_url: http://x, headers: { Authorization: Bearer sk-1 } }\n",
                  "t.yaml:2:53: upstreams.u.headers: header 'Authorization' carries a secret and must not be "
                  "written in the file: put the key in an environment variable and name it with api_key_env");
    EXPECT_ERRORS("upstreams:\n  u: { type: openai, base_url: http://x, api_key_env: sk-abc-123 }\n",
                  "t.yaml:2:55: upstreams.u.api_key_env: \"sk-abc-123\" is not an environment variable name: "
                  "write the variable's name (like DEEPSEEK_API_KEY), not its value");
    EXPECT_ERRORS("consumers:\n  acme: { keys: [sk-sluice-abcdefabcdefabcdefabcdefabcdefab] }\n",
                  "t.yaml:2:18: consumers.acme.keys[0]: this is a key, not its hash: a key must not be written in "
                  "the file; write the output of `sluice key hash` instead");
}

static void alias_cycle(void **state)
{
    EXPECT_ERRORS(BASE "models:\n  m1: { upstream: up1 }\n  a: { alias: b }\n  b: { alias: c }\n  c: { alias: a }\n",
                  "t.yaml:5:15: models.a.alias: alias cycle: a -> b -> c -> a");
    EXPECT_ERRORS("models:\n  self: { alias: self }\n",
                  "t.yaml:2:18: models.self.alias: alias cycle: self -> self");
}

static void duplicate_key(void **state)
{
    EXPECT_ERRORS(BASE "  up1: { type: openai, base_url: http://y }\n",
                  "t.yaml:3:3: upstreams: duplicate key 'up1' (first written at line 2)");
}

static void yaml_syntax_error(void **state)
{
    EXPECT_ERRORS("models:\n  m1: { upstream: up1\n  m2: {}\n",
                  "t.yaml:3:5: YAML syntax error: did not find expected ',' or '}' "
                  "(while parsing a flow mapping at line 2)");
}

static void three_mistakes_all_reported(void **state)
{
    EXPECT_ERRORS("server:\n"
                  "  idle_timeout: forever\n"
                  "upstreams:\n"
                  "  up1: { type: openai, base_url: http://127.0.0.1:9/v1, pool_sise: 4 }\n"
                  "models:\n"
                  "  m1: { upstream: nowhere }\n",
                  "t.yaml:2:17: server.idle_timeout: expected a duration like 500ms, 10s, 2m (got \"forever\")",
                  "t.yaml:4:57: upstreams.up1: unknown key 'pool_sise' (did you mean 'pool_size'?)",
                  "t.yaml:6:19: models.m1.upstream: no upstream named 'nowhere' (known: up1)");
}

static void model_shapes(void **state)
{
    EXPECT_ERRORS(BASE "models:\n  m1: { targets: [] }\n",
                  "t.yaml:4:18: models.m1: no targets: give targets: [{ upstream: NAME, model: NAME }], "
                  "upstream: NAME, or alias: MODEL");
    EXPECT_ERRORS(BASE "models:\n  m1: { upstream: up1 }\n  m2: { alias: m1, sticky: true }\n",
                  "t.yaml:5:20: models.m2: an alias takes no other keys (it uses the settings of the model it names)");
    EXPECT_ERRORS(BASE "models:\n  m1: { targets: [{ upstream: up1, weight: 0 }] }\n",
                  "t.yaml:4:18: models.m1.targets: every weight is 0: give at least one target a weight above 0");
    EXPECT_ERRORS(BASE "models:\n  m1: { upstream: up1, profile: { temperature: 3, system_prompt: fold } }\n",
                  "t.yaml:4:48: models.m1.profile.temperature: expected a number from 0 to 2 (got 3)",
                  "t.yaml:4:66: models.m1.profile.system_prompt: expected one of keep, merge (got \"fold\")");
}

static void listen_mistakes(void **state)
{
    EXPECT_ERRORS("listen:\n  - address: 0.0.0.0:8443\n    tls: { cert: /c.pem }\n",
                  "t.yaml:3:10: listen[0].tls: tls needs both cert and key (key is missing)");
    EXPECT_ERRORS("listen: [\"localhost:http\", \"1.2.3.4:70000\", \"[::1:80\", \"a b:1\"]\n",
                  "t.yaml:1:10: listen[0]: cannot use \"localhost:http\" as a listen address: write host:port, "
                  "[v6]:port, a port alone, or unix:/path",
                  "t.yaml:1:28: listen[1]: cannot use \"1.2.3.4:70000\" as a listen address: write host:port, "
                  "[v6]:port, a port alone, or unix:/path",
                  "t.yaml:1:45: listen[2]: cannot use \"[::1:80\" as a listen address: write host:port, "
                  "[v6]:port, a port alone, or unix:/path",
                  "t.yaml:1:56: listen[3]: cannot use \"a b:1\" as a listen address: write host:port, "
                  "[v6]:port, a port alone, or unix:/path");
    EXPECT_ERRORS("listen: [127.0.0.1:9090]\nadmin: { listen: 127.0.0.1:9090 }\n",
                  "t.yaml:2:18: admin.listen: 127.0.0.1:9090 is also a client listen address: the admin API "
                  "needs an address of its own");
    EXPECT_ERRORS("listen: [8080, \":8080\"]\n",
                  "t.yaml:1:16: listen[1]: address 0.0.0.0:8080 is listed twice");
}

static void engine_mistakes(void **state)
{
    EXPECT_ERRORS("upstreams:\n  e: { type: engine, model: /m, workers: 2, gpus: [[0]], backend: rocm }\n",
                  "t.yaml:2:51: upstreams.e.gpus: gives 1 GPU list for 2 workers: give one list per worker",
                  "t.yaml:2:67: upstreams.e.backend: expected one of auto, cuda, cpu (got \"rocm\")");
    EXPECT_ERRORS("upstreams:\n  e: { type: vllm }\n",
                  "t.yaml:2:14: upstreams.e.type: expected one of openai, engine (got \"vllm\")");
}

static void consumer_mistakes(void **state)
{
    EXPECT_ERRORS("consumers:\n  a:\n    quota: { tokens: 0, window: week }\n    jwt: { alg: RS256 }\n",
                  "t.yaml:3:22: consumers.a.quota.tokens: expected a number of at least 1 (got 0)",
                  "t.yaml:3:33: consumers.a.quota.window: expected one of minute, hour, day, month, total (got \"week\")",
                  "t.yaml:4:10: consumers.a.jwt: RS256 needs public_key (a PEM file path)");
}

/* ---- plugins ---- */

static void plugin_options_errors_point_inside(void **state)
{
    EXPECT_ERRORS("plugins:\n  - fake:\n      level: 7\n      colour: red\n",
                  "t.yaml:4:7: plugins[0].fake: unknown key 'colour' (known keys: level)");
    EXPECT_ERRORS("plugins:\n  - fake: { level: 7 }\n",
                  "t.yaml:2:20: plugins[0].fake.level: expected a number from 1 to 3 (got 7)");
}

static void plugin_by_name_gets_null_options(void **state)
{
    fake_saw_null = false;
    sl_diag d;
    sl_config *c = load("plugins: [fake, route]\n", &d);
    assert_non_null(c);
    assert_true(fake_saw_null);
    assert_int_equal(c->n_plugins, 2);
    sl_config_unref(c);
    sl_diag_free(&d);
}

static void plugin_list_mistakes(void **state)
{
    EXPECT_ERROR_PREFIX("plugins:\n  - nope\n", "t.yaml:2:5: plugins[0]: unknown plugin 'nope' (known: ");
    EXPECT_ERRORS("plugins: [route, fake]\n",
                  "t.yaml:1:11: plugins[0]: route must be the last plugin (it sends the request upstream)");
    EXPECT_ERRORS("plugins: [fake, fake]\n", "t.yaml:1:17: plugins[1]: plugin 'fake' is listed twice");
    EXPECT_ERRORS("plugins: [{ plain: { x: 1 } }]\n",
                  "t.yaml:1:20: plugins[0].plain: plugin 'plain' takes no options");
    EXPECT_ERROR_PREFIX("plugin_paths: [/nonexistent/plugin.so]\n",
                        "t.yaml:1:16: plugin_paths[0]: cannot load plugin: /nonexistent/plugin.so: ");
}

static const char *so_path;

static void plugin_from_shared_object(void **state)
{
    char yaml[4200];
    assert_non_null(so_path);
    snprintf(yaml, sizeof yaml, "plugin_paths: [\"%s\"]\nplugins: [so_fake]\n", so_path);
    /* twice: a reload reads plugin_paths again and must not register the plugin twice */
    for (int i = 0; i < 2; i++) {
        sl_diag d;
        sl_config *c = load(yaml, &d);
        for (size_t j = 0; j < d.n; j++)
            print_message("# %s\n", d.lines[j]);
        assert_non_null(c);
        assert_int_equal(c->n_plugins, 2);
        assert_string_equal(c->plugins[0].plugin->name, "so_fake");
        sl_config_unref(c);
        sl_diag_free(&d);
    }
    EXPECT_ERRORS("plugins: [so_fak]\n", "t.yaml:1:11: plugins[0]: unknown plugin 'so_fak' (did you mean 'so_fake'?)");
}

static void plugin_confs_freed_on_failed_load(void **state)
{
    int frees = fake_frees;
    EXPECT_ERRORS("plugins: [fake]\nserver: { workers: x }\n",
                  "t.yaml:2:20: server.workers: expected a whole number (got \"x\")");
    assert_int_equal(fake_frees, frees + 1);
}

static int setup(void **state)
{
    char dir[] = "/tmp/sluice-config-test-XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) < 0)
        return -1;
    *state = strdup(dir);
    sl_plugin_register(&fake_plugin);
    sl_plugin_register(&plain_plugin);
    if (!sl_plugin_find("route"))
        sl_plugin_register(&fake_route);
    return 0;
}

static int teardown(void **state)
{
    unlink("t.yaml");
    int rc = rmdir(*state);
    free(*state);
    return rc;
}

int main(int argc, char **argv)
{
    so_path = argc > 1 ? argv[1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_config_loads_with_values),
        cmocka_unit_test(empty_file_gives_defaults),
        cmocka_unit_test(upstream_defaults),
        cmocka_unit_test(unset_env_is_a_warning),
        cmocka_unit_test(unknown_key),
        cmocka_unit_test(wrong_type),
        cmocka_unit_test(dangling_upstream),
        cmocka_unit_test(dangling_model_references),
        cmocka_unit_test(bad_duration),
        cmocka_unit_test(bad_size),
        cmocka_unit_test(secret_written_inline),
        cmocka_unit_test(alias_cycle),
        cmocka_unit_test(duplicate_key),
        cmocka_unit_test(yaml_syntax_error),
        cmocka_unit_test(three_mistakes_all_reported),
        cmocka_unit_test(model_shapes),
        cmocka_unit_test(listen_mistakes),
        cmocka_unit_test(engine_mistakes),
        cmocka_unit_test(consumer_mistakes),
        cmocka_unit_test(plugin_options_errors_point_inside),
        cmocka_unit_test(plugin_by_name_gets_null_options),
        cmocka_unit_test(plugin_list_mistakes),
        cmocka_unit_test(plugin_confs_freed_on_failed_load),
        cmocka_unit_test(plugin_from_shared_object),
    };
    return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
