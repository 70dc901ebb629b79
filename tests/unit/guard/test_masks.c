/* Masks: what each built-in replaces, and what it must leave alone (checksum failures). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guard_int.h"

/* Masks `in` with the named built-ins (NULL-terminated) and checks the result. */
static void expect_masked(const char *const *names, const char *in, const char *want)
{
    sl_guard_mask m[8];
    size_t n = 0;
    sl_err err = {{0}};
    for (; names[n]; n++) {
        int k = sl_guard_mask_kind_parse(names[n]);
        assert_true(k >= 0);
        assert_int_equal(sl_guard_mask_init(&m[n], (sl_guard_mask_kind)k, NULL, NULL, &err), 0);
    }
    sl_guard_norm norm = {0};
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    assert_int_equal(sl_guard_normalize(&norm, in, strlen(in)), 0);
    char *out = NULL;
    size_t out_len = 0;
    int k = sl_guard_masks_apply(m, n, in, strlen(in), &norm, md, &out, &out_len);
    assert_true(k >= 0);
    if (k == 0)
        assert_string_equal(in, want);
    else {
        assert_string_equal(out, want);
        assert_int_equal(out_len, strlen(want));
    }
    free(out);
    pcre2_match_data_free(md);
    sl_guard_norm_free(&norm);
    for (size_t i = 0; i < n; i++)
        sl_guard_mask_free(&m[i]);
}

#define MASK(in, want, ...) expect_masked((const char *const[]){__VA_ARGS__, NULL}, in, want)

static void test_email(void **state)
{
    (void)state;
    MASK("write to Jane.Doe+x@Example.co.uk today", "write to [EMAIL] today", "email");
    MASK("a@b.c and x@y.org", "a@b.c and [EMAIL]", "email"); /* TLD of one letter: no */
    MASK("no at sign here", "no at sign here", "email");
    /* full-width letters normalise, and the whole original span is replaced */
    MASK("mail \xEF\xBD\x81\xEF\xBC\xA0\xEF\xBD\x82.com", "mail [EMAIL]", "email");
}

static void test_phone(void **state)
{
    (void)state;
    MASK("call +1 415-555-0100 now", "call [PHONE] now", "phone");
    MASK("call (415) 555 0100", "call [PHONE]", "phone");
    MASK("room 12 floor 3", "room 12 floor 3", "phone"); /* too few digits */
    MASK("year 2024", "year 2024", "phone");
}

static void test_cn_mobile(void **state)
{
    (void)state;
    MASK("\xE6\x89\x8B\xE6\x9C\xBA" "13812345678", "\xE6\x89\x8B\xE6\x9C\xBA[PHONE]", "cn_mobile"); /* 手机 */
    MASK("+86 138-1234-5678.", "[PHONE].", "cn_mobile");
    MASK("12812345678", "12812345678", "cn_mobile");   /* 12x is no mobile prefix */
    MASK("138123456789", "138123456789", "cn_mobile"); /* twelve digits */
    /* full-width digits */
    MASK("\xEF\xBC\x91\xEF\xBC\x93\xEF\xBC\x98" "12345678", "[PHONE]", "cn_mobile");
}

static void test_cn_id(void **state)
{
    (void)state;
    MASK("ID 11010519491231002X ok", "ID [ID] ok", "cn_id");
    MASK("ID 11010519491231002x ok", "ID [ID] ok", "cn_id");
    MASK("id:440524188001010014", "id:[ID]", "cn_id");
    /* a wrong check character is not an ID number */
    MASK("ID 110105194912310021 ok", "ID 110105194912310021 ok", "cn_id");
    MASK("ID 440524188001010015", "ID 440524188001010015", "cn_id");
    assert_true(sl_guard_cn_id_ok("110105198001010024"));
    assert_false(sl_guard_cn_id_ok("110105198001010025"));
}

static void test_card(void **state)
{
    (void)state;
    MASK("card 4111 1111 1111 1111 exp", "card [CARD] exp", "card");
    MASK("card 4111-1111-1111-1111", "card [CARD]", "card");
    MASK("card 5500000000000004.", "card [CARD].", "card");
    /* Luhn failures stay */
    MASK("card 4111 1111 1111 1112", "card 4111 1111 1111 1112", "card");
    MASK("order 1234567890123", "order 1234567890123", "card");
    assert_true(sl_guard_luhn_ok("79927398713", 11) == false); /* valid Luhn but too short for a card */
    assert_true(sl_guard_luhn_ok("4111111111111111", 16));
    assert_false(sl_guard_luhn_ok("4111111111111121", 16));
}

static void test_overlaps_and_order(void **state)
{
    (void)state;
    /* a card number is also 16 digits of "phone": the checksummed mask wins */
    MASK("pay 4111 1111 1111 1111", "pay [CARD]", "phone", "card");
    MASK("id 11010519491231002X, tel 13812345678, mail a@b.io", "id [ID], tel [PHONE], mail [EMAIL]", "email",
         "cn_mobile", "cn_id", "card", "phone");
}

static void test_custom_regex(void **state)
{
    (void)state;
    sl_guard_mask m;
    sl_err err = {{0}};
    assert_int_equal(sl_guard_mask_init(&m, SL_GUARD_MASK_REGEX, "project-[a-z]+", "[PROJECT]", &err), 0);
    const char *in = "see PROJECT-Falcon and project-owl";
    sl_guard_norm norm = {0};
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    assert_int_equal(sl_guard_normalize(&norm, in, strlen(in)), 0);
    char *out;
    size_t out_len;
    assert_int_equal(sl_guard_masks_apply(&m, 1, in, strlen(in), &norm, md, &out, &out_len), 2);
    assert_string_equal(out, "see [PROJECT] and [PROJECT]");
    free(out);
    sl_guard_mask_free(&m);
    assert_int_equal(sl_guard_mask_init(&m, SL_GUARD_MASK_REGEX, "(unclosed", "x", &err), -1);
    assert_non_null(strstr(err.msg, "missing closing parenthesis"));
    pcre2_match_data_free(md);
    sl_guard_norm_free(&norm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_phone),
        cmocka_unit_test(test_cn_mobile),
        cmocka_unit_test(test_cn_id),
        cmocka_unit_test(test_card),
        cmocka_unit_test(test_overlaps_and_order),
        cmocka_unit_test(test_custom_regex),
    };
    return cmocka_run_group_tests_name("guard_masks", tests, NULL, NULL);
}
