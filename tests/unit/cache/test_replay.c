/* Replay: a stored stream served to a non-streaming client is one correct completion, and a
 * stored completion served to a streaming client is the chunk sequence OpenAI would send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cache.h"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v)
        fail_msg("bad test JSON: %s", e.text);
    return v;
}

static const char *str_at(const json_t *root, const char *path)
{
    /* a tiny path reader: "choices.0.message.content" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *v = root;
    for (char *save = NULL, *p = strtok_r(buf, ".", &save); p && v; p = strtok_r(NULL, ".", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(p)) : json_object_get(v, p);
    return json_string_value(v);
}

static json_int_t int_at(const json_t *root, const char *a, const char *b)
{
    return json_integer_value(json_object_get(json_object_get(root, a), b));
}

static const char chat_stream[] = "["
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]},"
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think \"},\"finish_reason\":null}]},"
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hard\"},\"finish_reason\":null}]},"
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]},"
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\"},\"finish_reason\":null}]},"
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]},"
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":7,\"total_tokens\":10}}"
    "]";

static void chat_stream_assembles_into_a_completion(void **state)
{
    (void)state;
    json_t *chunks = parse(chat_stream);
    json_t *c = sl_cache_assemble(chunks, SL_EP_CHAT);
    assert_non_null(c);
    assert_string_equal(str_at(c, "object"), "chat.completion");
    assert_string_equal(str_at(c, "id"), "c1");
    assert_string_equal(str_at(c, "model"), "m");
    assert_int_equal(json_integer_value(json_object_get(c, "created")), 5);
    assert_int_equal(json_array_size(json_object_get(c, "choices")), 1);
    assert_string_equal(str_at(c, "choices.0.message.role"), "assistant");
    assert_string_equal(str_at(c, "choices.0.message.content"), "Hello \xc3\xa9");
    assert_string_equal(str_at(c, "choices.0.message.reasoning_content"), "think hard");
    assert_string_equal(str_at(c, "choices.0.finish_reason"), "stop");
    assert_int_equal(int_at(c, "usage", "prompt_tokens"), 3);
    assert_int_equal(int_at(c, "usage", "completion_tokens"), 7);
    json_decref(c);
    json_decref(chunks);
}

static void tool_calls_and_choices_assemble(void **state)
{
    (void)state;
    json_t *chunks = parse("["
        "{\"id\":\"t\",\"choices\":[{\"index\":1,\"delta\":{\"role\":\"assistant\",\"content\":\"second\"},\"finish_reason\":\"stop\"}]},"
        "{\"id\":\"t\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]},"
        "{\"id\":\"t\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]},"
        "{\"id\":\"t\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}"
        "]");
    json_t *c = sl_cache_assemble(chunks, SL_EP_CHAT);
    assert_int_equal(json_array_size(json_object_get(c, "choices")), 2);
    /* sorted by index */
    assert_string_equal(str_at(c, "choices.1.message.content"), "second");
    assert_null(str_at(c, "choices.0.message.content"));
    assert_string_equal(str_at(c, "choices.0.finish_reason"), "tool_calls");
    assert_string_equal(str_at(c, "choices.0.message.tool_calls.0.id"), "call_1");
    assert_string_equal(str_at(c, "choices.0.message.tool_calls.0.type"), "function");
    assert_string_equal(str_at(c, "choices.0.message.tool_calls.0.function.name"), "get_weather");
    assert_string_equal(str_at(c, "choices.0.message.tool_calls.0.function.arguments"), "{\"city\":\"Paris\"}");
    assert_null(json_object_get(json_array_get(json_object_get(json_object_get(
        json_array_get(json_object_get(c, "choices"), 0), "message"), "tool_calls"), 0), "index"));
    json_decref(c);
    json_decref(chunks);
}

static const char chat_body[] =
    "{\"id\":\"b1\",\"object\":\"chat.completion\",\"created\":9,\"model\":\"m\",\"choices\":[{\"index\":0,"
    "\"message\":{\"role\":\"assistant\",\"content\":\"Hi there\",\"reasoning_content\":\"hmm\"},"
    "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":4,\"total_tokens\":6}}";

static void completion_becomes_a_chunk_sequence(void **state)
{
    (void)state;
    json_t *body = parse(chat_body);
    json_t *chunks = sl_cache_to_chunks(body, SL_EP_CHAT, true);
    assert_non_null(chunks);
    /* role, reasoning, content, finish, usage */
    assert_int_equal(json_array_size(chunks), 5);
    for (size_t i = 0; i < 5; i++) {
        json_t *ch = json_array_get(chunks, i);
        assert_string_equal(str_at(ch, "object"), "chat.completion.chunk");
        assert_string_equal(str_at(ch, "id"), "b1");
        assert_string_equal(str_at(ch, "model"), "m");
    }
    assert_string_equal(str_at(chunks, "0.choices.0.delta.role"), "assistant");
    assert_string_equal(str_at(chunks, "1.choices.0.delta.reasoning_content"), "hmm");
    assert_string_equal(str_at(chunks, "2.choices.0.delta.content"), "Hi there");
    assert_true(json_is_null(json_object_get(json_array_get(json_object_get(json_array_get(chunks, 2), "choices"), 0),
                                             "finish_reason")));
    assert_string_equal(str_at(chunks, "3.choices.0.finish_reason"), "length");
    json_t *last = json_array_get(chunks, 4);
    assert_true(sl_cache_is_usage_chunk(last));
    assert_int_equal(int_at(last, "usage", "completion_tokens"), 4);
    /* and back: the same answer */
    json_t *again = sl_cache_assemble(chunks, SL_EP_CHAT);
    assert_string_equal(str_at(again, "choices.0.message.content"), "Hi there");
    assert_string_equal(str_at(again, "choices.0.message.reasoning_content"), "hmm");
    assert_string_equal(str_at(again, "choices.0.finish_reason"), "length");
    assert_int_equal(int_at(again, "usage", "total_tokens"), 6);
    json_decref(again);
    json_decref(chunks);
    json_decref(body);
}

static void no_usage_chunk_unless_asked(void **state)
{
    (void)state;
    json_t *body = parse(chat_body);
    json_t *chunks = sl_cache_to_chunks(body, SL_EP_CHAT, false);
    assert_int_equal(json_array_size(chunks), 4);
    for (size_t i = 0; i < 4; i++)
        assert_false(sl_cache_is_usage_chunk(json_array_get(chunks, i)));
    json_decref(chunks);
    json_decref(body);
}

static void tool_calls_become_chunks(void **state)
{
    (void)state;
    json_t *body = parse("{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
                         "\"tool_calls\":[{\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"f\","
                         "\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}");
    json_t *chunks = sl_cache_to_chunks(body, SL_EP_CHAT, false);
    json_t *c = sl_cache_assemble(chunks, SL_EP_CHAT);
    assert_string_equal(str_at(c, "choices.0.message.tool_calls.0.id"), "call_9");
    assert_string_equal(str_at(c, "choices.0.message.tool_calls.0.function.arguments"), "{}");
    assert_string_equal(str_at(c, "choices.0.finish_reason"), "tool_calls");
    json_decref(c);
    json_decref(chunks);
    json_decref(body);
}

static void legacy_completions_both_ways(void **state)
{
    (void)state;
    json_t *chunks = parse("["
        "{\"id\":\"cmpl\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"foo\",\"finish_reason\":null}]},"
        "{\"id\":\"cmpl\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"bar\",\"finish_reason\":\"stop\"}]},"
        "{\"id\":\"cmpl\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}"
        "]");
    json_t *c = sl_cache_assemble(chunks, SL_EP_COMPLETIONS);
    assert_string_equal(str_at(c, "object"), "text_completion");
    assert_string_equal(str_at(c, "choices.0.text"), "foobar");
    assert_string_equal(str_at(c, "choices.0.finish_reason"), "stop");
    assert_int_equal(int_at(c, "usage", "total_tokens"), 3);
    json_t *back = sl_cache_to_chunks(c, SL_EP_COMPLETIONS, true);
    assert_int_equal(json_array_size(back), 3); /* text, finish, usage */
    assert_string_equal(str_at(back, "0.choices.0.text"), "foobar");
    assert_string_equal(str_at(back, "0.object"), "text_completion");
    assert_string_equal(str_at(back, "1.choices.0.finish_reason"), "stop");
    assert_true(sl_cache_is_usage_chunk(json_array_get(back, 2)));
    json_decref(back);
    json_decref(c);
    json_decref(chunks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chat_stream_assembles_into_a_completion),
        cmocka_unit_test(tool_calls_and_choices_assemble),
        cmocka_unit_test(completion_becomes_a_chunk_sequence),
        cmocka_unit_test(no_usage_chunk_unless_asked),
        cmocka_unit_test(tool_calls_become_chunks),
        cmocka_unit_test(legacy_completions_both_ways),
    };
    return cmocka_run_group_tests_name("cache_replay", tests, NULL, NULL);
}
