/* The prompt estimate without a tokenizer: one token per 3 bytes of the messages as compact
 * JSON, counted without writing that JSON. It must equal what json_dumps would give. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "token_count.h"

static int64_t by_dump(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t n = strlen(s);
    free(s);
    return n ? (int64_t)(n + 2) / 3 : 0;
}

static void estimate_equals_the_dumped_length(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"messages\":[{\"role\":\"system\",\"content\":\"quote \\\" back \\\\ slash / nl \\n tab \\t cr \\r"
        " bs \\b ff \\f ctl \\u0001 caf\\u00e9 \\u20ac \\ud83d\\ude00\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"https://x/y.png\",\"detail\":null}}],\"n\":[1,-2,3.5,1e300,0.1,-0.0,true,false]}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}},[]]}",
        "{\"messages\":[],\"tools\":{}}",
        "{\"messages\":[{\"k\\\"ey\\n\":{\"\":[[[]]]}}]}",
        /* long strings: the scan goes sixteen bytes a step, escapes on both sides of a step */
        "{\"messages\":[{\"role\":\"user\",\"content\":\"0123456789abcde\\\"0123456789abcdef\\n0123456789"
        "abcdef\\u0002caf\\u00e9 0123456789abcdefghijklmnopqrstuvwxyz \\\\ 0123456789abcdefghijklmnop\\t\"}]}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        json_error_t err;
        json_t *body = json_loads(bodies[i], 0, &err);
        assert_non_null(body);
        json_t *msgs = json_object_get(body, "messages"), *tools = json_object_get(body, "tools");
        int64_t want = by_dump(msgs) + (tools ? by_dump(tools) : 0) + 8;
        assert_int_equal(sl_token_estimate_prompt(NULL, SL_EP_CHAT, body), want);
        json_decref(body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(estimate_equals_the_dumped_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
