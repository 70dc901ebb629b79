/* The cache plugin's options as `sluice check` reports them: good options load, each
 * mistake is an error that names the option and where it is written. */
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
#include "cache.h"

static const char head[] =
    "listen:\n"
    "  - address: 127.0.0.1:0\n"
    "upstreams:\n"
    "  up: { type: openai, base_url: http://127.0.0.1:1/v1 }\n"
    "models:\n"
    "  demo: { targets: [ { upstream: up, model: m } ] }\n";

static char path[64];

/* Loads head + rest; returns the config (or NULL) and leaves the diagnostics in d. */
static sl_config *load(const char *rest, sl_diag *d)
{
    snprintf(path, sizeof path, "cache-test-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(head, f);
    fputs(rest, f);
    fclose(f);
    sl_diag_init(d, path);
    d->quiet = true;
    sl_config *c = sl_config_load(path, d);
    unlink(path);
    return c;
}

static void expect_ok(const char *rest)
{
    sl_diag d;
    sl_config *c = load(rest, &d);
    if (!c)
        fail_msg("refused: %s", d.n ? d.lines[0] : "(no message)");
    const sl_plugin *cache = sl_plugin_find("cache");
    assert_non_null(cache);
    bool found = false;
    for (size_t i = 0; i < c->n_plugins; i++)
        found |= c->plugins[i].plugin == cache;
    assert_true(found);
    sl_config_unref(c);
    sl_diag_free(&d);
}

/* One error, at line:col, whose message contains each of the needles. */
static void expect_error(const char *rest, int line, int col, const char *n1, const char *n2)
{
    sl_diag d;
    sl_config *c = load(rest, &d);
    assert_null(c);
    assert_int_equal(d.n, 1);
    char where[128];
    snprintf(where, sizeof where, "%s:%d:%d: ", path, line, col);
    if (strncmp(d.lines[0], where, strlen(where)) != 0 || !strstr(d.lines[0], n1) || (n2 && !strstr(d.lines[0], n2)))
        fail_msg("got \"%s\"; want it at %s with \"%s\"%s%s", d.lines[0], where, n1, n2 ? " and " : "", n2 ? n2 : "");
    sl_diag_free(&d);
}

static void good_options_load(void **state)
{
    (void)state;
    expect_ok("plugins:\n  - cache\n");
    expect_ok("plugins:\n  - cache: { ttl: 10m, scope: global, max_bytes: 16MiB, mode: always, charge_hits: true }\n");
    expect_ok("plugins:\n  - cache: { scope: consumer, backend: memory, mode: deterministic, charge_hits: false }\n");
    expect_ok("store: { backend: redis, redis: { url: \"redis://127.0.0.1:6390/0\", prefix: \"t:\" } }\n"
              "plugins:\n  - cache: { backend: redis, ttl: 1h }\n");
}

static void mistakes_are_reported_where_written(void **state)
{
    (void)state;
    expect_error("plugins:\n  - cache: { scope: everyone }\n", 8, 21, "scope", "expected consumer or global");
    expect_error("plugins:\n  - cache: { backend: disk }\n", 8, 23, "backend", "expected memory or redis");
    expect_error("plugins:\n  - cache: { mode: sometimes }\n", 8, 20, "mode", "expected deterministic or always");
    expect_error("plugins:\n  - cache: { ttl_s: 5 }\n", 8, 14, "ttl_s", NULL);
    expect_error("plugins:\n  - cache: { ttl: soon }\n", 8, 19, "ttl", NULL);
    expect_error("plugins:\n  - cache: { max_bytes: 1KiB }\n", 8, 25, "max_bytes", "64KiB");
    expect_error("plugins:\n  - cache: { charge_hits: maybe }\n", 8, 27, "charge_hits", NULL);
    expect_error("plugins:\n  - cache: { backend: redis }\n", 8, 23, "backend", "store.redis.url");
}

static void *cache_conf_of(const sl_config *c)
{
    for (size_t i = 0; i < c->n_plugins; i++)
        if (c->plugins[i].plugin == sl_plugin_find("cache"))
            return c->plugins[i].conf;
    fail_msg("no cache plugin in the config");
    return NULL;
}

static void entries_survive_a_reload(void **state)
{
    (void)state;
    sl_diag d1, d2, d3;
    sl_config *a = load("plugins:\n  - cache: { max_bytes: 8MiB }\n", &d1);
    assert_non_null(a);
    sl_cache_mem *m = sl_cache_conf_mem(cache_conf_of(a));
    assert_int_equal(sl_cache_mem_put(m, "k", "v", 1, 0, 0), 0);
    /* the reloaded config (same size, other ttl) sees the entry, even after the old one goes */
    sl_config *b = load("plugins:\n  - cache: { max_bytes: 8MiB, ttl: 5m }\n", &d2);
    assert_non_null(b);
    sl_config_unref(a);
    size_t len;
    char *v = sl_cache_mem_get(sl_cache_conf_mem(cache_conf_of(b)), "k", 0, &len);
    assert_non_null(v);
    free(v);
    /* another size starts empty */
    sl_config *c = load("plugins:\n  - cache: { max_bytes: 16MiB }\n", &d3);
    assert_non_null(c);
    assert_null(sl_cache_mem_get(sl_cache_conf_mem(cache_conf_of(c)), "k", 0, &len));
    sl_config_unref(b);
    sl_config_unref(c);
    sl_diag_free(&d1);
    sl_diag_free(&d2);
    sl_diag_free(&d3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_options_load),
        cmocka_unit_test(mistakes_are_reported_where_written),
        cmocka_unit_test(entries_survive_a_reload),
    };
    return cmocka_run_group_tests_name("cache_config", tests, NULL, NULL);
}
