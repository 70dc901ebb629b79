/* sl_jview_read is sound: a text it reads is one jansson reads (json_loadb, flags 0) into the
 * same value (the view turned into a tree by sl_jview_json equals jansson's), on hand-picked
 * texts and many mutated ones; it reads the usual streamed events; its lookups keep the last
 * of duplicate keys as jansson does; and after a string is replaced in the text, or a member
 * added, the view says what reading the new text says; and reading a text against the last
 * one (a stream's next event) gives what reading it afresh gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "json_dump.h"
#include "json_view.h"
#include "strbuf.h"

static sl_jview view;

/* True when the view read text; then it must agree with jansson. */
static bool read_agrees(const char *text, size_t len)
{
    if (sl_jview_read(&view, text, len) < 0)
        return false;
    json_error_t err;
    json_t *want = json_loadb(text, len, 0, &err);
    if (!want)
        fail_msg("the view read what jansson refuses (%s): %.*s", err.text, (int)len, text);
    json_t *got = sl_jview_json(&view, 0);
    if (!json_equal(want, got)) {
        char *a = json_dumps(want, JSON_COMPACT), *b = got ? json_dumps(got, JSON_COMPACT) : NULL;
        fail_msg("%.*s: jansson %s, view %s", (int)len, text, a, b ? b : "(null)");
    }
    json_decref(want);
    json_decref(got);
    return true;
}

static const char *const events[] = {
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}",
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello,\\n\\n\\\"caf\\u00e9\\\" \xe4\xbd\xa0\"},\"finish_reason\":null}]}",
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17,\"prompt_tokens_details\":{\"cached_tokens\":0}}}",
    "{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}",
    " { \"choices\" : [ { \"index\" : 1 , \"delta\" : { \"reasoning_content\" : \"hm\" } } ] } \n",
    "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}",
    "{\"choices\":[{\"text\":\"abc\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"score\":-0.25}",
    "[true,false,null,0,-0,-12,123456789012345678,1.5,-0.0,[],{},[[{}]],\"\"]",
};

/* Texts the view leaves to jansson (or that are not JSON at all). */
static const char *const not_read[] = {
    "", " ", "1", "\"s\"", "null", "{", "[", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]", "{a:1}",
    "{\"a\":1}}", "{\"a\":1} x", "[truex]", "[nul]", "[True]", "[1]\n\n[2]", "{'a':1}", "[01]", "[1.]", "[.5]",
    "[1e3]", "[1E-3]", "[-]", "[+1]", "[0x10]", "[1234567890123456789]", "[99999999999999999999]",
    "[\"\\ud83d\"]", "[\"\\ude00\"]", "[\"\\u0000\"]", "[\"\\x\"]", "[\"tab\there\"]", "[\"\xc3\"]",
    "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "[\"\xff\"]", "[\"unterminated]", "{\"a\\u0000\":1}", "[}", "{]",
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
        if (!read_agrees(events[i], strlen(events[i])))
            fail_msg("not read: %s", events[i]);
    for (size_t i = 0; i < sizeof not_read / sizeof not_read[0]; i++)
        if (read_agrees(not_read[i], strlen(not_read[i])))
            fail_msg("read: %s", not_read[i]);
    assert_false(read_agrees("{\"a\":1}\0", 8)); /* a NUL after the value */
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    assert_false(read_agrees(deep, 200));       /* deeper than the view goes */
    assert_true(read_agrees(deep + 40, 120));   /* 60 deep */
}

static void test_lookups(void **state)
{
    (void)state;
    const char *t = "{\"a\":1,\"b\":{\"c\":\"x\\ty\"},\"a\":[10,20,30],\"\":true,\"k\\u00e9\":null}";
    assert_int_equal(sl_jview_read(&view, t, strlen(t)), 0);
    int a = sl_jview_get(&view, 0, "a");
    assert_int_equal(sl_jview_type(&view, a), SL_JV_ARRAY); /* the last "a", as jansson keeps */
    long long x = 0;
    assert_true(sl_jview_int(&view, sl_jview_item(&view, a, 2), &x));
    assert_int_equal(x, 30);
    assert_int_equal(sl_jview_item(&view, a, 3), -1);
    size_t n = 0;
    const char *s = sl_jview_str(&view, sl_jview_get(&view, sl_jview_get(&view, 0, "b"), "c"), &n);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "x\ty", 3);
    assert_int_equal(sl_jview_type(&view, sl_jview_get(&view, 0, "")), SL_JV_TRUE);
    assert_int_equal(sl_jview_type(&view, sl_jview_get(&view, 0, "k\xc3\xa9")), SL_JV_NULL);
    assert_int_equal(sl_jview_get(&view, 0, "z"), -1);
    assert_int_equal(sl_jview_get(&view, a, "a"), -1);  /* not an object */
    assert_int_equal(sl_jview_get(&view, -1, "a"), -1);
    assert_null(sl_jview_str(&view, a, &n));
    assert_false(sl_jview_int(&view, sl_jview_get(&view, 0, "b"), &x));
}

/* Several members in one walk read what one lookup each reads: the last of a duplicate, an
 * escaped key, the empty key, keys of one length with other bytes, a key absent. */
static void test_members(void **state)
{
    (void)state;
    const char *t = "{\"ab\":1,\"b\":{\"c\":2},\"ab\":[3],\"\":true,\"k\\u00e9\":null,\"xy\":4,\"finish_reason\":\"s\"}";
    assert_int_equal(sl_jview_read(&view, t, strlen(t)), 0);
    static const sl_jkey keys[] = {SL_JKEY("ab"), SL_JKEY("b"),  SL_JKEY(""),  SL_JKEY("k\xc3\xa9"),
                                   SL_JKEY("xz"), SL_JKEY("finish_reason"), SL_JKEY("missing")};
    enum { N = sizeof keys / sizeof *keys };
    int out[N];
    sl_jview_members(&view, 0, keys, N, out);
    for (int j = 0; j < N; j++)
        assert_int_equal(out[j], sl_jview_getn(&view, 0, keys[j].s, keys[j].len));
    assert_int_equal(sl_jview_type(&view, out[0]), SL_JV_ARRAY);
    assert_int_equal(out[4], -1);
    assert_int_equal(out[6], -1);
    sl_jview_members(&view, out[0], keys, N, out); /* not an object: all absent */
    for (int j = 0; j < N; j++)
        assert_int_equal(out[j], -1);
    sl_jview_members(&view, -1, keys, 1, out);
    assert_int_equal(out[0], -1);
}

/* A key set made once reads what the one-off walk reads; a list longer than a set is walked
 * in sets; more keys than a set holds is refused. */
static void test_key_sets(void **state)
{
    (void)state;
    const char *t = "{\"a\":0,\"bb\":1,\"ccc\":2,\"dddd\":3,\"eeeee\":4,\"ffffff\":5,\"ggggggg\":6,\"hhhhhhhh\":7,"
                    "\"iiiiiiiii\":8,\"jjjj\":9,\"dddx\":10}";
    assert_int_equal(sl_jview_read(&view, t, strlen(t)), 0);
    static const sl_jkey keys[] = {SL_JKEY("iiiiiiiii"), SL_JKEY("a"),        SL_JKEY("dddx"),    SL_JKEY("bb"),
                                   SL_JKEY("zz"),        SL_JKEY("hhhhhhhh"), SL_JKEY("ccc"),     SL_JKEY("dddd"),
                                   SL_JKEY("jjjj"),      SL_JKEY("ffffff"),   SL_JKEY("ggggggg"), SL_JKEY("eeeee")};
    enum { N = sizeof keys / sizeof *keys };
    int out[N], one[SL_JKEYS_MAX];
    sl_jview_members(&view, 0, keys, N, out); /* 12 keys: a set of 8, then one of 4 */
    for (int j = 0; j < N; j++)
        assert_int_equal(out[j], sl_jview_getn(&view, 0, keys[j].s, keys[j].len));
    assert_int_equal(out[4], -1);
    sl_jkeys ks;
    assert_int_equal(sl_jkeys_init(&ks, keys, SL_JKEYS_MAX), 0);
    for (int round = 0; round < 2; round++) { /* the set is not used up */
        sl_jview_members_of(&view, 0, &ks, one);
        for (int j = 0; j < SL_JKEYS_MAX; j++)
            assert_int_equal(one[j], out[j]);
    }
    sl_jview_members_of(&view, out[0], &ks, one); /* not an object */
    for (int j = 0; j < SL_JKEYS_MAX; j++)
        assert_int_equal(one[j], -1);
    assert_int_equal(sl_jkeys_init(&ks, keys, SL_JKEYS_MAX + 1), -1);
}

/* Every string of every event replaced in turn (longer, shorter, with escapes): the text
 * changed in place reads back as the view now says. */
static void test_replace(void **state)
{
    (void)state;
    static const char *const values[] = {"", "a", "a much longer piece of text than before", "q\"\\\n\x01", "\xe4\xbd\xa0"};
    for (size_t e = 0; e < sizeof events / sizeof events[0]; e++) {
        assert_int_equal(sl_jview_read(&view, events[e], strlen(events[e])), 0);
        for (size_t k = 0; k < sizeof values / sizeof values[0]; k++) {
            assert_int_equal(sl_jview_read(&view, events[e], strlen(events[e])), 0);
            char *text = strdup(events[e]);
            size_t len = strlen(text);
            /* each string token, one after another, in the same view */
            for (uint32_t i = 0; i < view.n; i++) {
                if (view.tok[i].type != SL_JV_STRING)
                    continue;
                const sl_jv_tok *t = &view.tok[i];
                sl_strbuf b = {0};
                assert_int_equal(sl_strbuf_add(&b, text, t->start), 0);
                assert_int_equal(sl_json_dump_string(&b, values[k], strlen(values[k])), 0);
                size_t written = b.len - t->start;
                assert_int_equal(sl_strbuf_add(&b, text + t->end, len - t->end), 0);
                assert_int_equal(sl_jview_string_replaced(&view, (int)i, b.s, b.len, written, values[k],
                                                          strlen(values[k]), written != strlen(values[k]) + 2),
                                 0);
                free(text);
                text = b.s;
                len = b.len;
                json_t *want = json_loadb(text, len, 0, NULL), *got = sl_jview_json(&view, 0);
                assert_non_null(want);
                if (!json_equal(want, got))
                    fail_msg("after replacing token %u: %s", i, text);
                json_decref(want);
                json_decref(got);
            }
            free(text);
        }
    }
}

/* A member added last to each object of each event, with keys and values plain and escaped:
 * the view's tokens are then, one for one, those of reading the new text. */
static void test_member_added(void **state)
{
    (void)state;
    static const char *const keys[] = {"content", "k\"\xc3\xa9y", ""};
    static const char *const values[] = {"held text", "a\"b\\c\n", ""};
    sl_jview fresh = {0};
    for (size_t e = 0; e < sizeof events / sizeof events[0]; e++) {
        for (size_t k = 0; k < 3; k++) {
            assert_int_equal(sl_jview_read(&view, events[e], strlen(events[e])), 0);
            char *text = strdup(events[e]);
            size_t len = strlen(text);
            for (uint32_t i = 0; i < view.n; i++) { /* the objects as they come, into one view */
                if (view.tok[i].type != SL_JV_OBJECT)
                    continue;
                const sl_jv_tok *t = &view.tok[i];
                size_t at = t->end - 1;
                bool comma = t->size > 0;
                sl_strbuf b = {0};
                assert_int_equal(sl_strbuf_add(&b, text, at), 0);
                if (comma)
                    assert_int_equal(sl_strbuf_add(&b, ",", 1), 0);
                sl_jv_span ks = {b.len, 0}, vs = {0, 0};
                assert_int_equal(sl_json_dump_string(&b, keys[k], strlen(keys[k])), 0);
                ks.end = b.len;
                assert_int_equal(sl_strbuf_add(&b, ":", 1), 0);
                vs.start = b.len;
                assert_int_equal(sl_json_dump_string(&b, values[k], strlen(values[k])), 0);
                vs.end = b.len;
                assert_int_equal(sl_strbuf_add(&b, text + at, len - at), 0);
                assert_int_equal(sl_jview_member_added(&view, (int)i, b.s, b.len, ks, keys[k], strlen(keys[k]), vs,
                                                       values[k], strlen(values[k])),
                                 0);
                free(text);
                text = b.s;
                len = b.len;
                assert_int_equal(sl_jview_read(&fresh, text, len), 0);
                assert_int_equal(view.n, fresh.n);
                for (uint32_t j = 0; j < view.n; j++) {
                    const sl_jv_tok *a = &view.tok[j], *f = &fresh.tok[j];
                    if (a->type != f->type || a->start != f->start || a->end != f->end || a->next != f->next ||
                        a->size != f->size || a->escaped != f->escaped)
                        fail_msg("after adding to token %u, token %u differs: %s", i, j, text);
                    size_t an, fn;
                    const char *as = sl_jview_str(&view, (int)j, &an), *fs = sl_jview_str(&fresh, (int)j, &fn);
                    if (as && (an != fn || memcmp(as, fs, an) != 0))
                        fail_msg("after adding to token %u, string %u differs: %s", i, j, text);
                }
            }
            free(text);
        }
    }
    sl_jview_free(&fresh);
}

static void test_mutations(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\",:\\u0e-+.1aE \t\n\xc3\xa9";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char buf[1024];
    size_t yes = 0, rounds = 0;
    for (int round = 0; round < 60000; round++) {
        const char *seed = events[round % (sizeof events / sizeof events[0])];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        for (int m = 0; m < 1 + round % 3; m++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[x % n] = alphabet[(x >> 32) % (sizeof alphabet - 1)];
        }
        yes += read_agrees(buf, n);
        rounds++;
    }
    assert_true(yes > rounds / 20); /* enough of them are still JSON */
}

/* The view (read against the last text) says what a fresh read of text says. */
static void same_as_fresh(const sl_jview *v, int got, const char *text, size_t len)
{
    sl_jview fresh = {0};
    int want = sl_jview_read(&fresh, text, len);
    if ((got < 0) != (want < 0))
        fail_msg("read again %d, afresh %d: %.*s", got, want, (int)len, text);
    if (want == 0) {
        if (v->n != fresh.n)
            fail_msg("read again: %u tokens, afresh %u: %.*s", v->n, fresh.n, (int)len, text);
        for (uint32_t j = 0; j < v->n; j++) {
            const sl_jv_tok *a = &v->tok[j], *f = &fresh.tok[j];
            if (a->type != f->type || a->start != f->start || a->end != f->end || a->next != f->next ||
                a->size != f->size || a->escaped != f->escaped)
                fail_msg("read again: token %u differs: %.*s", j, (int)len, text);
            size_t an, fn;
            const char *as = sl_jview_str(v, (int)j, &an), *fs = sl_jview_str(&fresh, (int)j, &fn);
            if (as && (an != fn || memcmp(as, fs, an) != 0))
                fail_msg("read again: string %u differs: %.*s", j, (int)len, text);
        }
    }
    sl_jview_free(&fresh);
}

/* Streams of texts, each read against the one before: the events with their content
 * rewritten (moved: 1), and mutated anywhere, with bytes changed, put in or taken out. */
static void test_read_again(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\",:\\u0e-+.1aE \t\n\xc3\xa9";
    static const char *const contents[] = {"", "Hi", " there, a longer piece", "q\"\\\n\x01", "\xe4\xbd\xa0",
                                           "\xf0\x9f\x98\x80 ok"};
    uint64_t x = 0x2545f4914f6cdd1dull;
    char bufs[2][1024];
    size_t moved = 0, rounds = 0;
    for (size_t e = 0; e < sizeof events / sizeof events[0]; e++) {
        size_t n = strlen(events[e]);
        memcpy(bufs[0], events[e], n);
        int cur = 0;
        if (sl_jview_read(&view, bufs[0], n) < 0)
            continue;
        for (int round = 0; round < 3000; round++) {
            char *next = bufs[!cur];
            size_t m = 0;
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *was = bufs[cur];
            size_t was_len = view.len;
            if (view.n && round % 2 == 0) { /* a string of the last text rewritten, as a guard does */
                uint32_t i = (uint32_t)(x % view.n);
                while (i < view.n && (view.tok[i].type != SL_JV_STRING || was[view.tok[i].end] == ':'))
                    i++; /* a value (a key changed is another member: read afresh) */
                if (i == view.n)
                    continue;
                const sl_jv_tok *t = &view.tok[i];
                const char *c = contents[(x >> 20) % (sizeof contents / sizeof contents[0])];
                sl_strbuf b = {0};
                assert_int_equal(sl_json_dump_string(&b, c, strlen(c)), 0);
                if (t->start + b.len + (was_len - t->end) >= sizeof bufs[0]) {
                    free(b.s);
                    continue;
                }
                memcpy(next, was, t->start);
                memcpy(next + t->start, b.s, b.len);
                memcpy(next + t->start + b.len, was + t->end, was_len - t->end);
                m = t->start + b.len + (was_len - t->end);
                free(b.s);
            } else { /* anything: a byte changed, put in or taken out */
                memcpy(next, was, was_len);
                m = was_len;
                for (int k = 0; k < 1 + round % 3; k++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    size_t at = m ? x % m : 0;
                    char c = alphabet[(x >> 32) % (sizeof alphabet - 1)];
                    switch ((x >> 40) % 3) {
                    case 0: if (m) next[at] = c; break;
                    case 1: if (m + 1 < sizeof bufs[0]) { memmove(next + at + 1, next + at, m - at); next[at] = c; m++; } break;
                    default: if (m) { memmove(next + at, next + at + 1, m - at - 1); m--; } break;
                    }
                }
            }
            int got = sl_jview_read_again(&view, next, m);
            same_as_fresh(&view, got, next, m);
            moved += got == 1;
            rounds++;
            if (got < 0) { /* not readable: start the stream again */
                memcpy(bufs[0], events[e], n);
                cur = 0;
                assert_int_equal(sl_jview_read(&view, bufs[0], n), 0);
                continue;
            }
            cur = !cur;
        }
    }
    if (moved < rounds / 3) /* the values rewritten are moved */
        fail_msg("%zu of %zu moved", moved, rounds);
}

static int teardown(void **state)
{
    (void)state;
    sl_jview_free(&view);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_key_sets),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_member_added),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_read_again),
    };
    return cmocka_run_group_tests_name("json_view", tests, NULL, teardown);
}
