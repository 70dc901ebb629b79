/* Aho-Corasick: the first match it reports is the one a naive search of every keyword at
 * every position finds first (earliest end, then longest), over 10,000 random keywords. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guard_int.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* The naive oracle: every keyword length at every end position, looked up in a sorted
 * copy of the list; the match with the smallest end, the longest among those. */
typedef struct kwe {
    const char *s;
    size_t len;
    uint32_t id;
} kwe;

static int cmp_kwe(const void *a, const void *b)
{
    const kwe *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->s, y->s, x->len);
}

static bool naive(const kwe *sorted, size_t n, size_t minl, size_t maxl, const char *s, size_t len,
                  sl_guard_hit *hit)
{
    for (size_t end = 1; end <= len; end++) {
        for (size_t l = maxl; l >= minl; l--) {
            if (l > end)
                continue;
            kwe key = {s + end - l, l, 0};
            const kwe *f = bsearch(&key, sorted, n, sizeof *sorted, cmp_kwe);
            if (f) {
                hit->start = end - l;
                hit->end = end;
                hit->id = f->id;
                return true;
            }
        }
    }
    return false;
}

static void test_basic(void **state)
{
    (void)state;
    sl_guard_ac *ac = sl_guard_ac_new();
    assert_non_null(ac);
    assert_int_equal(sl_guard_ac_add(ac, "he", 2, 0), 0);
    assert_int_equal(sl_guard_ac_add(ac, "she", 3, 1), 0);
    assert_int_equal(sl_guard_ac_add(ac, "hers", 4, 2), 0);
    assert_int_equal(sl_guard_ac_add(ac, "\xE5\x9D\x8F", 3, 3), 0); /* 坏 */
    assert_int_equal(sl_guard_ac_build(ac), 0);
    sl_guard_hit h;
    for (int pass = 0; pass < 2; pass++) {
    if (pass == 1)
        sl_guard_ac_drop_dfa(ac);
    assert_true(sl_guard_ac_find(ac, "ushers", 6, &h));
    assert_int_equal(h.id, 1); /* "she" ends at 4, longer than "he" ending there */
    assert_int_equal(h.start, 1);
    assert_int_equal(h.end, 4);
    assert_false(sl_guard_ac_find(ac, "usual", 5, &h));
    const char *zh = "\xE8\xBF\x99\xE6\x98\xAF\xE5\x9D\x8F\xE4\xBA\x8B"; /* 这是坏事 */
    assert_true(sl_guard_ac_find(ac, zh, strlen(zh), &h));
    assert_int_equal(h.id, 3);
    assert_int_equal(h.start, 6);
    }
    sl_guard_ac_free(ac);
}

static void against_naive(bool dfa)
{
    enum { NK = 10000, TEXT = 20000, ROUNDS = 8, MINL = 5, MAXL = 12 };
    char **kw = calloc(NK, sizeof *kw);
    kwe *sorted = calloc(NK, sizeof *sorted);
    sl_guard_ac *ac = sl_guard_ac_new();
    assert_non_null(ac);
    /* a small alphabet, so keywords share prefixes and suffixes (deep failure links) */
    for (size_t k = 0; k < NK; k++) {
        size_t l = MINL + rnd() % (MAXL - MINL + 1);
        kw[k] = malloc(l + 1);
        for (size_t i = 0; i < l; i++)
            kw[k][i] = (char)('a' + rnd() % 8);
        kw[k][l] = 0;
        sorted[k] = (kwe){kw[k], l, (uint32_t)k};
        assert_int_equal(sl_guard_ac_add(ac, kw[k], l, (uint32_t)k), 0);
    }
    assert_int_equal(sl_guard_ac_build(ac), 0);
    assert_int_equal(sl_guard_ac_count(ac), NK);
    assert_true(sl_guard_ac_has_dfa(ac));
    if (!dfa)
        sl_guard_ac_drop_dfa(ac);
    qsort(sorted, NK, sizeof *sorted, cmp_kwe);
    char *text = malloc(TEXT);
    size_t hits = 0, misses = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < TEXT; i++)
            text[i] = (char)(rnd() % 16 == 0 ? 'x' : 'a' + rnd() % 8);
        /* every match in turn: search again from just after the last one's start */
        size_t off = 0;
        for (;;) {
            sl_guard_hit a, b;
            bool fa = sl_guard_ac_find(ac, text + off, TEXT - off, &a);
            bool fb = naive(sorted, NK, MINL, MAXL, text + off, TEXT - off, &b);
            assert_int_equal(fa, fb);
            if (!fa) {
                misses++;
                break;
            }
            hits++;
            assert_int_equal(a.start, b.start);
            assert_int_equal(a.end, b.end);
            /* the same text (a duplicate keyword may carry another id) */
            assert_memory_equal(kw[a.id], text + off + a.start, a.end - a.start);
            off += a.start + 1;
        }
    }
    assert_true(hits > 1000);
    assert_true(misses > 0);
    free(text);
    for (size_t k = 0; k < NK; k++)
        free(kw[k]);
    free(kw);
    free(sorted);
    sl_guard_ac_free(ac);
}

static void test_10000_keywords_against_naive_dfa(void **state)
{
    (void)state;
    against_naive(true);
}

static void test_10000_keywords_against_naive_edges(void **state)
{
    (void)state;
    against_naive(false);
}

/* Long texts with few matches, so that every lane of the DFA's four-lane scan has the first
 * one in turn, planted across the places where the text is cut: the same first match as the
 * naive search, and fed in pieces (the one-lane scan), the same state after the text. */
static void test_lanes_against_naive(void **state)
{
    (void)state;
    enum { NK = 40, MINL = 2, MAXL = 30, ROUNDS = 3000 };
    char *kw[NK];
    kwe sorted[NK];
    sl_guard_ac *ac = sl_guard_ac_new();
    assert_non_null(ac);
    for (size_t k = 0; k < NK; k++) {
        size_t l = k == 0 ? MAXL : k == 1 ? MINL : MINL + rnd() % (MAXL - MINL + 1);
        kw[k] = malloc(l);
        for (size_t i = 0; i < l; i++)
            kw[k][i] = (char)('a' + rnd() % 4);
        sorted[k] = (kwe){kw[k], l, (uint32_t)k};
        assert_int_equal(sl_guard_ac_add(ac, kw[k], l, (uint32_t)k), 0);
    }
    assert_int_equal(sl_guard_ac_build(ac), 0);
    assert_true(sl_guard_ac_has_dfa(ac));
    qsort(sorted, NK, sizeof *sorted, cmp_kwe);
    size_t by_lane[4] = {0}, none = 0;
    char text[6000];
    for (int r = 0; r < ROUNDS; r++) {
        size_t len = 200 + rnd() % (sizeof text - 200);
        for (size_t i = 0; i < len; i++) /* mostly letters no keyword has: matches only where planted */
            text[i] = (char)(rnd() % 64 ? 'e' + rnd() % 20 : 'a' + rnd() % 4);
        for (int n = (int)(rnd() % 3); n > 0; n--) {
            const char *w = kw[rnd() % NK];
            size_t l = sorted[0].len, at;
            for (size_t k = 0; k < NK; k++)
                if (sorted[k].s == w)
                    l = sorted[k].len;
            if (l > len)
                continue;
            /* near a cut (a quarter of the text) as often as anywhere */
            size_t cut = len / 4 * (1 + rnd() % 3);
            at = rnd() % 2 ? cut - (rnd() % l < cut ? rnd() % l : 0) : rnd() % (len - l + 1);
            if (at + l > len)
                at = len - l;
            memcpy(text + at, w, l);
        }
        sl_guard_hit a, b;
        bool fa = sl_guard_ac_find(ac, text, len, &a);
        bool fb = naive(sorted, NK, MINL, MAXL, text, len, &b);
        assert_int_equal(fa, fb);
        if (fa) {
            assert_int_equal(a.start, b.start);
            assert_int_equal(a.end, b.end);
            assert_memory_equal(kw[a.id], text + a.start, a.end - a.start);
            by_lane[(a.end - 1) * 4 / len < 4 ? (a.end - 1) * 4 / len : 3]++;
        } else {
            none++;
            /* the state the four lanes leave is the one-lane scan's, fed in short pieces */
            int32_t s4 = 0, s1 = 0;
            sl_guard_hit h;
            assert_false(sl_guard_ac_feed(ac, &s4, text, 0, len, &h));
            for (size_t i = 0; i < len; i += 50)
                assert_false(sl_guard_ac_feed(ac, &s1, text, i, i + 50 < len ? i + 50 : len, &h));
            assert_int_equal(s4, s1);
        }
    }
    for (int k = 0; k < 4; k++)
        assert_true(by_lane[k] > 100);
    assert_true(none > 100);
    for (size_t k = 0; k < NK; k++)
        free(kw[k]);
    sl_guard_ac_free(ac);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_10000_keywords_against_naive_dfa),
        cmocka_unit_test(test_10000_keywords_against_naive_edges),
        cmocka_unit_test(test_lanes_against_naive),
    };
    return cmocka_run_group_tests_name("guard_keywords", tests, NULL, NULL);
}
