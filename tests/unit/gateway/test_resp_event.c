/* sl_resp_event_set_string: whether it splices into the event's text or not, the text
 * that goes out is what serialising the edited json gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "json_dump.h"
#include "json_parse.h"
#include "event_memo.h"
#include "json_view.h"
#include "plugin.h"

/* Parse text as the gateway does, run the edits (holder path "choices/<i>/delta" or
 * "choices/<i>"; key; new value), check the event's text against a fresh dump. Returns
 * whether the last edit spliced (the text was there before any dump). */
typedef struct edit {
    int choice;
    bool delta;
    const char *key;
    const char *value;
    size_t len; /* 0: strlen */
} edit;

static bool run(const char *text, const edit *edits, size_t n)
{
    bool compact = false;
    json_t *j = sl_json_loadb_compact(text, strlen(text), 0, NULL, &compact);
    assert_non_null(j);
    sl_resp_event ev = {.json = j, .stream = true, .status = 200, .text = text, .text_len = strlen(text),
                        .compact = compact};
    for (size_t i = 0; i < n; i++) {
        json_t *ch = json_array_get(json_object_get(j, "choices"), (size_t)edits[i].choice);
        json_t *holder = edits[i].delta ? json_object_get(ch, "delta") : ch;
        assert_non_null(holder);
        size_t len = edits[i].len ? edits[i].len : strlen(edits[i].value);
        sl_resp_event_set_string(&ev, holder, edits[i].key, edits[i].value, len);
        assert_true(ev.edited);
    }
    bool spliced = ev.out != NULL;
    size_t got_len = 0;
    const char *got = sl_resp_event_text(&ev, &got_len);
    size_t want_len = 0;
    char *want = sl_json_dumps(j, &want_len);
    if (!want) {
        assert_null(got);
    } else {
        assert_non_null(got);
        if (got_len != want_len || memcmp(got, want, want_len) != 0)
            fail_msg("%s: got %.*s, want %s", text, (int)got_len, got, want);
    }
    free(want);
    free(ev.out);
    json_decref(ev.json);
    return spliced;
}

/* The edited view has the tokens a fresh read of its text gives. */
static void same_as_read_again(const sl_jview *v)
{
    sl_jview fresh = {0};
    assert_int_equal(sl_jview_read(&fresh, v->text, v->len), 0);
    assert_int_equal(fresh.n, v->n);
    for (uint32_t j = 0; j < v->n; j++) {
        const sl_jv_tok *a = &v->tok[j], *b = &fresh.tok[j];
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->start, b->start);
        assert_int_equal(a->end, b->end);
        assert_int_equal(a->next, b->next);
        assert_int_equal(a->size, b->size);
    }
    sl_jview_free(&fresh);
}

#define CHUNK(c) "{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"choices\":[" c "]}"

/* The summary holds what looking each member up gives, and follows the view's edits. */
static void test_summary(void **state)
{
    (void)state;
    sl_jview view = {0};
    sl_resp_summary sum = {0};
    const char *text = CHUNK("{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\",\"reasoning_content\":\"r\"},"
                             "\"finish_reason\":null},"
                             "{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]},\"index\":3,"
                             "\"finish_reason\":\"stop\"},"
                             "{\"index\":\"x\",\"message\":{\"content\":\"m\"}},{\"text\":\"t\"},7");
    sl_resp_event ev = {.stream = true, .status = 200, .text = text, .text_len = strlen(text), .view = &view,
                        .summary = &sum};
    const sl_resp_summary *s = sl_resp_event_summary(&ev);
    assert_non_null(s);
    const sl_jview *v = sl_resp_event_view(&ev);
    assert_int_equal(s->choices, sl_jview_get(v, 0, "choices"));
    assert_int_equal(s->usage, -1);
    assert_int_equal(s->error, -1);
    assert_int_equal(s->n, 5);
    for (size_t i = 0; i < s->n; i++) {
        const sl_resp_choice *c = &s->c[i];
        int tok = sl_jview_item(v, s->choices, i);
        assert_int_equal(c->tok, tok);
        assert_int_equal(c->finish_reason, sl_jview_get(v, tok, "finish_reason"));
        assert_int_equal(c->delta, sl_jview_get(v, tok, "delta"));
        assert_int_equal(c->message, sl_jview_get(v, tok, "message"));
        assert_int_equal(c->text, sl_jview_get(v, tok, "text"));
        int holder = c->delta >= 0 ? c->delta : c->message;
        assert_int_equal(c->content, sl_jview_get(v, holder, "content"));
        assert_int_equal(c->reasoning_content, sl_jview_get(v, holder, "reasoning_content"));
        assert_int_equal(c->tool_calls, sl_jview_get(v, holder, "tool_calls"));
    }
    assert_int_equal(s->c[0].index, 0);
    assert_int_equal(s->c[1].index, 3);
    assert_int_equal(s->c[2].index, 2); /* not an integer: its place */
    assert_int_equal(s->c[3].index, 3);
    assert_int_equal(s->c[4].content, -1); /* not an object */

    /* a string replaced: the tokens stay, and so does the summary */
    assert_int_equal(sl_resp_event_view_set_string(&ev, s->c[0].content, "Hello there", 11), 0);
    assert_ptr_equal(sl_resp_event_summary(&ev), s);
    size_t n = 0;
    const char *got = sl_jview_str(sl_resp_event_view(&ev), s->c[0].content, &n);
    assert_int_equal(n, 11);
    assert_memory_equal(got, "Hello there", 11);
    same_as_read_again(sl_resp_event_view(&ev));
    assert_int_equal(sl_resp_event_view_set_string(&ev, s->c[0].reasoning_content, "", 0), 0); /* shorter */
    same_as_read_again(sl_resp_event_view(&ev));
    assert_int_equal(sl_resp_event_view_set_string(&ev, s->c[3].text, "a \"quoted\"\n line", 16), 0); /* escaped */
    same_as_read_again(sl_resp_event_view(&ev));
    got = sl_jview_str(sl_resp_event_view(&ev), s->c[3].text, &n);
    assert_int_equal(n, 16);
    assert_memory_equal(got, "a \"quoted\"\n line", 16);
    /* a member added: the view is read again, and the summary with it */
    assert_int_equal(sl_resp_event_view_add_string(&ev, s->c[3].tok, "extra", "e", 1), 0);
    s = sl_resp_event_summary(&ev);
    v = sl_resp_event_view(&ev);
    assert_int_equal(s->n, 5);
    assert_int_equal(s->c[4].tok, sl_jview_item(v, s->choices, 4));
    assert_int_equal(s->c[3].text, sl_jview_get(v, s->c[3].tok, "text"));
    same_as_read_again(v);

    /* usage and error at the top; not an object at the top: no summary */
    const char *u = "{\"error\":{},\"choices\":{},\"usage\":{\"completion_tokens\":3}}";
    sl_resp_event e2 = {.stream = true, .status = 200, .text = u, .text_len = strlen(u), .view = &view, .summary = &sum};
    s = sl_resp_event_summary(&e2);
    assert_non_null(s);
    assert_true(s->usage >= 0 && s->error >= 0);
    assert_int_equal(s->choices, -1); /* not an array */
    assert_int_equal(s->n, 0);
    sl_resp_event e3 = {.stream = true, .status = 200, .text = "[1]", .text_len = 3, .view = &view, .summary = &sum};
    assert_null(sl_resp_event_summary(&e3));
    free(ev.out);
    free(sum.c);
    sl_jview_free(&view);
}

/* A stream's events read through the exchange's memo, each against the one before (as the
 * hooks left it): the summary is always the one a fresh read gives, whether the event
 * differs in a value (the tokens moved, the summary kept), a key, a literal or its shape. */
static void test_memo(void **state)
{
    (void)state;
    static const char *const stream[] = {
        CHUNK("{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}"),
        CHUNK("{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}"),
        CHUNK("{\"index\":0,\"delta\":{\"content\":\" there\\n\"},\"finish_reason\":null}"),
        CHUNK("{\"index\":0,\"delta\":{\"contenx\":\" there\\n\"},\"finish_reason\":null}"),  /* a key */
        CHUNK("{\"index\":0,\"delta\":{\"content\":\"\xc3\xa9\"},\"finish_reason\":null}"),
        CHUNK("{\"index\":1,\"delta\":{\"content\":\"\xc3\xa9\"},\"finish_reason\":null}"),      /* a number */
        CHUNK("{\"index\":1,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"length\"}"),
        CHUNK("{\"index\":1,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}"),         /* a value */
        "{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"choices\":[{\"index\":1,\"delta\":{},"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"total_tokens\":3}}",
        CHUNK("{\"index\":1,\"delta\":{\"content\":\"y\"},\"finish_reason\":null}"),
        CHUNK("{\"index\":1,\"delta\":{\"content\":\"z\"},\"finish_reason\":null}"),
    };
    sl_event_memo *m = sl_event_memo_new();
    assert_non_null(m);
    sl_jview fresh_view = {0};
    sl_resp_summary fresh_sum = {0};
    for (int pass = 0; pass < 2; pass++) { /* the second time, each event's content rewritten too */
        for (size_t e = 0; e < sizeof stream / sizeof stream[0]; e++) {
            char *text = strdup(stream[e]); /* freed before the next: the memo keeps its own copy */
            sl_resp_event ev = {.stream = true, .status = 200, .text = text, .text_len = strlen(text)};
            sl_event_memo_lend(m, &ev);
            const sl_resp_summary *s = sl_resp_event_summary(&ev);
            sl_resp_event fe = {.stream = true, .status = 200, .text = text, .text_len = strlen(text),
                                .view = &fresh_view, .summary = &fresh_sum};
            const sl_resp_summary *f = sl_resp_event_summary(&fe);
            assert_non_null(s);
            assert_non_null(f);
            assert_int_equal(s->choices, f->choices);
            assert_int_equal(s->usage, f->usage);
            assert_int_equal(s->n, f->n);
            for (size_t i = 0; i < s->n; i++)
                if (memcmp(&s->c[i], &f->c[i], sizeof s->c[i]) != 0)
                    fail_msg("event %zu, pass %d: choice %zu differs from a fresh read", e, pass, i);
            if (pass == 1 && s->n && s->c[0].content >= 0)
                assert_int_equal(sl_resp_event_view_set_string(&ev, s->c[0].content, "held \"back\"", 11), 0);
            sl_event_memo_keep(m, &ev);
            free(ev.out);
            free(text);
            if (pass == 1 && s->n && s->c[0].content >= 0)
                same_as_read_again(&m->view);
        }
    }
    sl_jview_free(&fresh_view);
    free(fresh_sum.c);
    sl_event_memo_free(m);
}

static void test_splices(void **state)
{
    (void)state;
    edit one = {0, true, "content", "Hel"};
    assert_true(run(CHUNK("{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}"), &one, 1));
    /* to an empty string, from one, with escapes and UTF-8 in the new one */
    edit empty = {0, true, "content", ""};
    assert_true(run(CHUNK("{\"index\":0,\"delta\":{\"content\":\"Hello\"}}"), &empty, 1));
    assert_true(run(CHUNK("{\"index\":0,\"delta\":{\"content\":\"\"}}"), &one, 1));
    edit esc = {0, true, "content", "a\"b\\c\n\x01 \xc3\xa9 /"};
    assert_true(run(CHUNK("{\"index\":0,\"delta\":{\"content\":\"Hello\"}}"), &esc, 1));
    /* two choices, one after the other: the second splices into the first's text */
    edit two[] = {{0, true, "content", "A"}, {1, true, "content", "B"}};
    assert_true(run(CHUNK("{\"index\":0,\"delta\":{\"content\":\"x\"}},{\"index\":1,\"delta\":{\"content\":\"y\"}}"),
                    two, 2));
    /* into an empty delta (the finish chunk, given text held back): the one "{}" */
    assert_true(run(CHUNK("{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}"), &esc, 1));
    /* completions: the choice holds text */
    edit text = {0, false, "text", "ok"};
    assert_true(run("{\"choices\":[{\"text\":\"okay\",\"index\":0}]}", &text, 1));
}

static void test_falls_back(void **state)
{
    (void)state;
    edit one = {0, true, "content", "Hel"};
    /* not compact: white space, an escape, a real */
    assert_false(run(CHUNK("{\"index\":0, \"delta\":{\"content\":\"Hello\"}}"), &one, 1));
    assert_false(run(CHUNK("{\"index\":0,\"delta\":{\"content\":\"Hel\\u006co\"}}"), &one, 1));
    assert_false(run("{\"t\":1.5,\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}", &one, 1));
    /* "content":"Hello" twice (two choices alike, or inside another member) */
    assert_false(run(CHUNK("{\"index\":0,\"delta\":{\"content\":\"Hello\"}},{\"index\":1,\"delta\":{\"content\":\"Hello\"}}"),
                     &one, 1));
    assert_false(run("{\"choices\":[{\"delta\":{\"content\":\"Hello\"}}],\"x\":{\"content\":\"Hello\"}}", &one, 1));
    /* an empty holder, but "{}" twice (another empty object, or in a string) */
    assert_false(run(CHUNK("{\"index\":0,\"delta\":{},\"x\":{}}"), &one, 1));
    assert_false(run(CHUNK("{\"index\":0,\"delta\":{},\"x\":\"{}\"}"), &one, 1));
    /* the key held no string */
    assert_false(run(CHUNK("{\"index\":0,\"delta\":{\"role\":\"assistant\"}}"), &one, 1));
    assert_false(run(CHUNK("{\"index\":0,\"delta\":{\"content\":null}}"), &one, 1));
    /* a new string that is not UTF-8: no text, as the dump gives none */
    edit bad = {0, true, "content", "\xff", 1};
    assert_false(run(CHUNK("{\"index\":0,\"delta\":{\"content\":\"Hello\"}}"), &bad, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splices),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_memo),
        cmocka_unit_test(test_falls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
