#include "token_count.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

typedef struct loaded { char *path; sl_tokenizer *tok; struct loaded *next; } loaded;
static loaded *cache;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

const sl_tokenizer *sl_token_counter_get(const char *path, sl_err *err)
{
    if (!path)
        return NULL;
    pthread_mutex_lock(&mu);
    loaded *l = cache;
    while (l && strcmp(l->path, path) != 0)
        l = l->next;
    if (!l) {
        sl_tokenizer *t = sl_tokenizer_load(path, err);
        if (t && (l = calloc(1, sizeof *l))) {
            l->path = strdup(path);
            l->tok = t;
            l->next = cache;
            cache = l;
        } else if (t) {
            sl_tokenizer_free(t);
        }
    }
    pthread_mutex_unlock(&mu);
    return l ? l->tok : NULL;
}

int64_t sl_token_count(const sl_tokenizer *tok, const char *text, size_t len)
{
    if (!len)
        return 0;
    if (!tok)
        return (int64_t)(len + 2) / 3;
    return (int64_t)sl_tokenizer_count(tok, text, len);
}

static int64_t count_json(const sl_tokenizer *tok, const json_t *v)
{
    if (!v)
        return 0;
    if (json_is_string(v))
        return sl_token_count(tok, json_string_value(v), json_string_length(v));
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    int64_t n = s ? sl_token_count(tok, s, strlen(s)) : 0;
    free(s);
    return n;
}

int64_t sl_token_estimate_prompt(const sl_tokenizer *tok, sl_endpoint ep, const json_t *body)
{
    switch (ep) {
    case SL_EP_CHAT:
        /* JSON syntax and role names stand in for the template's special tokens */
        return count_json(tok, json_object_get(body, "messages")) + count_json(tok, json_object_get(body, "tools")) + 8;
    case SL_EP_COMPLETIONS:
        return count_json(tok, json_object_get(body, "prompt")) + 4;
    case SL_EP_EMBEDDINGS:
        return count_json(tok, json_object_get(body, "input"));
    default:
        return 0;
    }
}

int64_t sl_token_request_cap(const json_t *body)
{
    json_t *v = json_object_get(body, "max_completion_tokens");
    if (!json_is_integer(v))
        v = json_object_get(body, "max_tokens");
    return json_is_integer(v) && json_integer_value(v) > 0 ? (int64_t)json_integer_value(v) : 0;
}

static void append(char **buf, size_t *len, size_t *cap, const json_t *s)
{
    if (!json_is_string(s))
        return;
    size_t n = json_string_length(s);
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 256);
        while (nc < *len + n + 1)
            nc *= 2;
        char *g = realloc(*buf, nc);
        if (!g)
            return;
        *buf = g;
        *cap = nc;
    }
    memcpy(*buf + *len, json_string_value(s), n);
    *len += n;
    (*buf)[*len] = 0;
}

void sl_token_collect_text(const json_t *event, char **buf, size_t *len, size_t *cap)
{
    size_t i;
    json_t *ch;
    json_array_foreach(json_object_get(event, "choices"), i, ch) {
        json_t *m = json_object_get(ch, "delta");
        if (!m)
            m = json_object_get(ch, "message");
        if (m) {
            append(buf, len, cap, json_object_get(m, "content"));
            append(buf, len, cap, json_object_get(m, "reasoning_content"));
            size_t j;
            json_t *tc;
            json_array_foreach(json_object_get(m, "tool_calls"), j, tc)
                append(buf, len, cap, json_object_get(json_object_get(tc, "function"), "arguments"));
        } else {
            append(buf, len, cap, json_object_get(ch, "text"));
        }
    }
}
