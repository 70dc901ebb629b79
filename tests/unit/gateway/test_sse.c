/* SSE splitting: events come out whole whatever the TCP chunking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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

/* The byte-at-a-time forms the splitter had: the events and data of random streams of
 * line ends and a few letters, fed in random pieces, are theirs. */
static size_t ref_end(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            if (i + 1 < n && p[i + 1] == '\n')
                return i + 2;
            if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
                return i + 3;
        } else if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\r') {
            return i + 2;
        }
    }
    return 0;
}

static size_t ref_data(const char *ev, size_t len, char *out)
{
    size_t n = 0;
    bool any = false;
    const char *p = ev, *end = ev + len;
    while (p < end) {
        const char *eol = p;
        while (eol < end && *eol != '\n' && *eol != '\r')
            eol++;
        if (eol - p >= 5 && memcmp(p, "data:", 5) == 0) {
            const char *v = p + 5;
            if (v < eol && *v == ' ')
                v++;
            if (any)
                out[n++] = '\n';
            memcpy(out + n, v, (size_t)(eol - v));
            n += (size_t)(eol - v);
            any = true;
        }
        p = eol;
        if (p < end && *p == '\r')
            p++;
        if (p < end && *p == '\n')
            p++;
    }
    return any ? n : (size_t)-1;
}

static void same_as_byte_at_a_time(void **state)
{
    (void)state;
    static const char alphabet[] = "\n\n\r\r\ndata: x{}";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char buf[200], ref[200];
    for (int round = 0; round < 20000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = (size_t)(x % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = alphabet[(x >> 20) % (sizeof alphabet - 1)];
        }
        sl_sse s;
        assert_int_equal(sl_sse_init(&s), 0);
        size_t off = 0, ref_off = 0;
        while (off < len) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t step = 1 + (size_t)(x % 40);
            if (step > len - off)
                step = len - off;
            sl_sse_feed(&s, buf + off, step);
            off += step;
            char *ev;
            size_t n;
            while ((ev = sl_sse_next(&s, &n))) {
                size_t want = ref_end((const unsigned char *)buf + ref_off, off - ref_off);
                assert_int_equal(n, want);
                assert_memory_equal(ev, buf + ref_off, n);
                size_t dn = 0, rn = ref_data(ev, n, ref);
                char *d = sl_sse_data(ev, n, &dn);
                if (rn == (size_t)-1) {
                    assert_null(d);
                } else {
                    assert_non_null(d);
                    assert_int_equal(dn, rn);
                    assert_memory_equal(d, ref, rn);
                }
                /* the same without a copy: inside the event unless joined */
                char *joined = NULL;
                size_t rdn = 0;
                const char *r = sl_sse_data_ref(ev, n, &rdn, &joined);
                assert_true(!r == !d);
                if (r) {
                    assert_int_equal(rdn, dn);
                    assert_memory_equal(r, d, dn);
                    assert_true(joined ? r == joined : r >= ev && r + rdn <= ev + n);
                }
                free(joined);
                /* and knowing the lines from the take (one line: nothing read again) */
                joined = NULL;
                rdn = 0;
                r = sl_sse_data_of(&s, ev, n, &rdn, &joined);
                assert_true(!r == !d);
                if (r) {
                    assert_int_equal(rdn, dn);
                    assert_memory_equal(r, d, dn);
                }
                free(joined);
                free(d);
                free(ev);
                ref_off += n;
            }
            assert_int_equal(ref_end((const unsigned char *)buf + ref_off, off - ref_off), 0);
        }
        sl_sse_free(&s);
    }
}

/* The usual event is one line, known as such from the take; split over reads, it is not. */
static void one_line_events(void **state)
{
    (void)state;
    sl_sse s;
    assert_int_equal(sl_sse_init(&s), 0);
    const char *stream = "data: {\"a\":1}\n\ndata:x\r\n\r\ndata: y\ndata: z\n\n: note\ndata: w\n\n";
    sl_sse_feed(&s, stream, strlen(stream));
    static const char *const want[] = {"{\"a\":1}", "x", "y\nz", "w"};
    static const bool one[] = {true, false, false, false};
    for (int k = 0; k < 4; k++) {
        size_t n = 0, dn = 0;
        const char *ev = sl_sse_take(&s, &n);
        assert_non_null(ev);
        assert_int_equal(s.one_line, one[k]);
        char *joined = NULL;
        const char *d = sl_sse_data_of(&s, ev, n, &dn, &joined);
        assert_int_equal(dn, strlen(want[k]));
        assert_memory_equal(d, want[k], dn);
        free(joined);
    }
    sl_sse_feed(&s, "data: spl", 9); /* the end looked for again from where it stopped */
    size_t n;
    assert_null(sl_sse_take(&s, &n));
    sl_sse_feed(&s, "it\n\n", 4);
    assert_non_null(sl_sse_take(&s, &n));
    assert_false(s.one_line);
    sl_sse_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_stream_at_once), cmocka_unit_test(byte_by_byte),
        cmocka_unit_test(odd_chunks), cmocka_unit_test(data_lines_joined),
        cmocka_unit_test(incomplete_tail_is_rest), cmocka_unit_test(same_as_byte_at_a_time),
        cmocka_unit_test(one_line_events),
    };
    return cmocka_run_group_tests_name("sse", tests, NULL, NULL);
}
