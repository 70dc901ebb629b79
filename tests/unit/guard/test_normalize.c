/* The guard's text normaliser: what a keyword list sees, and the map back to the text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guard_int.h"

static void expect_norm(const char *in, const char *want)
{
    sl_guard_norm n = {0};
    assert_int_equal(sl_guard_normalize(&n, in, strlen(in)), 0);
    assert_string_equal(n.s, want);
    assert_int_equal(n.len, strlen(want));
    assert_int_equal(n.map[n.len], strlen(in));
    sl_guard_norm_free(&n);
}

static void test_ascii_case(void **state)
{
    (void)state;
    expect_norm("Hello WORLD 123", "hello world 123");
    expect_norm("", "");
}

static void test_full_width_and_mixed_case(void **state)
{
    (void)state;
    expect_norm("\xEF\xBC\xAC\xEF\xBD\x81\xEF\xBD\x94\xEF\xBD\x89\xEF\xBD\x8E", "latin"); /* Ｌａｔｉｎ */
    expect_norm("BaD\xEF\xBC\xB7\xEF\xBD\x8F\xEF\xBD\x92\xEF\xBC\xA4", "badword");       /* BaDＷｏｒＤ */
    expect_norm("\xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93", "123");                         /* １２３ */
    expect_norm("STRASSE Stra\xC3\x9F" "e", "strasse strasse");                         /* ß folds to ss */
}

static void test_ignorables_and_marks(void **state)
{
    (void)state;
    expect_norm("b\xE2\x80\x8B" "a\xC2\xAD" "d", "bad");               /* zero-width space, soft hyphen */
    expect_norm("cafe\xCC\x81", "caf\xC3\xA9");                        /* e + combining acute -> é */
    expect_norm("CAF\xC3\x89", "caf\xC3\xA9");                         /* É -> é */
    expect_norm("\xEF\xAC\x81" "re", "fire");                          /* ﬁ ligature */
    expect_norm("\xE4\xBD\xA0\xE5\xA5\xBD", "\xE4\xBD\xA0\xE5\xA5\xBD"); /* 你好 unchanged */
}

static void test_map_back(void **state)
{
    (void)state;
    /* "x Ｂａｄ y": the normalised "bad" maps back to the three full-width characters */
    const char *in = "x \xEF\xBC\xA2\xEF\xBD\x81\xEF\xBD\x84 y";
    sl_guard_norm n = {0};
    assert_int_equal(sl_guard_normalize(&n, in, strlen(in)), 0);
    assert_string_equal(n.s, "x bad y");
    size_t os, oe;
    sl_guard_norm_span(&n, 2, 5, &os, &oe);
    assert_int_equal(os, 2);
    assert_int_equal(oe, 11);
    /* a match inside the ligature ﬁ covers the whole character */
    const char *lig = "a\xEF\xAC\x81" "b";
    assert_int_equal(sl_guard_normalize(&n, lig, strlen(lig)), 0);
    assert_string_equal(n.s, "afib");
    sl_guard_norm_span(&n, 1, 2, &os, &oe); /* "f" */
    assert_int_equal(os, 1);
    assert_int_equal(oe, 4);
    sl_guard_norm_free(&n);
}

static void test_invalid_utf8_passes(void **state)
{
    (void)state;
    const char in[] = "A\xFF" "B";
    sl_guard_norm n = {0};
    assert_int_equal(sl_guard_normalize(&n, in, 3), 0);
    assert_int_equal(n.len, 3);
    assert_memory_equal(n.s, "a\xFF" "b", 3);
    assert_true(n.raw); /* the regexes check it themselves */
    /* valid text, of every path the normaliser takes, is known to stay UTF-8 */
    const char *valid[] = {"plain ASCII", "\xEF\xBC\xA2\xEF\xBD\x81", "e\xCC\x81t\xC3\xA9", "\xE4\xB8\xAD\xE6\x96\x87",
                           "b\xE2\x80\x8B" "ad", ""};
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        assert_int_equal(sl_guard_normalize(&n, valid[i], strlen(valid[i])), 0);
        assert_false(n.raw);
    }
    sl_guard_norm_free(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii_case),
        cmocka_unit_test(test_full_width_and_mixed_case),
        cmocka_unit_test(test_ignorables_and_marks),
        cmocka_unit_test(test_map_back),
        cmocka_unit_test(test_invalid_utf8_passes),
    };
    return cmocka_run_group_tests_name("guard_normalize", tests, NULL, NULL);
}
