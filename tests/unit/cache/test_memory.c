/* The memory backend: bounded by bytes with least-recently-used eviction, entries expire
 * after their TTL, and many threads may use it at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "cache.h"

static char value[1000];

static bool has(sl_cache_mem *m, const char *key, int64_t now)
{
    size_t len;
    char *v = sl_cache_mem_get(m, key, now, &len);
    free(v);
    return v != NULL;
}

static void get_returns_what_was_put(void **state)
{
    (void)state;
    sl_cache_mem *m = sl_cache_mem_new(1 << 20, 1);
    assert_non_null(m);
    assert_int_equal(sl_cache_mem_put(m, "k1", "{\"body\":1}", 10, 0, 0), 0);
    size_t len = 0;
    char *v = sl_cache_mem_get(m, "k1", 0, &len);
    assert_non_null(v);
    assert_int_equal(len, 10);
    assert_memory_equal(v, "{\"body\":1}", 10);
    free(v);
    assert_null(sl_cache_mem_get(m, "k2", 0, &len));
    /* a put under the same key replaces the value and does not count twice */
    size_t before = sl_cache_mem_bytes(m);
    assert_int_equal(sl_cache_mem_put(m, "k1", "{\"body\":2}", 10, 0, 0), 0);
    assert_int_equal(sl_cache_mem_bytes(m), before);
    assert_int_equal(sl_cache_mem_count(m), 1);
    v = sl_cache_mem_get(m, "k1", 0, &len);
    assert_memory_equal(v, "{\"body\":2}", 10);
    free(v);
    sl_cache_mem_free(m);
}

static void evicts_least_recently_used_by_bytes(void **state)
{
    (void)state;
    /* room for three 1000-byte entries, not four */
    sl_cache_mem *m = sl_cache_mem_new(3 * (sizeof value + 200), 1);
    assert_int_equal(sl_cache_mem_put(m, "a", value, sizeof value, 0, 0), 0);
    assert_int_equal(sl_cache_mem_put(m, "b", value, sizeof value, 0, 0), 0);
    assert_int_equal(sl_cache_mem_put(m, "c", value, sizeof value, 0, 0), 0);
    assert_int_equal(sl_cache_mem_count(m), 3);
    assert_true(has(m, "a", 0)); /* a is now the most recently used; b the least */
    assert_int_equal(sl_cache_mem_put(m, "d", value, sizeof value, 0, 0), 0);
    assert_int_equal(sl_cache_mem_count(m), 3);
    assert_false(has(m, "b", 0));
    assert_true(has(m, "a", 0));
    assert_true(has(m, "c", 0));
    assert_true(has(m, "d", 0));
    assert_true(sl_cache_mem_bytes(m) <= 3 * (sizeof value + 200));
    sl_cache_mem_free(m);
}

static void refuses_an_entry_larger_than_the_budget(void **state)
{
    (void)state;
    sl_cache_mem *m = sl_cache_mem_new(800, 1);
    assert_int_equal(sl_cache_mem_put(m, "small", "x", 1, 0, 0), 0);
    assert_int_equal(sl_cache_mem_put(m, "big", value, sizeof value, 0, 0), -1);
    assert_false(has(m, "big", 0));
    assert_true(has(m, "small", 0)); /* nothing was evicted for an entry that cannot fit */
    sl_cache_mem_free(m);
}

static void entries_expire_after_their_ttl(void **state)
{
    (void)state;
    sl_cache_mem *m = sl_cache_mem_new(1 << 20, 1);
    assert_int_equal(sl_cache_mem_put(m, "t", "v", 1, 5000, 1000), 0);
    assert_int_equal(sl_cache_mem_put(m, "forever", "v", 1, 0, 1000), 0);
    assert_true(has(m, "t", 1000));
    assert_true(has(m, "t", 5999));
    assert_false(has(m, "t", 6000));
    assert_int_equal(sl_cache_mem_count(m), 1); /* the expired entry is gone, not just hidden */
    assert_true(has(m, "forever", INT64_C(1) << 40));
    sl_cache_mem_free(m);
}

static void many_keys_grow_the_table(void **state)
{
    (void)state;
    sl_cache_mem *m = sl_cache_mem_new(64u << 20, 0);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        assert_int_equal(sl_cache_mem_put(m, key, key, strlen(key), 0, 0), 0);
    }
    assert_int_equal(sl_cache_mem_count(m), 5000);
    for (int i = 0; i < 5000; i += 7) {
        snprintf(key, sizeof key, "key-%d", i);
        size_t len;
        char *v = sl_cache_mem_get(m, key, 0, &len);
        assert_non_null(v);
        assert_string_equal(v, key);
        free(v);
    }
    sl_cache_mem_free(m);
}

/* A full cache evicts at every put (the steady state under load): entries leave their
 * slots (the probe runs behind them closed up) as well as the LRU list, so what stays is
 * exactly what can be found, with the value put last. */
static void a_full_cache_keeps_its_table_consistent(void **state)
{
    (void)state;
    size_t budget = 40u << 10;
    sl_cache_mem *m = sl_cache_mem_new(budget, 1);
    char key[32], want[48];
    static int last[3000]; /* the last put of each key: what a get must find, if anything */
    for (int i = 0; i < 20000; i++) {
        last[(i * 7919) % 3000] = i;
        snprintf(key, sizeof key, "k%d", (i * 7919) % 3000);
        snprintf(want, sizeof want, "%s@%d", key, i);
        assert_int_equal(sl_cache_mem_put(m, key, want, strlen(want) + 1, i % 5 ? 0 : 10, i), 0);
        assert_true(sl_cache_mem_bytes(m) <= budget);
    }
    size_t found = 0;
    for (int k = 0; k < 3000; k++) {
        snprintf(key, sizeof key, "k%d", k);
        size_t len;
        char *v = sl_cache_mem_get(m, key, 20000, &len);
        if (v) {
            snprintf(want, sizeof want, "%s@%d", key, last[k]);
            assert_string_equal(v, want);
            found++;
        }
        free(v);
    }
    assert_int_equal(found, sl_cache_mem_count(m)); /* expired ones met by get are dropped */
    assert_true(found > 100);
    sl_cache_mem_free(m);
}

/* A value handed over is stored without a copy, read back, replaced, evicted and refused
 * like a copied one; the cache frees it in every case (the ASan stage finds a leak). */
static void owned_values_are_kept_and_freed(void **state)
{
    (void)state;
    sl_cache_mem *m = sl_cache_mem_new(16u << 10, 1);
    char key[32];
    for (int i = 0; i < 200; i++) { /* ~100 bytes each in a 16 KiB budget: most are evicted */
        snprintf(key, sizeof key, "k%d", i % 50);
        char *v = malloc(128);
        int n = snprintf(v, 128, "value %d of %s", i, key);
        assert_int_equal(sl_cache_mem_put_owned(m, key, v, (size_t)n, 128, 0, 0), 0);
        size_t len;
        char *got = sl_cache_mem_get(m, key, 0, &len);
        assert_non_null(got);
        assert_int_equal(len, (size_t)n);
        assert_memory_equal(got, v, len); /* v is the cache's now: read before the next put */
        free(got);
    }
    assert_true(sl_cache_mem_bytes(m) <= 16u << 10);
    char *big = malloc(32u << 10);
    memset(big, 'x', 32u << 10);
    assert_int_equal(sl_cache_mem_put_owned(m, "big", big, 32u << 10, 32u << 10, 0, 0), -1); /* freed */
    assert_null(sl_cache_mem_get(m, "big", 0, &(size_t){0}));
    assert_int_equal(sl_cache_mem_put(m, "k1", "copied", 6, 0, 0), 0); /* replaces an owned one */
    size_t len;
    char *got = sl_cache_mem_get(m, "k1", 0, &len);
    assert_string_equal(got, "copied");
    free(got);
    sl_cache_mem_free(m);
}

static void *worker(void *arg)
{
    sl_cache_mem *m = arg;
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "k%d", i % 500);
        if (i % 3 == 0) {
            sl_cache_mem_put(m, key, value, 100 + (size_t)(i % 700), 0, 0);
        } else {
            size_t len;
            free(sl_cache_mem_get(m, key, 0, &len));
        }
    }
    return NULL;
}

static void threads_share_it_within_the_budget(void **state)
{
    (void)state;
    size_t budget = 64u << 10;
    sl_cache_mem *m = sl_cache_mem_new(budget, 4);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, m), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_true(sl_cache_mem_bytes(m) <= budget);
    assert_true(sl_cache_mem_count(m) > 0);
    sl_cache_mem_free(m);
}

int main(void)
{
    memset(value, 'x', sizeof value);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_returns_what_was_put),
        cmocka_unit_test(evicts_least_recently_used_by_bytes),
        cmocka_unit_test(refuses_an_entry_larger_than_the_budget),
        cmocka_unit_test(entries_expire_after_their_ttl),
        cmocka_unit_test(many_keys_grow_the_table),
        cmocka_unit_test(a_full_cache_keeps_its_table_consistent),
        cmocka_unit_test(owned_values_are_kept_and_freed),
        cmocka_unit_test(threads_share_it_within_the_budget),
    };
    return cmocka_run_group_tests_name("cache_memory", tests, NULL, NULL);
}
