/* Stop strings over streamed text: the client never sees a stop string, and text that might
 * begin one waits until it cannot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "stop.h"

typedef struct run {
    char seen[1024];     /* everything emitted so far */
    size_t n;
} run;

static size_t push(sl_stop *s, run *r, const char *text)
{
    char out[512];
    size_t k = sl_stop_push(s, text, strlen(text), out);
    assert_true(k != (size_t)-1);
    memcpy(r->seen + r->n, out, k);
    r->n += k;
    r->seen[r->n] = '\0';
    return k;
}

static void flush(sl_stop *s, run *r)
{
    char out[512];
    size_t k = sl_stop_flush(s, out);
    memcpy(r->seen + r->n, out, k);
    r->n += k;
    r->seen[r->n] = '\0';
}

static void no_stops_passes_through(void **state)
{
    sl_stop s;
    run r = {0};
    assert_int_equal(sl_stop_init(&s, NULL, 0), 0);
    assert_int_equal(push(&s, &r, "hello "), 6);
    push(&s, &r, "world");
    flush(&s, &r);
    assert_string_equal(r.seen, "hello world");
    assert_false(s.hit);
    sl_stop_free(&s);
}

static void stop_within_one_piece(void **state)
{
    const char *stops[] = { "END" };
    sl_stop s;
    run r = {0};
    assert_int_equal(sl_stop_init(&s, stops, 1), 0);
    push(&s, &r, "abc END def");
    assert_true(s.hit);
    assert_string_equal(r.seen, "abc ");
    assert_int_equal(push(&s, &r, "more"), 0);
    flush(&s, &r);
    assert_string_equal(r.seen, "abc ");
    sl_stop_free(&s);
}

static void stop_across_pieces_is_held_back(void **state)
{
    const char *stops[] = { "<|stop|>" };
    sl_stop s;
    run r = {0};
    assert_int_equal(sl_stop_init(&s, stops, 1), 0);
    push(&s, &r, "one <");
    assert_string_equal(r.seen, "one ");       /* "<" may start the stop string */
    push(&s, &r, "|st");
    assert_string_equal(r.seen, "one ");
    push(&s, &r, "op|> two");
    assert_true(s.hit);
    assert_string_equal(r.seen, "one ");
    sl_stop_free(&s);
}

static void false_start_is_released(void **state)
{
    const char *stops[] = { "<|stop|>" };
    sl_stop s;
    run r = {0};
    assert_int_equal(sl_stop_init(&s, stops, 1), 0);
    push(&s, &r, "a <|s");
    assert_string_equal(r.seen, "a ");
    push(&s, &r, "x");
    assert_string_equal(r.seen, "a <|sx");
    assert_false(s.hit);
    sl_stop_free(&s);
}

static void held_text_flushed_at_end(void **state)
{
    const char *stops[] = { "STOP" };
    sl_stop s;
    run r = {0};
    assert_int_equal(sl_stop_init(&s, stops, 1), 0);
    push(&s, &r, "the end ST");
    assert_string_equal(r.seen, "the end ");
    flush(&s, &r);
    assert_string_equal(r.seen, "the end ST");
    sl_stop_free(&s);
}

static void earliest_of_several_wins(void **state)
{
    const char *stops[] = { "bbb", "ab", "" };
    sl_stop s;
    run r = {0};
    assert_int_equal(sl_stop_init(&s, stops, 3), 0);
    push(&s, &r, "xxbbbab");
    assert_true(s.hit);
    assert_string_equal(r.seen, "xx");
    sl_stop_free(&s);
}

static void overlapping_prefixes(void **state)
{
    /* "aab": after "aa" arrives, the held "aa" must still allow the match. */
    const char *stops[] = { "aab" };
    sl_stop s;
    run r = {0};
    assert_int_equal(sl_stop_init(&s, stops, 1), 0);
    push(&s, &r, "xa");
    push(&s, &r, "a");
    push(&s, &r, "a");
    assert_string_equal(r.seen, "xa");
    push(&s, &r, "b!");
    assert_true(s.hit);
    assert_string_equal(r.seen, "xa");
    sl_stop_free(&s);
}

static void utf8_stop_string(void **state)
{
    const char *stops[] = { "\xE3\x80\x82" };   /* "。" */
    sl_stop s;
    run r = {0};
    assert_int_equal(sl_stop_init(&s, stops, 1), 0);
    push(&s, &r, "\xE4\xBD\xA0\xE5\xA5\xBD");      /* "你好" */
    push(&s, &r, "\xE3\x80\x82\xE5\x86\x8D");      /* "。再" */
    assert_true(s.hit);
    assert_string_equal(r.seen, "\xE4\xBD\xA0\xE5\xA5\xBD");
    sl_stop_free(&s);
}

static void one_byte_at_a_time_equals_whole(void **state)
{
    const char *stops[] = { "\n\nUser:", "###" };
    const char *text = "Answer: 42.\n\nThat is all.\n\nUser: next";
    sl_stop s;
    run r = {0};
    assert_int_equal(sl_stop_init(&s, stops, 2), 0);
    for (size_t i = 0; text[i]; i++) {
        char one[2] = { text[i], 0 };
        push(&s, &r, one);
    }
    flush(&s, &r);
    assert_true(s.hit);
    assert_string_equal(r.seen, "Answer: 42.\n\nThat is all.");
    sl_stop_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_stops_passes_through),
        cmocka_unit_test(stop_within_one_piece),
        cmocka_unit_test(stop_across_pieces_is_held_back),
        cmocka_unit_test(false_start_is_released),
        cmocka_unit_test(held_text_flushed_at_end),
        cmocka_unit_test(earliest_of_several_wins),
        cmocka_unit_test(overlapping_prefixes),
        cmocka_unit_test(utf8_stop_string),
        cmocka_unit_test(one_byte_at_a_time_equals_whole),
    };
    return cmocka_run_group_tests_name("engine_stop", tests, NULL, NULL);
}
