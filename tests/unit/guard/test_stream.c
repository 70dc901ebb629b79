/* The stream scanner, fed the same text in every way it can be cut into chunks: no denied
 * word ever goes out, whole or split, and what goes out is always the text before the
 * first match (or all of it when nothing matches). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guard_int.h"
#include "plugin.h"

static sl_guard_conf *load(const char *yaml)
{
    sl_diag d;
    sl_diag_init(&d, "test.yaml");
    d.quiet = true;
    sl_ynode *root = sl_yaml_load_string(yaml, strlen(yaml), "test.yaml", &d);
    assert_non_null(root);
    sl_plugin_ctx ctx = {.config = NULL, .diag = &d};
    void *conf = NULL;
    int rc = sl_guard_config_parse(root, &ctx, &conf);
    if (rc != 0 || d.n)
        fail_msg("config refused: %s", d.n ? d.lines[0] : "?");
    sl_ynode_free(root);
    sl_diag_free(&d);
    return conf;
}

/* Character starts of s (the cut points an upstream can use: deltas are whole characters). */
static size_t char_starts(const char *s, size_t *pos)
{
    size_t n = 0;
    for (size_t i = 0; s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            pos[n++] = i;
    pos[n] = strlen(s);
    return n;
}

/* Feed text cut at the character boundaries that `cuts` selects (bit k: cut before
 * character k+1); returns what went out, and whether it hit. */
static char *run(const sl_guard_conf *c, const char *text, const size_t *pos, size_t nch, uint32_t cuts, bool *hit)
{
    sl_guard_stream st;
    assert_int_equal(sl_guard_stream_init(&st, &c->rules, c->holdback), 0);
    size_t cap = strlen(text) + 1, len = 0;
    char *sent = calloc(1, cap);
    size_t from = 0;
    *hit = false;
    for (size_t k = 1; k <= nch && !*hit; k++) {
        bool last = k == nch;
        if (!last && !(cuts & (1u << (k - 1))))
            continue;
        const char *out = NULL;
        size_t out_len = 0;
        sl_guard_hit h;
        sl_guard_feed r = sl_guard_stream_feed(&st, text + pos[from], pos[k] - pos[from], last, &out, &out_len, &h);
        assert_int_not_equal(r, SL_GUARD_FEED_ERROR);
        assert_true(len + out_len < cap);
        memcpy(sent + len, out ? out : "", out_len);
        len += out_len;
        from = k;
        *hit = r == SL_GUARD_FEED_HIT;
    }
    sent[len] = 0;
    sl_guard_stream_free(&st);
    return sent;
}

/* Every chunking of text: the output is always want, and the hit is as expected. */
static void every_chunking(const sl_guard_conf *c, const char *text, const char *want, bool want_hit)
{
    size_t pos[64];
    size_t nch = char_starts(text, pos);
    assert_true(nch <= 21);
    uint32_t all = nch > 1 ? 1u << (nch - 1) : 1;
    for (uint32_t cuts = 0; cuts < all; cuts++) {
        bool hit;
        char *sent = run(c, text, pos, nch, cuts, &hit);
        if (strcmp(sent, want) != 0 || hit != want_hit)
            fail_msg("text '%s' cuts %#x: sent '%s' (hit %d), want '%s' (hit %d)", text, cuts, sent, hit, want,
                     want_hit);
        free(sent);
    }
}

static void test_keywords_split_anywhere(void **state)
{
    (void)state;
    sl_guard_conf *c = load("deny: [badword, \"\xE5\x9D\x8F\xE4\xBA\x8B\", bad]\n");
    assert_int_equal(c->holdback, 7);
    every_chunking(c, "ok BadWord", "ok ", true);
    every_chunking(c, "xx\xEF\xBD\x82\xEF\xBD\x81\xEF\xBD\x84yy", "xx", true);           /* ｂａｄ */
    every_chunking(c, "un\xE5\x9D\x8F\xE4\xBA\x8Bok", "un", true);                       /* 坏事 */
    every_chunking(c, "b\xE2\x80\x8B" "a\xE2\x80\x8B" "d!", "", true);                    /* zero-width spaces */
    every_chunking(c, "all fine here", "all fine here", false);
    every_chunking(c, "ba ba ba ba d", "ba ba ba ba d", false);
    sl_guard_config_free(c);
}

/* A combining mark in the next chunk changes the character before it: the keyword scan
 * goes on from the last character, which it sees again with its marks. */
static void test_marks_across_chunks(void **state)
{
    (void)state;
    sl_guard_conf *c = load("deny: [\"caf\u00e9\", cafe]\n");
    every_chunking(c, "un cafe\xCC\x81!", "un ", true);                     /* e + U+0301 is é */
    every_chunking(c, "cafe\xCC\x81\xCC\xA3 x", "cafe\xCC\x81\xCC\xA3 x", false); /* é with a dot below */
    every_chunking(c, "le CAFE", "le ", true);
    every_chunking(c, "ca fe cafe\xCC\x81", "ca fe ", true);
    sl_guard_config_free(c);
    c = load("deny: [cafe]\n");
    every_chunking(c, "cafe\xCC\x81 ok", "cafe\xCC\x81 ok", false);         /* no "cafe" in "café" */
    every_chunking(c, "x cafe\xCC\x81 cafe", "x cafe\xCC\x81 ", true);
    sl_guard_config_free(c);
    c = load("deny: [ab]\nholdback: 0\n"); /* nothing held back: a word in one chunk is seen at once */
    sl_guard_stream st;
    assert_int_equal(sl_guard_stream_init(&st, &c->rules, c->holdback), 0);
    const char *out;
    size_t n;
    sl_guard_hit h;
    assert_int_equal(sl_guard_stream_feed(&st, "xxab", 4, false, &out, &n, &h), SL_GUARD_FEED_HIT);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "xx", n);
    sl_guard_stream_free(&st);
    sl_guard_config_free(c);
}

static void test_regex_split_anywhere(void **state)
{
    (void)state;
    sl_guard_conf *c = load("deny_regex: ['secret[0-9]{2}\\b', '\\bcat\\b']\n");
    assert_int_equal(c->holdback, 8);
    every_chunking(c, "my Secret42 is", "my ", true);
    every_chunking(c, "secret427", "secret427", false);
    /* look-behind over what was already sent: "cat" inside "concatenate" is no word */
    every_chunking(c, "concatenate", "concatenate", false);
    every_chunking(c, "a cat sat", "a ", true);
    sl_guard_config_free(c);
}

static void test_holdback_keeps_text_back(void **state)
{
    (void)state;
    sl_guard_conf *c = load("deny: [abcd]\n");
    sl_guard_stream st;
    assert_int_equal(sl_guard_stream_init(&st, &c->rules, c->holdback), 0);
    const char *out;
    size_t n;
    sl_guard_hit h;
    assert_int_equal(sl_guard_stream_feed(&st, "xyz", 3, false, &out, &n, &h), SL_GUARD_FEED_OK);
    assert_null(out); /* all three within the window of 4 */
    assert_int_equal(sl_guard_stream_feed(&st, "wvuabc", 6, false, &out, &n, &h), SL_GUARD_FEED_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "xyzwv", n); /* "uabc" may still become "abcd"... */
    /* "abcd" is whole, but a combining mark may yet make its "d" another letter: the hit
     * is known with the next text (or the end), and nothing of it goes out meanwhile */
    assert_int_equal(sl_guard_stream_feed(&st, "d", 1, false, &out, &n, &h), SL_GUARD_FEED_OK);
    assert_int_equal(n, 1);
    assert_memory_equal(out, "u", n);
    assert_int_equal(sl_guard_stream_feed(&st, " ok", 3, false, &out, &n, &h), SL_GUARD_FEED_HIT);
    assert_null(out);
    sl_guard_stream_free(&st);
    sl_guard_config_free(c);
}

static void test_regex_bound(void **state)
{
    (void)state;
    assert_int_equal(sl_guard_regex_bound("abc"), 3);
    assert_int_equal(sl_guard_regex_bound("a{2,5}b?"), 6);
    assert_int_equal(sl_guard_regex_bound("(foo|barbaz)[0-9]{3}"), 9);
    assert_int_equal(sl_guard_regex_bound("\\bx\\d{4}\\b"), 5);
    assert_int_equal(sl_guard_regex_bound("(?i)caf\xC3\xA9"), 4);
    assert_int_equal(sl_guard_regex_bound("(?:ab){3}(?=c)"), 6);
    assert_int_equal(sl_guard_regex_bound("[a-z]+"), SIZE_MAX);
    assert_int_equal(sl_guard_regex_bound("a*"), SIZE_MAX);
    assert_int_equal(sl_guard_regex_bound("(a)\\1"), SIZE_MAX);
    assert_int_equal(sl_guard_regex_bound("x{3,}"), SIZE_MAX);
}

/* A long stream in pieces of 1 to 40 bytes (the buffer compacted many times over): what goes
 * out is the text up to the first match, whole, in every case; none when there is no match. */
static void test_long_stream(void **state)
{
    (void)state;
    sl_guard_conf *c = load("deny: [zebra]\ndeny_regex: ['\\bqx[0-9]{3}\\b']\n");
    static const char *const words[] = {"the ", "ox ", "caf\xC3\xA9 ", "cafe\xCC\x81 ", "\xE4\xBD\xA0\xE5\xA5\xBD", "b\xE2\x80\x8Bra ",
                                        "\xEF\xBC\xA1 ", "qx12 ", "\n", "ze", "bra "};
    static const char *const hits[] = {"ZEBRA", "Ze\xE2\x80\x8B" "bra", "\xEF\xBD\x9A\xEF\xBD\x85" "bra", "qx123 "};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t cap = 40000;
    char *text = malloc(cap), *sent = malloc(cap);
    for (int round = 0; round < 40; round++) {
        size_t len = 0, at = (size_t)-1;
        while (len < 20000) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *w = words[x % (sizeof words / sizeof words[0])];
            if (strcmp(w, "ze") == 0 && len && text[len - 1] != ' ')
                w = "x"; /* "ze" + "bra" only where it makes no word: "ze bra" */
            memcpy(text + len, w, strlen(w));
            len += strlen(w);
            if (strcmp(w, "ze") == 0) {
                memcpy(text + len, " ", 1);
                len++;
            }
        }
        if (round % 4 != 3) { /* a match at a place of its own */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            at = 1000 + x % 15000;
            while (at < len && ((unsigned char)text[at] & 0xC0) == 0x80)
                at++;
            const char *h = hits[round % (sizeof hits / sizeof hits[0])];
            memmove(text + at + 1 + strlen(h), text + at, len - at);
            text[at] = ' ';
            memcpy(text + at + 1, h, strlen(h));
            len += 1 + strlen(h);
            at++;
        }
        sl_guard_stream st;
        assert_int_equal(sl_guard_stream_init(&st, &c->rules, c->holdback), 0);
        size_t off = 0, n_sent = 0;
        bool hit = false;
        while (off < len && !hit) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t step = 1 + x % 40;
            if (step > len - off)
                step = len - off;
            while (off + step < len && ((unsigned char)text[off + step] & 0xC0) == 0x80)
                step++; /* whole characters, as deltas are */
            const char *out = NULL;
            size_t out_len = 0;
            sl_guard_hit h;
            sl_guard_feed r = sl_guard_stream_feed(&st, text + off, step, off + step == len, &out, &out_len, &h);
            assert_int_not_equal(r, SL_GUARD_FEED_ERROR);
            memcpy(sent + n_sent, out ? out : "", out_len);
            n_sent += out_len;
            off += step;
            hit = r == SL_GUARD_FEED_HIT;
        }
        sl_guard_stream_free(&st);
        if (at == (size_t)-1) {
            assert_false(hit);
            assert_int_equal(n_sent, len);
        } else {
            if (!hit || n_sent != at)
                fail_msg("round %d: hit %d, %zu bytes sent, the match is at %zu", round, hit, n_sent, at);
        }
        assert_memory_equal(sent, text, n_sent);
    }
    free(text);
    free(sent);
    sl_guard_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keywords_split_anywhere),
        cmocka_unit_test(test_marks_across_chunks),
        cmocka_unit_test(test_regex_split_anywhere),
        cmocka_unit_test(test_holdback_keeps_text_back),
        cmocka_unit_test(test_regex_bound),
        cmocka_unit_test(test_long_stream),
    };
    return cmocka_run_group_tests_name("guard_stream", tests, NULL, NULL);
}
