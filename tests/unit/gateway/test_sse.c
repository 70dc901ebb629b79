/* SSE splitting: events come out whole whatever the TCP chunking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sse.h"

static const char stream[] =
    "data: {\"a\":1}\n\n"
    ": a comment\n\n"
    "event: x\r\ndata: line1\r\ndata: line2\r\n\r\n"
    "data: [DONE]\n\n";

static void check_events(size_t step)
{
    sl_sse s;
    assert_int_equal(sl_sse_init(&s), 0);
    const char *want[] = {"data: {\"a\":1}\n\n", ": a comment\n\n", "event: x\r\ndata: line1\r\ndata: line2\r\n\r\n",
                          "data: [DONE]\n\n"};
    size_t got = 0, len = strlen(stream);
    for (size_t off = 0; off < len; off += step) {
        size_t n = off + step > len ? len - off : step;
        sl_sse_feed(&s, stream + off, n);
        char *ev;
        size_t evlen;
        while ((ev = sl_sse_next(&s, &evlen))) {
            assert_true(got < 4);
            assert_int_equal(evlen, strlen(want[got]));
            assert_memory_equal(ev, want[got], evlen);
            free(ev);
            got++;
        }
    }
    assert_int_equal(got, 4);
    size_t rest;
    assert_null(sl_sse_rest(&s, &rest));
    sl_sse_free(&s);
}

static void whole_stream_at_once(void **state) { (void)state; check_events(strlen(stream)); }

static void byte_by_byte(void **state)
{
    (void)state;
    check_events(1);
}

static void odd_chunks(void **state)
{
    (void)state;
    for (size_t step = 2; step < 17; step++)
        check_events(step);
}

static void data_lines_joined(void **state)
{
    (void)state;
    const char ev[] = "event: x\r\ndata: line1\r\ndata:line2\r\n\r\n";
    size_t n = 0;
    char *d = sl_sse_data(ev, strlen(ev), &n);
    assert_non_null(d);
    assert_string_equal(d, "line1\nline2");
    assert_int_equal(n, 11);
    free(d);
    assert_null(sl_sse_data(": comment\n\n", 11, &n));
}

static void incomplete_tail_is_rest(void **state)
{
    (void)state;
    sl_sse s;
    sl_sse_init(&s);
    sl_sse_feed(&s, "data: 1\n\ndata: 2", 16);
    size_t n;
    char *ev = sl_sse_next(&s, &n);
    assert_non_null(ev);
    free(ev);
    assert_null(sl_sse_next(&s, &n));
    char *rest = sl_sse_rest(&s, &n);
    assert_non_null(rest);
    assert_string_equal(rest, "data: 2");
    free(rest);
    sl_sse_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_stream_at_once), cmocka_unit_test(byte_by_byte),
        cmocka_unit_test(odd_chunks), cmocka_unit_test(data_lines_joined),
        cmocka_unit_test(incomplete_tail_is_rest),
    };
    return cmocka_run_group_tests_name("sse", tests, NULL, NULL);
}
