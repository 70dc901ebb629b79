/* The access log's JSON writer: what it writes reads back as the same values, strings stay
 * valid JSON whatever bytes they hold, and fields a plugin logged replace the fixed ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json_line.h"

/* The line as text, parsed back (the test owns both). */
static json_t *parse(sl_strbuf *b, char **text)
{
    size_t n = b->len;
    *text = malloc(n + 1);
    memcpy(*text, b->s, n);
    (*text)[n] = 0;
    free(b->s);
    *b = (sl_strbuf){0};
    json_error_t err;
    json_t *v = json_loads(*text, 0, &err);
    if (!v)
        fail_msg("not JSON: %s (%s)", *text, err.text);
    return v;
}

static void values_read_back(void **state)
{
    (void)state;
    sl_strbuf sb = {0}, *b = &sb;
    sl_jline j;
    sl_jline_open(&j, b, NULL);
    sl_jline_str(&j, "s", "plain \"quoted\" back\\slash\nnew\ttab \x01 caf\xc3\xa9 \xe2\x82\xac");
    sl_jline_str(&j, "absent", NULL);
    sl_jline_int(&j, "i", -9223372036854775807LL);
    sl_jline_int(&j, "zero", 0);
    sl_jline_ms(&j, "ms", 12.3456);
    sl_jline_ms(&j, "small", 0.0004);
    sl_jline_bool(&j, "t", true);
    json_t *arr = json_pack("[s, i, f]", "a", 1, 2.5);
    sl_jline_value(&j, "arr", arr);
    json_t *real = json_real(3.0);
    sl_jline_value(&j, "real", real);
    sl_jline_close(&j);
    assert_false(j.failed);
    char *text;
    json_t *v = parse(b, &text);
    assert_string_equal(json_string_value(json_object_get(v, "s")),
                        "plain \"quoted\" back\\slash\nnew\ttab \x01 caf\xc3\xa9 \xe2\x82\xac");
    assert_null(json_object_get(v, "absent"));
    assert_int_equal(json_integer_value(json_object_get(v, "i")), -9223372036854775807LL);
    assert_int_equal(json_integer_value(json_object_get(v, "zero")), 0);
    assert_float_equal(json_real_value(json_object_get(v, "ms")), 12.346, 1e-9);
    assert_float_equal(json_real_value(json_object_get(v, "small")), 0.0, 1e-9);
    assert_true(json_is_true(json_object_get(v, "t")));
    assert_true(json_equal(json_object_get(v, "arr"), arr));
    assert_true(json_is_real(json_object_get(v, "real")));
    free(text);
    json_decref(v);
    json_decref(arr);
    json_decref(real);
}

static void broken_utf8_still_json(void **state)
{
    (void)state;
    sl_strbuf sb = {0}, *b = &sb;
    sl_jline j;
    sl_jline_open(&j, b, NULL);
    sl_jline_str(&j, "path", "/v1/\xff\xfe/x\xc3"); /* stray bytes and a cut sequence */
    sl_jline_close(&j);
    char *text;
    json_t *v = parse(b, &text);
    assert_string_equal(json_string_value(json_object_get(v, "path")), "/v1/\xef\xbf\xbd\xef\xbf\xbd/x\xef\xbf\xbd");
    free(text);
    json_decref(v);
}

static void plugin_fields_replace_fixed_ones(void **state)
{
    (void)state;
    sl_strbuf sb = {0}, *b = &sb;
    sl_log_fields logged;
    sl_log_fields_init(&logged);
    sl_log_fields_set(&logged, "prompt_tokens", json_integer(6));
    sl_log_fields_set(&logged, "cache", json_string("hit"));
    sl_log_fields_set(&logged, "prompt_tokens", json_integer(7)); /* replaced, keeps its place */
    sl_jline j;
    sl_jline_open(&j, b, &logged);
    sl_jline_int(&j, "status", 200);
    sl_jline_int(&j, "prompt_tokens", 99); /* left out: the plugin's 7 wins */
    sl_jline_fields(&j, &logged);
    sl_jline_close(&j);
    char *text;
    json_t *v = parse(b, &text);
    assert_int_equal(json_object_size(v), 3);
    assert_int_equal(json_integer_value(json_object_get(v, "prompt_tokens")), 7);
    assert_string_equal(json_string_value(json_object_get(v, "cache")), "hit");
    assert_null(strstr(text, "99"));
    assert_non_null(strstr(text, "\"status\":200,\"prompt_tokens\":7,\"cache\":\"hit\"}"));
    free(text);
    json_decref(v);
    sl_log_fields_free(&logged);
}

/* More plugin fields than the list holds inline, keys past its inline key space, and a key
 * that needs escaping. */
static void many_plugin_fields_replace_fixed_ones(void **state)
{
    (void)state;
    sl_strbuf sb = {0}, *b = &sb;
    sl_log_fields logged;
    sl_log_fields_init(&logged);
    char k[64];
    for (int i = 0; i < 12; i++) {
        snprintf(k, sizeof k, "f%d_a_rather_long_field_name_to_fill_the_keys", i);
        sl_log_fields_set(&logged, k, json_integer(i));
    }
    sl_log_fields_set(&logged, "status", json_integer(7));
    sl_log_fields_set(&logged, "q\"uote", json_true());
    sl_log_fields_set(&logged, "f3_a_rather_long_field_name_to_fill_the_keys", json_integer(33));
    sl_log_fields_set(&logged, "ignored", NULL);
    assert_int_equal(json_integer_value(sl_log_fields_get(&logged, "f11_a_rather_long_field_name_to_fill_the_keys")), 11);
    assert_null(sl_log_fields_get(&logged, "f1"));
    sl_jline j;
    sl_jline_open(&j, b, &logged);
    sl_jline_int(&j, "status", 200); /* left out */
    sl_jline_int(&j, "bytes", 5);
    sl_jline_fields(&j, &logged);
    sl_jline_close(&j);
    char *text;
    json_t *v = parse(b, &text);
    assert_int_equal(json_object_size(v), 15);
    assert_int_equal(json_integer_value(json_object_get(v, "status")), 7);
    assert_int_equal(json_integer_value(json_object_get(v, "f11_a_rather_long_field_name_to_fill_the_keys")), 11);
    assert_int_equal(json_integer_value(json_object_get(v, "f3_a_rather_long_field_name_to_fill_the_keys")), 33);
    assert_true(json_is_true(json_object_get(v, "q\"uote")));
    assert_null(json_object_get(v, "ignored"));
    assert_null(strstr(text, "200"));
    free(text);
    json_decref(v);
    /* keys with one length and first byte share a bit: still told apart by their bytes */
    const char *long_a = "a_key_of_seventy_bytes_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const char *long_b = "a_key_of_seventy_bytes_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    sl_log_fields_set(&logged, long_a, json_integer(70));
    assert_int_equal(json_integer_value(sl_log_fields_get(&logged, long_a)), 70);
    assert_null(sl_log_fields_get(&logged, long_b));
    sl_log_fields_free(&logged);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_read_back),
        cmocka_unit_test(broken_utf8_still_json),
        cmocka_unit_test(plugin_fields_replace_fixed_ones),
        cmocka_unit_test(many_plugin_fields_replace_fixed_ones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
