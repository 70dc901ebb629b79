/* Request parsing and validation: what a client gets back for good and bad bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "request.h"

static int parse(sl_req_kind kind, const char *body, sl_request *r, sl_api_error *e)
{
    return sl_request_parse(kind, body, strlen(body), r, e);
}

static void expect_bad(sl_req_kind kind, const char *body, const char *param)
{
    sl_request r;
    sl_api_error e = {0};
    assert_int_equal(parse(kind, body, &r, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.type, "invalid_request_error");
    assert_string_equal(e.param, param);
    assert_null(r.root);
}

static void chat_defaults(void **state)
{
    sl_request r;
    sl_api_error e = {0};
    assert_int_equal(parse(SL_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r, &e), 0);
    assert_string_equal(r.model, "m");
    assert_int_equal(json_array_size(r.messages), 1);
    assert_int_equal(r.max_tokens, -1);
    assert_true(r.sampling.temperature == 1.0f);
    assert_true(r.sampling.top_p == 1.0f);
    assert_int_equal(r.sampling.top_k, 0);
    assert_false(r.sampling.has_seed);
    assert_false(r.stream);
    assert_int_equal(r.n_stop, 0);
    sl_request_clear(&r);
}

static void chat_every_field(void **state)
{
    sl_request r;
    sl_api_error e = {0};
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"max_completion_tokens\":7,\"temperature\":0,\"top_p\":0.5,\"top_k\":40,\"seed\":-3,"
        "\"stop\":[\"END\",\"\",\"\\n\\n\"],\"presence_penalty\":0.5,\"frequency_penalty\":-1,"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1,\"user\":\"x\"}";
    assert_int_equal(parse(SL_REQ_CHAT, body, &r, &e), 0);
    assert_int_equal(r.max_tokens, 7);
    assert_true(r.sampling.temperature == 0.0f);
    assert_true(r.sampling.top_p == 0.5f);
    assert_int_equal(r.sampling.top_k, 40);
    assert_true(r.sampling.has_seed);
    assert_true(r.sampling.seed == (uint64_t)-3);
    assert_true(r.sampling.presence_penalty == 0.5f);
    assert_true(r.sampling.frequency_penalty == -1.0f);
    assert_int_equal(r.n_stop, 2);   /* the empty stop string is ignored */
    assert_string_equal(r.stop[0], "END");
    assert_string_equal(r.stop[1], "\n\n");
    assert_true(r.stream);
    assert_true(r.include_usage);
    sl_request_clear(&r);
}

static void stop_as_string_and_usage_needs_stream(void **state)
{
    sl_request r;
    sl_api_error e = {0};
    assert_int_equal(parse(SL_REQ_COMPLETION, "{\"prompt\":\"abc\",\"stop\":\"x\",\"max_tokens\":3,"
                           "\"stream_options\":{\"include_usage\":true}}", &r, &e), 0);
    assert_null(r.model);
    assert_string_equal(r.prompt, "abc");
    assert_int_equal(r.prompt_len, 3);
    assert_int_equal(r.n_stop, 1);
    assert_string_equal(r.stop[0], "x");
    assert_int_equal(r.max_tokens, 3);
    assert_false(r.include_usage);
    sl_request_clear(&r);
}

static void prompt_array_of_one(void **state)
{
    sl_request r;
    sl_api_error e = {0};
    assert_int_equal(parse(SL_REQ_COMPLETION, "{\"prompt\":[\"hello\"]}", &r, &e), 0);
    assert_string_equal(r.prompt, "hello");
    sl_request_clear(&r);
    expect_bad(SL_REQ_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt");
    expect_bad(SL_REQ_COMPLETION, "{\"prompt\":\"\"}", "prompt");
    expect_bad(SL_REQ_COMPLETION, "{\"model\":\"m\"}", "prompt");
}

static void bad_json(void **state)
{
    sl_request r;
    sl_api_error e = {0};
    assert_int_equal(parse(SL_REQ_CHAT, "{\"messages\": [", &r, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "invalid_request");
    assert_non_null(strstr(e.message, "not valid JSON"));
    expect_bad(SL_REQ_CHAT, "[1,2]", "");
    expect_bad(SL_REQ_CHAT, "", "");
}

static void bad_messages(void **state)
{
    expect_bad(SL_REQ_CHAT, "{\"model\":\"m\"}", "messages");
    expect_bad(SL_REQ_CHAT, "{\"messages\":[]}", "messages");
    expect_bad(SL_REQ_CHAT, "{\"messages\":\"hi\"}", "messages");
    expect_bad(SL_REQ_CHAT, "{\"messages\":[{\"content\":\"hi\"}]}", "messages");
    expect_bad(SL_REQ_CHAT, "{\"messages\":[3]}", "messages");
}

static void bad_fields(void **state)
{
    const char *m = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
    char body[256];
#define BAD(field, param) \
    snprintf(body, sizeof body, "{%s,%s}", m, field); \
    expect_bad(SL_REQ_CHAT, body, param)
    BAD("\"n\":2", "n");
    BAD("\"n\":\"1\"", "n");
    BAD("\"temperature\":3", "temperature");
    BAD("\"temperature\":\"hot\"", "temperature");
    BAD("\"top_p\":0", "top_p");
    BAD("\"top_p\":1.5", "top_p");
    BAD("\"top_k\":-2", "top_k");
    BAD("\"max_tokens\":0", "max_tokens");
    BAD("\"max_tokens\":1.5", "max_tokens");
    BAD("\"max_completion_tokens\":-1", "max_completion_tokens");
    BAD("\"presence_penalty\":5", "presence_penalty");
    BAD("\"frequency_penalty\":null,\"seed\":\"x\"", "seed");
    BAD("\"stop\":3", "stop");
    BAD("\"stop\":[\"a\",1]", "stop");
    BAD("\"stream\":\"yes\"", "stream");
    BAD("\"stream\":true,\"stream_options\":3", "stream_options");
    BAD("\"model\":7", "model");
#undef BAD
}

static void too_many_stops(void **state)
{
    char body[512] = "{\"prompt\":\"p\",\"stop\":[";
    for (int i = 0; i <= SL_REQ_MAX_STOP; i++)
        snprintf(body + strlen(body), sizeof body - strlen(body), "%s\"s%d\"", i ? "," : "", i);
    strcat(body, "]}");
    expect_bad(SL_REQ_COMPLETION, body, "stop");
}

static void error_json_shape(void **state)
{
    sl_api_error e;
    sl_api_error_set(&e, 404, "invalid_request_error", "model_not_found", "model", "no `%s`", "x");
    char *s = sl_api_error_json(&e);
    assert_string_equal(s, "{\"error\":{\"message\":\"no `x`\",\"type\":\"invalid_request_error\","
                           "\"param\":\"model\",\"code\":\"model_not_found\"}}");
    free(s);
    sl_api_error_set(&e, 500, "api_error", NULL, NULL, "boom");
    s = sl_api_error_json(&e);
    assert_string_equal(s, "{\"error\":{\"message\":\"boom\",\"type\":\"api_error\",\"param\":null,\"code\":null}}");
    free(s);
}

static void error_message_cut_mid_utf8_stays_json(void **state)
{
    char big[600];
    memset(big, 'a', sizeof big);
    strcpy(big + 509, "\xE2\x82\xAC\xE2\x82\xAC");  /* a euro sign straddles the 512-byte cut */
    sl_api_error e;
    sl_api_error_bad(&e, NULL, "%s", big);
    char *s = sl_api_error_json(&e);
    assert_non_null(s);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chat_defaults),
        cmocka_unit_test(chat_every_field),
        cmocka_unit_test(stop_as_string_and_usage_needs_stream),
        cmocka_unit_test(prompt_array_of_one),
        cmocka_unit_test(bad_json),
        cmocka_unit_test(bad_messages),
        cmocka_unit_test(bad_fields),
        cmocka_unit_test(too_many_stops),
        cmocka_unit_test(error_json_shape),
        cmocka_unit_test(error_message_cut_mid_utf8_stays_json),
    };
    return cmocka_run_group_tests_name("engine_request", tests, NULL, NULL);
}
