/* API keys: the shape users see, an unbiased alphabet, a stable keyed hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <stdio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "config.h"
#include "keys.h"

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static void key_has_documented_shape(void **state)
{
    char key[SL_KEY_SIZE], key2[SL_KEY_SIZE];
    assert_int_equal(sl_key_generate(key, NULL), 0);
    assert_int_equal(sl_key_generate(key2, NULL), 0);
    assert_int_equal(strlen(key), 42);
    assert_memory_equal(key, "sk-sluice-", 10);
    for (int i = 10; i < 42; i++)
        assert_non_null(memchr(b62, key[i], 62));
    assert_true(sl_key_well_formed(key));
    assert_string_not_equal(key, key2);
    char shown[SL_KEY_SHOWN_SIZE];
    sl_key_shown_prefix(key, shown);
    assert_int_equal(strlen(shown), 12);
    assert_memory_equal(shown, key, 12);
}

static void malformed_keys_are_rejected(void **state)
{
    assert_false(sl_key_well_formed(NULL));
    assert_false(sl_key_well_formed(""));
    assert_false(sl_key_well_formed("sk-sluice-"));
    assert_false(sl_key_well_formed("sk-sluice-0123456789ABCDEFGHIJabcdefghijK"));   /* 31 */
    assert_false(sl_key_well_formed("sk-sluice-0123456789ABCDEFGHIJabcdefghijKLM")); /* 33 */
    assert_false(sl_key_well_formed("sk-other--0123456789ABCDEFGHIJabcdefghijKL"));
    assert_false(sl_key_well_formed("sk-sluice-0123456789ABCDEFGHIJabcdefghij-L"));
    assert_true(sl_key_well_formed("sk-sluice-0123456789ABCDEFGHIJabcdefghijKL"));
}

/* 62 * 4000 characters: every character appears, none far from the mean (a biased
 * modulo would put the first 8 at ~1.25x). Bounds are > 6 sigma: never flaky. */
static void base62_is_uniform(void **state)
{
    enum { N = 62 * 4000 };
    char *buf = malloc(N);
    int count[256] = {0};
    assert_int_equal(sl_base62_random(buf, N, NULL), 0);
    for (int i = 0; i < N; i++)
        count[(unsigned char)buf[i]]++;
    for (int i = 0; i < 62; i++) {
        int c = count[(unsigned char)b62[i]];
        assert_in_range(c, 4000 - 400, 4000 + 400);
    }
    int first8 = 0, last8 = 0;
    for (int i = 0; i < 8; i++) {
        first8 += count[(unsigned char)b62[i]];
        last8 += count[(unsigned char)b62[61 - i]];
    }
    assert_in_range(abs(first8 - last8), 0, 1600);
    free(buf);
}

static void key_ids_are_public_and_distinct(void **state)
{
    char a[SL_KEY_ID_SIZE], b[SL_KEY_ID_SIZE];
    assert_int_equal(sl_key_id_generate(a, NULL), 0);
    assert_int_equal(sl_key_id_generate(b, NULL), 0);
    assert_int_equal(strlen(a), 20);
    assert_memory_equal(a, "key_", 4);
    assert_string_not_equal(a, b);
}

/* The hash is HMAC-SHA-256 (checked against Python's hmac module) and stable. */
static void hash_is_hmac_sha256_and_stable(void **state)
{
    const char *key = "sk-sluice-0123456789ABCDEFGHIJabcdefghijKL";
    char h1[SL_KEY_HASH_SIZE], h2[SL_KEY_HASH_SIZE], h3[SL_KEY_HASH_SIZE];
    assert_int_equal(sl_key_hash("test-secret", 11, key, h1, NULL), 0);
    assert_string_equal(h1, "8206839841b35f7c792d0827bd5b0c46d0849398e65124642061ceb1390175fd");
    assert_int_equal(sl_key_hash("test-secret", 11, key, h2, NULL), 0);
    assert_string_equal(h1, h2);
    assert_int_equal(sl_key_hash("other-secret", 12, key, h3, NULL), 0);
    assert_string_not_equal(h1, h3);
    sl_err err = {{0}};
    assert_int_equal(sl_key_hash("", 0, key, h3, &err), -1);
    assert_non_null(strstr(err.msg, "SLUICE_SECRET"));
}

static void hmac_hex(const char *secret, const char *key, char out[SL_KEY_HASH_SIZE])
{
    unsigned char mac[32];
    unsigned int n = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)key, strlen(key), mac, &n));
    assert_int_equal(n, 32);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

/* Hashes remembered per thread stay exact: keys that share a memo slot (same first random
 * characters), keys hashed again after others, other secrets, other lengths. */
static void remembered_hashes_stay_exact(void **state)
{
    const char *secrets[] = {"test-secret", "other-secret", "test-secret"};
    char key[64], got[SL_KEY_HASH_SIZE], want[SL_KEY_HASH_SIZE];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 600; i++) {
            /* i % 3 == 0: same first 8 random characters, another tail (one slot); the second
             * 300 repeat the first (hits, unless evicted) */
            snprintf(key, sizeof key, "sk-sluice-%08d%024d", i % 3 ? i % 300 % 40 : 0, i % 300);
            if (i % 7 == 0)
                key[41] = '\0'; /* 41 characters: not kept */
            assert_int_equal(sl_key_hash(secrets[round], strlen(secrets[round]), key, got, NULL), 0);
            hmac_hex(secrets[round], key, want);
            assert_string_equal(got, want);
        }
}

static void hash_compare_is_exact(void **state)
{
    char a[SL_KEY_HASH_SIZE], b[SL_KEY_HASH_SIZE];
    sl_key_hash("s", 1, "sk-sluice-0123456789ABCDEFGHIJabcdefghijKL", a, NULL);
    memcpy(b, a, sizeof a);
    assert_true(sl_key_hash_equal(a, b));
    b[63] = b[63] == '0' ? '1' : '0';
    assert_false(sl_key_hash_equal(a, b));
    b[63] = a[63];
    b[0] = b[0] == '0' ? '1' : '0';
    assert_false(sl_key_hash_equal(a, b));
    assert_false(sl_key_hash_equal(a, "abc"));
    assert_false(sl_key_hash_equal(a, NULL));
}

static void declared_keys_map_to_their_consumer(void **state)
{
    char h1[SL_KEY_HASH_SIZE], h2[SL_KEY_HASH_SIZE], h3[SL_KEY_HASH_SIZE];
    sl_key_hash("s", 1, "sk-sluice-0123456789ABCDEFGHIJabcdefghijKL", h1, NULL);
    sl_key_hash("s", 1, "sk-sluice-0123456789ABCDEFGHIJabcdefghijKM", h2, NULL);
    sl_key_hash("s", 1, "sk-sluice-0123456789ABCDEFGHIJabcdefghijKN", h3, NULL);
    char *acme_keys[] = {h1}, *beta_keys[] = {h2};
    sl_consumer_conf consumers[2];
    memset(consumers, 0, sizeof consumers);
    consumers[0].name = "acme";
    consumers[0].key_hashes = acme_keys;
    consumers[0].n_key_hashes = 1;
    consumers[1].name = "beta";
    consumers[1].key_hashes = beta_keys;
    consumers[1].n_key_hashes = 1;
    sl_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.consumers = consumers;
    cfg.n_consumers = 2;
    assert_string_equal(sl_key_declared_consumer(&cfg, h1), "acme");
    assert_string_equal(sl_key_declared_consumer(&cfg, h2), "beta");
    assert_null(sl_key_declared_consumer(&cfg, h3));
    assert_null(sl_key_declared_consumer(NULL, h3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_has_documented_shape),
        cmocka_unit_test(malformed_keys_are_rejected),
        cmocka_unit_test(base62_is_uniform),
        cmocka_unit_test(key_ids_are_public_and_distinct),
        cmocka_unit_test(hash_is_hmac_sha256_and_stable),
        cmocka_unit_test(remembered_hashes_stay_exact),
        cmocka_unit_test(hash_compare_is_exact),
        cmocka_unit_test(declared_keys_map_to_their_consumer),
    };
    return cmocka_run_group_tests_name("store_keys", tests, NULL, NULL);
}
