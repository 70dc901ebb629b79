/* Replay: a stored response served in the shape the client asked for. A stream becomes one
 * completion body (deltas joined), and a body becomes the chunk sequence an OpenAI stream
 * would have sent. Ids, created and model are the stored ones. */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

bool sl_cache_is_usage_chunk(const json_t *chunk)
{
    const json_t *choices = json_object_get(chunk, "choices");
    return (!choices || json_array_size(choices) == 0) && json_is_object(json_object_get(chunk, "usage"));
}

/* Append the string s to the string at obj[key] (created when absent). */
static void append_str(json_t *obj, const char *key, const json_t *s)
{
    if (!json_is_string(s))
        return;
    json_t *cur = json_object_get(obj, key);
    if (!json_is_string(cur)) {
        json_object_set_new(obj, key, json_stringn(json_string_value(s), json_string_length(s)));
        return;
    }
    size_t a = json_string_length(cur), b = json_string_length(s);
    char *joined = malloc(a + b + 1);
    if (!joined)
        return;
    memcpy(joined, json_string_value(cur), a);
    memcpy(joined + a, json_string_value(s), b);
    json_object_set_new(obj, key, json_stringn(joined, a + b));
    free(joined);
}

/* The choice with this index in out["choices"], made when first seen. */
static json_t *choice_at(json_t *choices, json_int_t index, sl_endpoint ep)
{
    for (size_t i = 0; i < json_array_size(choices); i++) {
        json_t *c = json_array_get(choices, i);
        if (json_integer_value(json_object_get(c, "index")) == index)
            return c;
    }
    json_t *c = ep == SL_EP_CHAT
        ? json_pack("{s:I, s:{s:s, s:n}, s:n, s:n}", "index", index, "message", "role", "assistant", "content",
                    "logprobs", "finish_reason")
        : json_pack("{s:I, s:s, s:n, s:n}", "index", index, "text", "", "logprobs", "finish_reason");
    json_array_append_new(choices, c);
    return c;
}

/* Tool-call deltas: the first names id/type/function.name, later ones add arguments. */
static void merge_tool_calls(json_t *message, const json_t *deltas)
{
    json_t *calls = json_object_get(message, "tool_calls");
    if (!calls) {
        calls = json_array();
        json_object_set_new(message, "tool_calls", calls);
    }
    size_t i;
    json_t *d;
    json_array_foreach(deltas, i, d) {
        json_int_t idx = json_integer_value(json_object_get(d, "index"));
        json_t *call = NULL;
        for (size_t k = 0; k < json_array_size(calls) && !call; k++)
            if (json_integer_value(json_object_get(json_array_get(calls, k), "index")) == idx)
                call = json_array_get(calls, k);
        if (!call) {
            call = json_pack("{s:I, s:{}}", "index", idx, "function");
            json_array_append_new(calls, call);
        }
        json_t *id = json_object_get(d, "id"), *type = json_object_get(d, "type");
        if (json_is_string(id))
            json_object_set(call, "id", id);
        if (json_is_string(type))
            json_object_set(call, "type", type);
        json_t *fn = json_object_get(d, "function"), *out_fn = json_object_get(call, "function");
        append_str(out_fn, "name", json_object_get(fn, "name"));
        append_str(out_fn, "arguments", json_object_get(fn, "arguments"));
    }
}

static void merge_logprobs(json_t *choice, const json_t *lp)
{
    json_t *content = json_object_get(lp, "content");
    if (!json_is_array(content))
        return;
    json_t *cur = json_object_get(choice, "logprobs");
    if (!json_is_object(cur)) {
        cur = json_pack("{s:[]}", "content");
        json_object_set_new(choice, "logprobs", cur);
    }
    json_array_extend(json_object_get(cur, "content"), content);
}

static void merge_choice(json_t *choices, const json_t *delta_choice, sl_endpoint ep)
{
    json_t *out = choice_at(choices, json_integer_value(json_object_get(delta_choice, "index")), ep);
    json_t *fr = json_object_get(delta_choice, "finish_reason");
    if (json_is_string(fr))
        json_object_set(out, "finish_reason", fr);
    if (ep != SL_EP_CHAT) {
        append_str(out, "text", json_object_get(delta_choice, "text"));
        return;
    }
    json_t *delta = json_object_get(delta_choice, "delta"), *msg = json_object_get(out, "message");
    json_t *role = json_object_get(delta, "role");
    if (json_is_string(role))
        json_object_set(msg, "role", role);
    append_str(msg, "content", json_object_get(delta, "content"));
    append_str(msg, "reasoning_content", json_object_get(delta, "reasoning_content"));
    append_str(msg, "refusal", json_object_get(delta, "refusal"));
    json_t *tools = json_object_get(delta, "tool_calls");
    if (json_is_array(tools))
        merge_tool_calls(msg, tools);
    merge_logprobs(out, json_object_get(delta_choice, "logprobs"));
}

static int by_index(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "index"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "index"));
    return (x > y) - (x < y);
}

/* Choices sorted by index, as a non-streamed answer lists them. */
static void sort_choices(json_t *out)
{
    json_t *choices = json_object_get(out, "choices");
    size_t n = json_array_size(choices);
    json_t **v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(choices, i));
    qsort(v, n, sizeof *v, by_index);
    json_array_clear(choices);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(choices, v[i]);
    free(v);
}

json_t *sl_cache_assemble(const json_t *chunks, sl_endpoint ep)
{
    if (!json_is_array(chunks))
        return NULL;
    json_t *out = json_pack("{s:s, s:[]}", "object", ep == SL_EP_CHAT ? "chat.completion" : "text_completion",
                            "choices");
    if (!out)
        return NULL;
    json_t *choices = json_object_get(out, "choices");
    size_t i;
    json_t *chunk;
    json_array_foreach(chunks, i, chunk) {
        static const char *const copied[] = {"id", "created", "model", "system_fingerprint", NULL};
        for (size_t k = 0; copied[k]; k++) {
            json_t *v = json_object_get(chunk, copied[k]);
            if (v && !json_is_null(v) && !json_object_get(out, copied[k]))
                json_object_set(out, copied[k], v);
        }
        size_t j;
        json_t *c;
        const json_t *cs = json_object_get(chunk, "choices"); /* the macro reads it each turn */
        json_array_foreach(cs, j, c) merge_choice(choices, c, ep);
        json_t *usage = json_object_get(chunk, "usage");
        if (json_is_object(usage))
            json_object_set(out, "usage", usage);
    }
    sort_choices(out);
    json_array_foreach(choices, i, chunk) { /* a whole answer's tool calls carry no index */
        size_t k;
        json_t *call;
        const json_t *calls = json_object_get(json_object_get(chunk, "message"), "tool_calls");
        json_array_foreach(calls, k, call)
            json_object_del(call, "index");
    }
    return out;
}

/* ---- body -> chunks ---- */

static json_t *chunk_head(const json_t *body, sl_endpoint ep)
{
    json_t *c = json_pack("{s:s, s:[]}", "object", ep == SL_EP_CHAT ? "chat.completion.chunk" : "text_completion",
                          "choices");
    static const char *const copied[] = {"id", "created", "model", "system_fingerprint", NULL};
    for (size_t k = 0; c && copied[k]; k++) {
        json_t *v = json_object_get(body, copied[k]);
        if (v)
            json_object_set(c, copied[k], v);
    }
    return c;
}

/* One chunk carrying one choice: {index, delta|text, logprobs: null, finish_reason}. */
static void add_chunk(json_t *out, const json_t *body, sl_endpoint ep, json_int_t index, json_t *delta_or_text,
                      json_t *finish)
{
    json_t *c = chunk_head(body, ep);
    json_t *choice = json_pack("{s:I, s:o, s:n, s:O}", "index", index, ep == SL_EP_CHAT ? "delta" : "text",
                               delta_or_text, "logprobs", "finish_reason", finish);
    if (!c || !choice) {
        json_decref(c);
        json_decref(choice);
        return;
    }
    json_array_append_new(json_object_get(c, "choices"), choice);
    json_array_append_new(out, c);
}

static bool nonempty(const json_t *s) { return json_is_string(s) && json_string_length(s) > 0; }

static void chat_choice_chunks(json_t *out, const json_t *body, const json_t *choice, json_int_t index)
{
    json_t *msg = json_object_get(choice, "message"), *nul = json_null();
    json_t *role = json_object_get(msg, "role");
    add_chunk(out, body, SL_EP_CHAT, index,
              json_pack("{s:s, s:s}", "role", json_is_string(role) ? json_string_value(role) : "assistant",
                        "content", ""),
              nul);
    static const char *const texts[] = {"reasoning_content", "content", "refusal", NULL};
    for (size_t k = 0; texts[k]; k++) {
        json_t *t = json_object_get(msg, texts[k]);
        if (nonempty(t))
            add_chunk(out, body, SL_EP_CHAT, index, json_pack("{s:O}", texts[k], t), nul);
    }
    json_t *calls = json_object_get(msg, "tool_calls");
    if (json_array_size(calls) > 0) {
        json_t *deltas = json_array();
        size_t i;
        json_t *call;
        json_array_foreach(calls, i, call) {
            json_t *d = json_deep_copy(call);
            if (!json_object_get(d, "index"))
                json_object_set_new(d, "index", json_integer((json_int_t)i));
            json_array_append_new(deltas, d);
        }
        add_chunk(out, body, SL_EP_CHAT, index, json_pack("{s:o}", "tool_calls", deltas), nul);
    }
    json_t *fr = json_object_get(choice, "finish_reason");
    add_chunk(out, body, SL_EP_CHAT, index, json_object(), fr ? fr : nul);
}

static void text_choice_chunks(json_t *out, const json_t *body, const json_t *choice, json_int_t index)
{
    json_t *text = json_object_get(choice, "text"), *nul = json_null();
    if (nonempty(text))
        add_chunk(out, body, SL_EP_COMPLETIONS, index, json_incref(text), nul);
    json_t *fr = json_object_get(choice, "finish_reason");
    add_chunk(out, body, SL_EP_COMPLETIONS, index, json_string(""), fr ? fr : nul);
}

json_t *sl_cache_to_chunks(const json_t *body, sl_endpoint ep, bool include_usage)
{
    if (!json_is_object(body))
        return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *choice;
    const json_t *choices = json_object_get(body, "choices");
    json_array_foreach(choices, i, choice) {
        json_t *idx = json_object_get(choice, "index");
        json_int_t index = json_is_integer(idx) ? json_integer_value(idx) : (json_int_t)i;
        if (ep == SL_EP_CHAT)
            chat_choice_chunks(out, body, choice, index);
        else
            text_choice_chunks(out, body, choice, index);
    }
    json_t *usage = json_object_get(body, "usage");
    if (include_usage && json_is_object(usage)) {
        json_t *c = chunk_head(body, ep);
        json_object_set(c, "usage", usage);
        json_array_append_new(out, c);
    }
    return out;
}
