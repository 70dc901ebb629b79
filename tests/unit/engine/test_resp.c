/* Response shapes: what an OpenAI client parses, whole and streamed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "resp.h"

static sl_resp_meta meta(sl_req_kind kind)
{
    sl_resp_meta m;
    sl_resp_meta_init(&m, kind, "tiny");
    return m;
}

/* Parse "data: {...}\n\n" into its JSON. */
static json_t *sse_json(char *sse)
{
    assert_non_null(sse);
    assert_memory_equal(sse, "data: ", 6);
    size_t n = strlen(sse);
    assert_true(n > 8);
    assert_string_equal(sse + n - 2, "\n\n");
    json_t *j = json_loadb(sse + 6, n - 8, 0, NULL);
    assert_non_null(j);
    free(sse);
    return j;
}

static void meta_ids(void **state)
{
    sl_resp_meta a = meta(SL_REQ_CHAT), b = meta(SL_REQ_CHAT), c = meta(SL_REQ_COMPLETION);
    assert_memory_equal(a.id, "chatcmpl-", 9);
    assert_memory_equal(c.id, "cmpl-", 5);
    assert_string_not_equal(a.id, b.id);
    assert_true(a.created > 1600000000);
}

static void full_chat(void **state)
{
    sl_resp_meta m = meta(SL_REQ_CHAT);
    char *s = sl_resp_full(&m, (sl_text){"Hi \"you\"", 8}, (sl_text){0}, "stop", (sl_usage){5, 3, 0});
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "tiny");
    assert_string_equal(json_string_value(json_object_get(j, "id")), m.id);
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    assert_int_equal(json_integer_value(json_object_get(c, "index")), 0);
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "stop");
    json_t *msg = json_object_get(c, "message");
    assert_string_equal(json_string_value(json_object_get(msg, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(msg, "content")), "Hi \"you\"");
    assert_null(json_object_get(msg, "reasoning_content"));
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 5);
    assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 3);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 8);
    /* OpenAI's shape: 0 when nothing was reused */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(u, "prompt_tokens_details"),
                                                        "cached_tokens")), 0);
    json_decref(j);
}

static void full_chat_reasoning(void **state)
{
    sl_resp_meta m = meta(SL_REQ_CHAT);
    char *s = sl_resp_full(&m, (sl_text){"42", 2}, (sl_text){"think", 5}, "length", (sl_usage){1, 2, 0});
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    json_t *msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    assert_string_equal(json_string_value(json_object_get(msg, "reasoning_content")), "think");
    assert_string_equal(json_string_value(json_object_get(msg, "content")), "42");
    json_decref(j);
}

static void full_completion(void **state)
{
    sl_resp_meta m = meta(SL_REQ_COMPLETION);
    char *s = sl_resp_full(&m, (sl_text){"abc", 3}, (sl_text){0}, "length", (sl_usage){1, 1, 0});
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "text_completion");
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "text")), "abc");
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "length");
    json_decref(j);
}

static void chunks(void **state)
{
    sl_resp_meta m = meta(SL_REQ_CHAT);
    json_t *j = sse_json(sl_resp_chunk(&m, true, (sl_text){"", 0}, (sl_text){0}, NULL));
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion.chunk");
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    assert_true(json_is_null(json_object_get(c, "finish_reason")));
    json_t *d = json_object_get(c, "delta");
    assert_string_equal(json_string_value(json_object_get(d, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(d, "content")), "");
    json_decref(j);

    j = sse_json(sl_resp_chunk(&m, false, (sl_text){"x\n", 2}, (sl_text){"r", 1}, NULL));
    d = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta");
    assert_null(json_object_get(d, "role"));
    assert_string_equal(json_string_value(json_object_get(d, "content")), "x\n");
    assert_string_equal(json_string_value(json_object_get(d, "reasoning_content")), "r");
    json_decref(j);

    j = sse_json(sl_resp_chunk(&m, false, (sl_text){0}, (sl_text){0}, "stop"));
    c = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "stop");
    assert_int_equal(json_object_size(json_object_get(c, "delta")), 0);
    json_decref(j);
}

static void usage_chunk(void **state)
{
    sl_resp_meta m = meta(SL_REQ_CHAT);
    json_t *j = sse_json(sl_resp_usage_chunk(&m, (sl_usage){7, 9, 4}));
    assert_int_equal(json_array_size(json_object_get(j, "choices")), 0);
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 16);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(u, "prompt_tokens_details"),
                                                        "cached_tokens")), 4);
    json_decref(j);
}

static void invalid_utf8_is_replaced(void **state)
{
    sl_resp_meta m = meta(SL_REQ_COMPLETION);
    json_t *j = sse_json(sl_resp_chunk(&m, false, (sl_text){"a\xFF" "b\xE2\x82", 5}, (sl_text){0}, NULL));
    const char *t = json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text"));
    assert_string_equal(t, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD");
    json_decref(j);
}

static void error_chunk_and_models(void **state)
{
    sl_api_error e;
    sl_api_error_set(&e, 500, "api_error", "engine_error", NULL, "boom");
    json_t *j = sse_json(sl_resp_error_chunk(&e));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "boom");
    json_decref(j);

    char *s = sl_resp_models("tiny", 1700000000, 128);
    j = json_loads(s, 0, NULL);
    free(s);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "list");
    json_t *d = json_array_get(json_object_get(j, "data"), 0);
    assert_string_equal(json_string_value(json_object_get(d, "id")), "tiny");
    assert_string_equal(json_string_value(json_object_get(d, "object")), "model");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(meta_ids),
        cmocka_unit_test(full_chat),
        cmocka_unit_test(full_chat_reasoning),
        cmocka_unit_test(full_completion),
        cmocka_unit_test(chunks),
        cmocka_unit_test(usage_chunk),
        cmocka_unit_test(invalid_utf8_is_replaced),
        cmocka_unit_test(error_chunk_and_models),
    };
    return cmocka_run_group_tests_name("engine_resp", tests, NULL, NULL);
}
