#include "resp.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void sl_resp_meta_init(sl_resp_meta *m, sl_req_kind kind, const char *model)
{
    unsigned char r[12] = {0};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)rand();
    int n = snprintf(m->id, sizeof m->id, "%s", kind == SL_REQ_CHAT ? "chatcmpl-" : "cmpl-");
    for (size_t i = 0; i < sizeof r; i++)
        n += snprintf(m->id + n, sizeof m->id - (size_t)n, "%02x", r[i]);
    m->kind = kind;
    m->created = (long long)time(NULL);
    m->model = model;
}

/* A JSON string from len bytes; bytes that are not valid UTF-8 become U+FFFD so the
 * response stays valid JSON whatever the model produced. */
static json_t *text_json(sl_text t)
{
    json_t *j = json_stringn(t.s ? t.s : "", t.s ? t.len : 0);
    if (j)
        return j;
    char *fixed = malloc(t.len * 3 + 1);
    if (!fixed)
        return NULL;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)t.s;
    for (size_t i = 0; i < t.len;) {
        size_t n = p[i] < 0x80 ? 1 : (p[i] >> 5) == 6 ? 2 : (p[i] >> 4) == 14 ? 3 : (p[i] >> 3) == 30 ? 4 : 0;
        json_t *probe = n && i + n <= t.len ? json_stringn((const char *)p + i, n) : NULL;
        if (probe) {
            memcpy(fixed + o, p + i, n);
            o += n;
            i += n;
            json_decref(probe);
        } else {
            memcpy(fixed + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(fixed, o);
    free(fixed);
    return j;
}

static json_t *usage_json(sl_usage u)
{
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", u.prompt_tokens,
                     "completion_tokens", u.completion_tokens,
                     "total_tokens", u.prompt_tokens + u.completion_tokens,
                     "prompt_tokens_details", "cached_tokens", u.cached_tokens);
}

static json_t *finish_json(const char *finish_reason)
{
    return finish_reason ? json_string(finish_reason) : json_null();
}

static json_t *envelope(const sl_resp_meta *m, const char *object, json_t *choices)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", m->id, "object", object,
                     "created", (json_int_t)m->created, "model", m->model, "choices", choices);
}

static char *dump_sse(json_t *root)
{
    if (!root)
        return NULL;
    char *body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!body)
        return NULL;
    char *out = NULL;
    if (asprintf(&out, "data: %s\n\n", body) < 0)
        out = NULL;
    free(body);
    return out;
}

char *sl_resp_full(const sl_resp_meta *m, sl_text content, sl_text reasoning,
                   const char *finish_reason, sl_usage usage)
{
    json_t *choice;
    const char *object;
    if (m->kind == SL_REQ_CHAT) {
        json_t *msg = json_pack("{s:s, s:o}", "role", "assistant", "content", text_json(content));
        if (msg && reasoning.s)
            json_object_set_new(msg, "reasoning_content", text_json(reasoning));
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "message", msg, "logprobs",
                           "finish_reason", finish_json(finish_reason));
        object = "chat.completion";
    } else {
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "text", text_json(content),
                           "logprobs", "finish_reason", finish_json(finish_reason));
        object = "text_completion";
    }
    json_t *root = envelope(m, object, json_pack("[o]", choice));
    if (!root)
        return NULL;
    json_object_set_new(root, "usage", usage_json(usage));
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

char *sl_resp_chunk(const sl_resp_meta *m, bool first, sl_text content, sl_text reasoning,
                    const char *finish_reason)
{
    json_t *choice;
    const char *object;
    if (m->kind == SL_REQ_CHAT) {
        json_t *delta = json_object();
        if (first)
            json_object_set_new(delta, "role", json_string("assistant"));
        if (reasoning.len)
            json_object_set_new(delta, "reasoning_content", text_json(reasoning));
        if (content.len || (first && !reasoning.len))
            json_object_set_new(delta, "content", text_json(content));
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "delta", delta, "logprobs",
                           "finish_reason", finish_json(finish_reason));
        object = "chat.completion.chunk";
    } else {
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "text", text_json(content),
                           "logprobs", "finish_reason", finish_json(finish_reason));
        object = "text_completion";
    }
    return dump_sse(envelope(m, object, json_pack("[o]", choice)));
}

char *sl_resp_usage_chunk(const sl_resp_meta *m, sl_usage usage)
{
    json_t *root = envelope(m, m->kind == SL_REQ_CHAT ? "chat.completion.chunk" : "text_completion",
                            json_array());
    if (root)
        json_object_set_new(root, "usage", usage_json(usage));
    return dump_sse(root);
}

char *sl_resp_error_chunk(const sl_api_error *e)
{
    char *body = sl_api_error_json(e);
    if (!body)
        return NULL;
    char *out = NULL;
    if (asprintf(&out, "data: %s\n\n", body) < 0)
        out = NULL;
    free(body);
    return out;
}

char *sl_resp_models(const char *model, long long created, int max_model_len)
{
    json_t *root = json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:i}]}", "object", "list", "data",
                             "id", model, "object", "model", "created", (json_int_t)created,
                             "owned_by", "sluice", "max_model_len", max_model_len);
    if (!root)
        return NULL;
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}
