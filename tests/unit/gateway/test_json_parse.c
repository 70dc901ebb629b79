/* sl_json_loadb gives what json_loadb gives: the same value (same dump, keys in the same
 * order) or NULL with the same error, on hand-picked texts and on many mutated ones; and
 * sl_json_dumps writes what json_dumps(JSON_COMPACT) writes. */
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
#include "json_parse.h"

static void same_dump(const json_t *v)
{
    char *a = sl_json_dumps(v, NULL), *b = json_dumps(v, JSON_COMPACT);
    if (!a || !b || strcmp(a, b) != 0)
        fail_msg("sl_json_dumps %s, json_dumps %s", a ? a : "(null)", b ? b : "(null)");
    free(a);
    free(b);
}

static size_t n_compact; /* texts said compact */

static void same(const char *text, size_t len, size_t flags)
{
    json_error_t e1, e2;
    json_t *a = sl_json_loadb(text, len, flags, &e1);
    json_t *b = json_loadb(text, len, flags, &e2);
    if (!a || !b) {
        if (a || b)
            fail_msg("%.*s: fast %s, jansson %s", (int)len, text, a ? "parsed" : "refused", b ? "parsed" : "refused");
        assert_string_equal(e1.text, e2.text);
        assert_int_equal(e1.line, e2.line);
        assert_int_equal(e1.column, e2.column);
        return;
    }
    char *da = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY), *db = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(da);
    assert_non_null(db);
    if (strcmp(da, db) != 0 || !json_equal(a, b))
        fail_msg("%.*s: fast %s, jansson %s", (int)len, text, da, db);
    if (json_is_object(b) || json_is_array(b))
        same_dump(b);
    /* compact: the text is the dump of what was read, byte for byte */
    bool compact = false;
    json_t *c = sl_json_loadb_compact(text, len, flags, NULL, &compact);
    assert_non_null(c);
    char *dc = sl_json_dumps(c, NULL);
    if (compact && (!dc || strlen(dc) != len || memcmp(dc, text, len) != 0))
        fail_msg("%.*s: said compact, dumps as %s", (int)len, text, dc ? dc : "(null)");
    n_compact += compact;
    free(dc);
    json_decref(c);
    free(da);
    free(db);
    json_decref(a);
    json_decref(b);
}

static void same_both(const char *text)
{
    same(text, strlen(text), 0);
    same(text, strlen(text), JSON_REJECT_DUPLICATES);
}

static const char *const cases[] = {
    "{}", "[]", " {\n\t\"a\" : 1 } \r\n", "[1,2,3]", "[true,false,null]", "{\"a\":{\"b\":[{},[],\"\"]}}",
    "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],\"temperature\":0,\"max_tokens\":64,\"stream\":false}",
    "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello! How can I help you today?\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":9,\"total_tokens\":21}}",
    /* numbers */
    "[0,-0,1,-1,123456789012345678,-123456789012345678]", "[1234567890123456789]", "[99999999999999999999]",
    "[-9223372036854775808]", "[9223372036854775807]", "[9223372036854775808]", "[0.5,-0.5,1e3,1E-3,2.5e+10,1.0]",
    "[1e400]", "[-1e400]", "[1e-400]", "[01]", "[1.]", "[.5]", "[1e]", "[-]", "[+1]", "[1.5e+]", "[0x10]",
    "[3.141592653589793238462643383279]", "[1.7976931348623157e308]",
    /* strings */
    "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", "[\"\\u00e9\\u4f60\\u597d\"]", "[\"\\ud83d\\ude00\"]", "[\"\\ud83d\"]",
    "[\"\\ude00\"]", "[\"\\ud83d\\u0041\"]", "[\"\\u0000\"]", "[\"a\\u0000b\"]", "[\"\\u00\"]", "[\"\\uzzzz\"]",
    "[\"\\x\"]", "[\"tab\there\"]", "[\"caf\xc3\xa9 \xe4\xbd\xa0 \xf0\x9f\x98\x80\"]", "[\"\xc3\"]", "[\"\xc0\xaf\"]",
    "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xff\"]", "[\"\xe0\x80\xaf\"]", "[\"unterminated]",
    "{\"k\\u00e9y\":\"v\\n\",\"k\\u00e9y2\":{\"\\u0041\":\"\\u0042\"}}",
    "{\"a\\u0000\":1}", "{\"a\":1,\"a\":2}", "{\"a\":1,\"b\":{\"a\":1,\"a\":2}}",
    /* syntax */
    "", " ", "1", "\"s\"", "null", "{", "[", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]", "{a:1}",
    "{\"a\":1}}", "{\"a\":1} x", "[truex]", "[nul]", "[True]", "{\"a\":1}\x00", "[1]\n\n[2]", "{'a':1}",
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same_both(cases[i]);
    /* an embedded NUL byte, which strlen would hide */
    same("[\"a\0b\"]", 7, 0);
    same("{\"a\":1}\0", 8, 0);
    /* said compact only where it is */
    static const char *const compact[] = {"{}", "[1,-2,\"\xc3\xa9/\x7f\"]", "{\"a\":{\"b\":[{},[],\"\"]},\"c\":null}"};
    static const char *const loose[] = {"{ }", "[-0]", "[1.0]", "[\"\\/\"]", "{\"a\":1,\"a\":2}", "[1] ", "[1e2]"};
    for (size_t i = 0; i < sizeof compact / sizeof compact[0]; i++) {
        bool yes = false;
        json_t *v = sl_json_loadb_compact(compact[i], strlen(compact[i]), 0, NULL, &yes);
        assert_non_null(v);
        assert_true(yes);
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++) {
        bool yes = true;
        json_t *v = sl_json_loadb_compact(loose[i], strlen(loose[i]), 0, NULL, &yes);
        assert_non_null(v);
        assert_false(yes);
        json_decref(v);
    }
}

static void test_depth(void **state)
{
    (void)state;
    for (int depth = 1000; depth <= 2100; depth += 550) {
        char *s = malloc((size_t)depth * 2 + 1);
        memset(s, '[', (size_t)depth);
        memset(s + depth, ']', (size_t)depth);
        s[depth * 2] = 0;
        same_both(s);
        free(s);
    }
}

/* Every text is a mutation of a seed: bytes replaced, dropped, or doubled. */
static void test_mutations(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\",:\\u0e-+.1aE \t\n\xc3\xa9\xed\xa0\x80\xf0\x9f\x98";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char buf[512];
    for (int round = 0; round < 40000; round++) {
        const char *seed = cases[round % 10];
        size_t n = strlen(seed);
        if (n >= sizeof buf / 2)
            n = sizeof buf / 2;
        memcpy(buf, seed, n);
        int edits = 1 + round % 3;
        for (int e = 0; e < edits && n > 0; e++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = (size_t)(x % n);
            char c = alphabet[(x >> 32) % (sizeof alphabet - 1)];
            switch ((x >> 40) % 3) {
            case 0: buf[at] = c; break;
            case 1: memmove(buf + at, buf + at + 1, n - at - 1); n--; break;
            default: memmove(buf + at + 1, buf + at, n - at); buf[at] = c; n++; break;
            }
        }
        same(buf, n, round & 1 ? JSON_REJECT_DUPLICATES : 0);
    }
}

/* Reading b into a, parsed from a text of the same shape: when it says yes, a is what b says. */
static bool reload_ok(json_t *a, const char *b, size_t len)
{
    bool compact = false, fresh_compact = false;
    if (!sl_json_reload(a, b, len, &compact))
        return false;
    json_t *fresh = sl_json_loadb_compact(b, len, 0, NULL, &fresh_compact);
    if (!fresh)
        fail_msg("%.*s: reloaded, yet not JSON", (int)len, b);
    char *da = sl_json_dumps(a, NULL), *df = sl_json_dumps(fresh, NULL);
    if (!json_equal(a, fresh) || !da || !df || strcmp(da, df) != 0 || compact != fresh_compact)
        fail_msg("%.*s: reloaded as %s (compact %d), parsed as %s (compact %d)", (int)len, b, da ? da : "(null)",
                 compact, df ? df : "(null)", fresh_compact);
    free(da);
    free(df);
    json_decref(fresh);
    return true;
}

static bool reload_str(const char *a, const char *b)
{
    json_t *v = sl_json_loadb(a, strlen(a), 0, NULL);
    assert_non_null(v);
    bool ok = reload_ok(v, b, strlen(b));
    json_decref(v);
    return ok;
}

static void test_reload(void **state)
{
    (void)state;
    const char *chunk = "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
                        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"logprobs\":null,\"finish_reason\":null}]}";
    assert_true(reload_str(chunk, "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
                                  "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\\n\"},\"logprobs\":null,\"finish_reason\":null}]}"));
    assert_true(reload_str("[1,2.5,\"a\",true,null,{}]", " [ -7 , 0.25 , \"\" , true , null , { } ] "));
    assert_true(reload_str("[0.0]", "[-0.0]"));
    /* another shape: no */
    static const char *const other[][2] = {
        {"{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"}, {"{\"a\":1}", "{\"a\":1,\"b\":2}"}, {"{\"a\":1,\"b\":2}", "{\"a\":1}"},
        {"[1,2]", "[1]"}, {"[1]", "[1,2]"}, {"[1]", "[1.0]"}, {"[1.5]", "[2]"}, {"[\"1\"]", "[1]"}, {"[true]", "[false]"},
        {"[null]", "[0]"}, {"{\"a\":[]}", "{\"a\":{}}"}, {"{\"a\":1}", "{\"a\":1,\"a\":1}"}, {"{\"a\":1}", "{\"a\":1} x"},
        {"{\"a\":1}", "{\"a\":1"}, {"[\"a\"]", "[\"\\ud800\"]"}, {"[1]", "[01]"}, {"{}", "[]"},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (reload_str(other[i][0], other[i][1]))
            fail_msg("%s read into %s", other[i][1], other[i][0]);
    /* a node another holder keeps is never changed: equal values pass, others refuse */
    json_t *v = sl_json_loadb(chunk, strlen(chunk), 0, NULL), *id = json_incref(json_object_get(v, "id"));
    json_t *choices = json_incref(json_object_get(v, "choices"));
    assert_true(reload_ok(v, chunk, strlen(chunk)));
    char *changed_id = strdup(chunk), *changed_text = strdup(chunk);
    changed_id[8] = '9';                              /* "c9" */
    *strstr(changed_text, "Hel") = 'J';               /* "Jel", under the kept choices */
    assert_false(sl_json_reload(v, changed_text, strlen(changed_text), NULL));
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(choices, 0), "delta"), "content")), "Hel");
    json_decref(v);
    v = sl_json_loadb(chunk, strlen(chunk), 0, NULL);
    json_t *id2 = json_incref(json_object_get(v, "id"));
    assert_false(sl_json_reload(v, changed_id, strlen(changed_id), NULL));
    assert_string_equal(json_string_value(id2), "c1");
    json_incref(v); /* the root itself held twice */
    assert_false(sl_json_reload(v, chunk, strlen(chunk), NULL));
    json_decref(v);
    json_decref(v);
    json_decref(id2);
    json_decref(id);
    json_decref(choices);
    free(changed_id);
    free(changed_text);

    /* mutations of the seeds: whatever is read in is what a parse makes of it */
    static const char alphabet[] = "{}[]\",:\\u0e-+.1aE \t\n\xc3\xa9";
    uint64_t x = 0x2545f4914f6cdd1dull;
    char buf[512];
    size_t yes = 0;
    for (int round = 0; round < 40000; round++) {
        const char *seed = cases[round % 10];
        size_t n = strlen(seed);
        json_t *a = sl_json_loadb(seed, n, 0, NULL);
        if (!a)
            continue;
        memcpy(buf, seed, n);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t at = (size_t)(x % n);
        buf[at] = alphabet[(x >> 32) % (sizeof alphabet - 1)];
        yes += reload_ok(a, buf, n);
        json_decref(a);
    }
    assert_true(yes > 1000);
}

static void test_dump(void **state)
{
    (void)state;
    static const double reals[] = {0.0, -0.0, 1.0, -1.5, 0.1, 1e21, 1e22, 1.5e-7, 1e-300, 123456789.0, 3.14159265358979,
                                   1.7976931348623157e308, 5e-324, 100.0, 1e100};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        json_t *a = json_pack("[f]", reals[i]);
        same_dump(a);
        json_decref(a);
    }
    char ctl[40];
    for (int c = 1; c < 0x20; c++)
        ctl[c - 1] = (char)c;
    strcpy(ctl + 31, "\\\"/\x7f");
    json_t *o = json_object();
    json_object_set_new(o, ctl, json_string(ctl));
    json_object_set_new(o, "caf\xc3\xa9", json_stringn("a\0b", 3));
    json_object_set_new(o, "n", json_integer(-9223372036854775807LL - 1));
    json_object_set_new(o, "e", json_object());
    json_object_set_new(o, "l", json_pack("[[],{},null,true,false,\"\"]"));
    same_dump(o);
    json_decref(o);
    /* a string jansson would not write (not UTF-8): both refuse */
    json_t *bad = json_pack("[o]", json_stringn_nocheck("\xff", 1));
    char *x = sl_json_dumps(bad, NULL), *y = json_dumps(bad, JSON_COMPACT);
    assert_null(y);
    assert_null(x);
    json_decref(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_dump),
        cmocka_unit_test(test_reload),
    };
    return cmocka_run_group_tests_name("json_parse", tests, NULL, NULL);
}
