/* The cache key: requests that mean the same share a key; any change that can change the
 * answer gives another key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "cache.h"

static const char base_req[] =
    "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0}";

static void key_of(const char *body_text, const char *model, sl_endpoint ep, const char *consumer, char hex[65])
{
    json_error_t jerr;
    json_t *body = json_loads(body_text, 0, &jerr);
    assert_non_null(body);
    sl_err err = {{0}};
    assert_int_equal(sl_cache_key(body, model, ep, consumer, hex, &err), 0);
    assert_int_equal(strlen(hex), 64);
    json_decref(body);
}

static void assert_canonical(const char *json_text, const char *want)
{
    json_t *v = json_loads(json_text, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    char *got = sl_cache_canonical(v);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    json_decref(v);
}

static void canonical_sorts_keys_and_drops_whitespace(void **state)
{
    (void)state;
    assert_canonical("{ \"b\" : [1, 2 ,{\"z\":1, \"a\":2}], \"a\": \"x\" }", "{\"a\":\"x\",\"b\":[1,2,{\"a\":2,\"z\":1}]}");
    assert_canonical("{\"s\":\"tab\\there \\\"q\\\" \\u00e9\\n\"}", "{\"s\":\"tab\\u0009here \\\"q\\\" \xc3\xa9\\u000a\"}");
    assert_canonical("[true,false,null,\"\"]", "[true,false,null,\"\"]");
    /* a key before the keys it begins (strcmp's order), bytes unsigned (é after z) */
    assert_canonical("{\"abc\":1,\"\u00e9\":4,\"z\":5,\"ab\":2,\"a\":3}",
                     "{\"a\":3,\"ab\":2,\"abc\":1,\"z\":5,\"\xc3\xa9\":4}");
}

static void canonical_numbers_are_normalised(void **state)
{
    (void)state;
    assert_canonical("[1, 1.0, 1e0, 10E-1, 100e-2]", "[1,1,1,1,1]");
    assert_canonical("[0, 0.0, -0.0, 0e5]", "[0,0,0,0]");
    assert_canonical("[0.7, 7e-1, 0.70]", "[0.7,0.7,0.7]");
    assert_canonical("[-2.5, 1e21, 123456789012345678]", "[-2.5,1e+21,123456789012345678]");
    assert_canonical("[0.1]", "[0.1]");
}

static void same_meaning_same_key(void **state)
{
    (void)state;
    char a[65], b[65];
    key_of(base_req, "demo", SL_EP_CHAT, NULL, a);
    key_of("{\"temperature\":0.0,  \"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],\"model\":\"demo\"}",
           "demo", SL_EP_CHAT, NULL, b);
    assert_string_equal(a, b);
    /* stream and stream_options are not part of the key; nor is the body's model (the
     * client-facing one passed in is) */
    key_of("{\"model\":\"other\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0e3}",
           "demo", SL_EP_CHAT, NULL, b);
    assert_string_equal(a, b);
    key_of("{\"model\":\"demo\",\"user\":\"u-42\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
           "\"temperature\":0}", "demo", SL_EP_CHAT, NULL, b);
    assert_string_equal(a, b);
}

/* Each of these fields, added to the base request, must change the key. */
static void every_parameter_changes_the_key(void **state)
{
    (void)state;
    static const char *const extra[] = {
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]",
        "\"tool_choice\":\"none\"",
        "\"response_format\":{\"type\":\"json_object\"}",
        "\"top_p\":0.5",
        "\"top_k\":5",
        "\"presence_penalty\":0.1",
        "\"frequency_penalty\":0.1",
        "\"stop\":[\"x\"]",
        "\"seed\":7",
        "\"n\":2",
        "\"logit_bias\":{\"15\":-100}",
        "\"max_tokens\":16",
        "\"max_completion_tokens\":16",
        "\"reasoning_effort\":\"low\"",
    };
    char base[65], got[65], seen[sizeof extra / sizeof extra[0]][65];
    key_of(base_req, "demo", SL_EP_CHAT, NULL, base);
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{%s,%s", extra[i], base_req + 1);
        key_of(body, "demo", SL_EP_CHAT, NULL, got);
        if (strcmp(got, base) == 0)
            fail_msg("adding %s did not change the key", extra[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(got, seen[j]) == 0)
                fail_msg("%s and %s share a key", extra[i], extra[j]);
        memcpy(seen[i], got, 65);
    }
}

static void values_change_the_key(void **state)
{
    (void)state;
    char a[65], b[65];
    key_of(base_req, "demo", SL_EP_CHAT, NULL, a);
    key_of("{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"hi!\"}],\"temperature\":0}", "demo",
           SL_EP_CHAT, NULL, b);
    assert_string_not_equal(a, b);
    key_of("{\"model\":\"demo\",\"messages\":[{\"role\":\"system\",\"content\":\"hi\"}],\"temperature\":0}", "demo",
           SL_EP_CHAT, NULL, b);
    assert_string_not_equal(a, b);
    key_of(base_req, "demo", SL_EP_CHAT, NULL, a);
    key_of("{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0.5}", "demo",
           SL_EP_CHAT, NULL, b);
    assert_string_not_equal(a, b);
}

static void model_endpoint_and_consumer_change_the_key(void **state)
{
    (void)state;
    char a[65], b[65];
    key_of(base_req, "demo", SL_EP_CHAT, NULL, a);
    key_of(base_req, "demo-2", SL_EP_CHAT, NULL, b);
    assert_string_not_equal(a, b);
    key_of(base_req, "demo", SL_EP_COMPLETIONS, NULL, b);
    assert_string_not_equal(a, b);
    key_of(base_req, "demo", SL_EP_CHAT, "acme", a);
    key_of(base_req, "demo", SL_EP_CHAT, "globex", b);
    assert_string_not_equal(a, b);
    key_of(base_req, "demo", SL_EP_CHAT, "acme", b);
    assert_string_equal(a, b);
}

/* The key is SHA-256 of the canonical text of {consumer (null when shared), endpoint,
 * model, request without its ignored fields}, written straight into the digest; this is
 * its written-out form, so keys stay what they were for entries already stored in Redis. */
static void key_is_sha256_of_the_canonical_envelope(void **state)
{
    (void)state;
    static const char body_text[] = "{\"model\":\"x\",\"stream\":true,\"user\":\"u\",\"temperature\":0.5,"
                                    "\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9 \\\"q\\\"\"}]}";
    for (int with_consumer = 0; with_consumer < 2; with_consumer++) {
        const char *consumer = with_consumer ? "team-a" : NULL;
        char hex[65];
        key_of(body_text, "demo", SL_EP_CHAT, consumer, hex);
        json_t *body = json_loads(body_text, 0, NULL), *req = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(body, k, v)
            if (!sl_cache_field_ignored(k))
                json_object_set(req, k, v);
        json_t *top = json_pack("{s:s, s:s?, s:s?, s:O}", "endpoint", "chat.completions", "model", "demo",
                                "consumer", consumer, "request", req);
        char *text = sl_cache_canonical(top);
        assert_non_null(text);
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)text, strlen(text), md);
        char want[65];
        for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
            snprintf(want + 2 * i, 3, "%02x", md[i]);
        assert_string_equal(hex, want);
        free(text);
        json_decref(top);
        json_decref(req);
        json_decref(body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canonical_sorts_keys_and_drops_whitespace),
        cmocka_unit_test(canonical_numbers_are_normalised),
        cmocka_unit_test(key_is_sha256_of_the_canonical_envelope),
        cmocka_unit_test(same_meaning_same_key),
        cmocka_unit_test(every_parameter_changes_the_key),
        cmocka_unit_test(values_change_the_key),
        cmocka_unit_test(model_endpoint_and_consumer_change_the_key),
    };
    return cmocka_run_group_tests_name("cache_key", tests, NULL, NULL);
}
