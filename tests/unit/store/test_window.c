/* Quota windows from wall-clock UTC: ids and where each window ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "store.h"

/* 2026-12-31T23:59:59Z and one second later */
#define NYE 1798761599
#define NY  1798761600

static void windows_roll_over_at_utc_boundaries(void **state)
{
    assert_int_equal(sl_window_id(SL_WINDOW_MINUTE, NYE) + 1, sl_window_id(SL_WINDOW_MINUTE, NY));
    assert_int_equal(sl_window_id(SL_WINDOW_HOUR, NYE) + 1, sl_window_id(SL_WINDOW_HOUR, NY));
    assert_int_equal(sl_window_id(SL_WINDOW_DAY, NYE) + 1, sl_window_id(SL_WINDOW_DAY, NY));
    assert_int_equal(sl_window_id(SL_WINDOW_MONTH, NYE), 2026 * 12 + 11);
    assert_int_equal(sl_window_id(SL_WINDOW_MONTH, NY), 2027 * 12 + 0);
    assert_int_equal(sl_window_id(SL_WINDOW_TOTAL, NYE), sl_window_id(SL_WINDOW_TOTAL, NY));
    for (int w = SL_WINDOW_MINUTE; w <= SL_WINDOW_MONTH; w++)
        assert_int_equal(sl_window_end((sl_window)w, sl_window_id((sl_window)w, NYE)), NY);
    assert_int_equal(sl_window_end(SL_WINDOW_TOTAL, 0), 0);
}

static void months_have_their_lengths(void **state)
{
    /* 2028-02-01T00:00:00Z: February of a leap year ends 29 days later */
    time_t feb = 1832976000;
    int64_t id = sl_window_id(SL_WINDOW_MONTH, feb);
    assert_int_equal(id, 2028 * 12 + 1);
    assert_int_equal(sl_window_end(SL_WINDOW_MONTH, id) - feb, 29 * 86400);
    assert_int_equal(sl_window_id(SL_WINDOW_MONTH, feb - 1), 2028 * 12 + 0);
}

/* The month id is arithmetic: it agrees with gmtime_r on both sides of every month's first
 * second from 1900 to 2199, and at steps through the years around them. */
static void month_ids_agree_with_gmtime(void **state)
{
    (void)state;
    for (int y = 1900; y < 2200; y++)
        for (int m = 0; m < 12; m++) {
            struct tm first = {.tm_year = y - 1900, .tm_mon = m, .tm_mday = 1};
            time_t t = timegm(&first);
            assert_int_equal(sl_window_id(SL_WINDOW_MONTH, t), (int64_t)y * 12 + m);
            assert_int_equal(sl_window_id(SL_WINDOW_MONTH, t - 1), (int64_t)y * 12 + m - 1);
        }
    for (int64_t t = -4000000000LL; t < 8000000000LL; t += 86399 * 7 + 13) {
        time_t x = (time_t)t;
        struct tm tm;
        gmtime_r(&x, &tm);
        assert_int_equal(sl_window_id(SL_WINDOW_MONTH, x), (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon);
    }
}

/* A month window ends where timegm puts the next month's first second, 1600 to 2399. */
static void month_ends_agree_with_timegm(void **state)
{
    (void)state;
    for (int64_t id = 1600 * 12 - 1; id < 2400 * 12; id++) {
        struct tm next = {.tm_year = (int)((id + 1) / 12) - 1900, .tm_mon = (int)((id + 1) % 12), .tm_mday = 1};
        assert_int_equal(sl_window_end(SL_WINDOW_MONTH, id), (int64_t)timegm(&next));
    }
}

static void window_names_parse(void **state)
{
    sl_window w;
    const char *names[] = {"minute", "hour", "day", "month", "total"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sl_window_parse(names[i], &w), 0);
        assert_int_equal(w, i);
        assert_string_equal(sl_window_name(w), names[i]);
    }
    assert_int_equal(sl_window_parse("week", &w), -1);
    assert_int_equal(sl_window_parse(NULL, &w), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(windows_roll_over_at_utc_boundaries),
        cmocka_unit_test(months_have_their_lengths),
        cmocka_unit_test(month_ids_agree_with_gmtime),
        cmocka_unit_test(month_ends_agree_with_timegm),
        cmocka_unit_test(window_names_parse),
    };
    return cmocka_run_group_tests_name("store_window", tests, NULL, NULL);
}
