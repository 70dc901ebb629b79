/* sl_json_plain_run, whatever path it takes (sixteen bytes a step, four, one): the same
 * answer as the byte table for every stop byte at every place in strings of 0-70 bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "json_plain.h"

static size_t by_table(const char *s, size_t len, bool non_ascii)
{
    unsigned char ok = non_ascii ? 3 : 1;
    size_t i = 0;
    while (i < len && (sl_json_plain_class[(unsigned char)s[i]] & ok))
        i++;
    return i;
}

static void test_every_byte_at_every_place(void **state)
{
    (void)state;
    char s[72];
    for (size_t len = 0; len <= 70; len++) {
        for (size_t at = 0; at <= len; at++) {
            for (int b = 0; b < 256; b++) {
                memset(s, 'a', sizeof s);
                if (at < len)
                    s[at] = (char)b;
                for (int mode = 0; mode < 2; mode++)
                    assert_int_equal(sl_json_plain_run(s, len, mode), by_table(s, len, mode));
            }
        }
    }
}

static void test_stops_at_the_first(void **state)
{
    (void)state;
    const char *s = "plain text that runs a while \xc3\xa9 then \"quote\" and \\ and \x01";
    size_t len = strlen(s);
    assert_int_equal(sl_json_plain_run(s, len, false), 29);               /* the é */
    assert_int_equal(sl_json_plain_run(s, len, true), 37);                /* the quote */
    assert_int_equal(sl_json_plain_run(s + 38, len - 38, true), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte_at_every_place),
        cmocka_unit_test(test_stops_at_the_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
