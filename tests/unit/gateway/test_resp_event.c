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

#define CHUNK(c) "{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"choices\":[" c "]}"

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
        cmocka_unit_test(test_falls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
