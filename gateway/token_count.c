#include "token_count.h"
#include "json_view.h"
#include "plugin.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt_int.h"
#include "json_dump.h"
#include "json_pick.h"
#include "json_plain.h"
#include "strbuf.h"
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

/* A string (or key) as jansson writes it: quoted, with its escapes (UTF-8 as it is). */
static size_t quoted_len(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = len + 2, i = 0;
    while ((i += sl_json_plain_run(str + i, len - i, true)) < len) {
        unsigned char c = s[i++];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            n += 1;
        else if (c < 0x20)
            n += 5;
    }
    return n;
}

/* Bytes of json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), without writing them. */
static size_t compact_len(const json_t *v)
{
    char buf[64];
    size_t n = 0, i;
    const char *k;
    json_t *item;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        n = 2;
        json_object_foreach((json_t *)v, k, item)
            n += quoted_len(k, strlen(k)) + 1 + compact_len(item) + 1;
        return json_object_size(v) ? n - 1 : n;
    case JSON_ARRAY:
        n = 2;
        json_array_foreach(v, i, item) n += compact_len(item) + 1;
        return json_array_size(v) ? n - 1 : n;
    case JSON_STRING:
        return quoted_len(json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return (size_t)snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL: {
        int k2 = snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
        return (size_t)k2 + (strpbrk(buf, ".eE") ? 0 : 2);
    }
    case JSON_TRUE:
        return 4;
    case JSON_FALSE:
        return 5;
    default:
        return 4;
    }
}

static int64_t count_json(const sl_tokenizer *tok, const json_t *v)
{
    if (!v)
        return 0;
    if (json_is_string(v))
        return sl_token_count(tok, json_string_value(v), json_string_length(v));
    if (!tok) { /* the estimate needs only the length of the text */
        size_t len = compact_len(v);
        return len ? (int64_t)(len + 2) / 3 : 0;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    int64_t n = s ? sl_token_count(tok, s, strlen(s)) : 0;
    free(s);
    return n;
}

/* compact_len of view token i (no real in it), and with out, its text written there: what
 * json_dumps(JSON_COMPACT) writes of the tree (members in the text's order, which is the
 * tree's). Returns the token after i's value. */
static uint32_t view_compact(const sl_jview *v, uint32_t i, size_t *len, sl_strbuf *out)
{
    const sl_jv_tok *t = &v->tok[i];
    const char *s;
    size_t n;
    char buf[SL_FMT_INT_MAX];
    long long x;
    switch (t->type) {
    case SL_JV_OBJECT:
    case SL_JV_ARRAY: {
        bool obj = t->type == SL_JV_OBJECT;
        *len += t->size ? t->size + 1 : 2; /* the brackets and the commas */
        if (out)
            sl_strbuf_add(out, obj ? "{" : "[", 1);
        uint32_t k = i + 1;
        for (uint32_t m = 0; m < t->size; m++) {
            if (out && m)
                sl_strbuf_add(out, ",", 1);
            if (obj) {
                s = sl_jview_str(v, (int)k, &n);
                *len += quoted_len(s, n) + 1;
                if (out) {
                    sl_json_dump_string(out, s, n);
                    sl_strbuf_add(out, ":", 1);
                }
                k++;
            }
            k = view_compact(v, k, len, out);
        }
        if (out)
            sl_strbuf_add(out, obj ? "}" : "]", 1);
        return t->next;
    }
    case SL_JV_STRING:
        s = sl_jview_str(v, (int)i, &n);
        *len += quoted_len(s, n);
        if (out)
            sl_json_dump_string(out, s, n);
        return i + 1;
    case SL_JV_INTEGER:
        sl_jview_int(v, (int)i, &x);
        n = sl_fmt_int(buf, x);
        s = buf;
        break;
    case SL_JV_TRUE: s = "true", n = 4; break;
    case SL_JV_FALSE: s = "false", n = 5; break;
    default: s = "null", n = 4; break;
    }
    *len += n;
    if (out)
        sl_strbuf_add(out, s, n);
    return i + 1;
}

/* count_json of view token i. */
static int64_t count_view(const sl_tokenizer *tok, const sl_jview *v, int i)
{
    if (i < 0)
        return 0;
    size_t n = 0;
    const char *s = sl_jview_str(v, i, &n);
    if (s)
        return sl_token_count(tok, s, n);
    if (sl_jview_has_real(v, i)) { /* jansson's way of printing reals is its own */
        json_t *t = sl_jview_json(v, i);
        int64_t c = count_json(tok, t);
        json_decref(t);
        return c;
    }
    if (!tok) {
        view_compact(v, (uint32_t)i, &n, NULL);
        return n ? (int64_t)(n + 2) / 3 : 0;
    }
    sl_strbuf b = {0};
    view_compact(v, (uint32_t)i, &n, &b);
    int64_t c = b.s && b.len == n ? sl_token_count(tok, b.s, b.len) : 0; /* short: out of memory */
    free(b.s);
    return c;
}

int64_t sl_token_estimate_prompt_view(const sl_tokenizer *tok, sl_endpoint ep, const sl_jview *v)
{
    switch (ep) {
    case SL_EP_CHAT:
        return count_view(tok, v, sl_jview_get(v, 0, "messages")) + count_view(tok, v, sl_jview_get(v, 0, "tools")) + 8;
    case SL_EP_COMPLETIONS:
        return count_view(tok, v, sl_jview_get(v, 0, "prompt")) + 4;
    case SL_EP_EMBEDDINGS:
        return count_view(tok, v, sl_jview_get(v, 0, "input"));
    default:
        return 0;
    }
}

int64_t sl_token_request_cap_view(const sl_jview *v)
{
    long long x;
    if (!sl_jview_int(v, sl_jview_get(v, 0, "max_completion_tokens"), &x) &&
        !sl_jview_int(v, sl_jview_get(v, 0, "max_tokens"), &x))
        return 0;
    return x > 0 ? (int64_t)x : 0;
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

static void append_bytes(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
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
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
}

static void append(char **buf, size_t *len, size_t *cap, const json_t *s)
{
    if (json_is_string(s))
        append_bytes(buf, len, cap, json_string_value(s), json_string_length(s));
}

static void append_tok(char **buf, size_t *len, size_t *cap, const sl_jview *v, int i)
{
    size_t n;
    const char *s = sl_jview_str(v, i, &n);
    if (s)
        append_bytes(buf, len, cap, s, n);
}

void sl_token_collect_view(const sl_jview *v, const sl_resp_summary *sum, char **buf, size_t *len, size_t *cap)
{
    for (size_t i = 0; sum && i < sum->n; i++) {
        const sl_resp_choice *c = &sum->c[i];
        if (c->delta < 0 && c->message < 0) {
            append_tok(buf, len, cap, v, c->text);
            continue;
        }
        append_tok(buf, len, cap, v, c->content);
        append_tok(buf, len, cap, v, c->reasoning_content);
        for (int j = 0, tc; (tc = sl_jview_item(v, c->tool_calls, (size_t)j)) >= 0; j++)
            append_tok(buf, len, cap, v, sl_jview_get(v, sl_jview_get(v, tc, "function"), "arguments"));
    }
}

void sl_token_collect_text(const json_t *event, char **buf, size_t *len, size_t *cap)
{
    static const char *const choice_names[] = {"delta", "message", "text", NULL};
    static const char *const message_names[] = {"content", "reasoning_content", "tool_calls", NULL};
    size_t i;
    json_t *ch;
    const json_t *choices = json_object_get(event, "choices"); /* the macro reads it each turn */
    json_array_foreach(choices, i, ch) {
        json_t *c[3], *m[3];
        sl_json_pick(ch, choice_names, c);
        json_t *msg = c[0] ? c[0] : c[1];
        if (msg) {
            sl_json_pick(msg, message_names, m);
            append(buf, len, cap, m[0]);
            append(buf, len, cap, m[1]);
            size_t j;
            json_t *tc;
            json_array_foreach(m[2], j, tc)
                append(buf, len, cap, json_object_get(json_object_get(tc, "function"), "arguments"));
        } else {
            append(buf, len, cap, c[2]);
        }
    }
}
