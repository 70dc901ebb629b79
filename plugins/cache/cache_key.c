/* The cache key: canonical JSON of what decides the response, hashed with SHA-256. Two
 * requests that differ only in key order, whitespace or number spelling share a key. */
#include "cache.h"
#include "fmt_int.h"
#include "json_plain.h"
#include "json_view.h"
#include "strbuf.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

/* Where canonical text goes: a 4 KiB buffer handed to sink() whenever it fills (a
 * growing string, or SHA-256 directly, so that a key needs no copy of the request). */
typedef struct canon_out {
    char buf[4096];
    size_t n;
    int (*sink)(struct canon_out *o, const char *data, size_t len);
    void *arg;
    int failed;
} canon_out;

/* Not an initializer: that would clear the 4 KiB buffer at every key. */
static void out_init(canon_out *o, int (*sink)(canon_out *, const char *, size_t), void *arg)
{
    o->n = 0;
    o->sink = sink;
    o->arg = arg;
    o->failed = 0;
}

static void out_flush(canon_out *o)
{
    if (o->n && !o->failed && o->sink(o, o->buf, o->n) < 0)
        o->failed = 1;
    o->n = 0;
}

static void out_bytes(canon_out *o, const char *s, size_t len)
{
    while (len) {
        if (o->n == sizeof o->buf)
            out_flush(o);
        size_t k = sizeof o->buf - o->n < len ? sizeof o->buf - o->n : len;
        memcpy(o->buf + o->n, s, k);
        o->n += k;
        s += k;
        len -= k;
    }
}

static void out_char(canon_out *o, char c)
{
    if (o->n == sizeof o->buf)
        out_flush(o);
    o->buf[o->n++] = c;
}

static void out_str(canon_out *o, const char *s) { out_bytes(o, s, strlen(s)); }

static void put_string(canon_out *o, const char *s, size_t len)
{
    out_char(o, '"');
    size_t run = 0; /* bytes that need no escape, written in one go */
    for (size_t i = 0; i < len; i++) {
        i += sl_json_plain_run(s + i, len - i, true);
        if (i == len)
            break;
        unsigned char c = (unsigned char)s[i];
        out_bytes(o, s + run, i - run);
        run = i + 1;
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else
            snprintf(esc, sizeof esc, "\\u%04x", c);
        out_str(o, esc);
    }
    out_bytes(o, s + run, len - run);
    out_char(o, '"');
}

/* Integral numbers print as integers whatever their JSON spelling; others in the shortest
 * %.17g form, which is the same text for the same double. */
static void put_number(canon_out *o, double d)
{
    char buf[40];
    if (d == 0) {
        out_char(o, '0');
        return;
    }
    if (!isfinite(d)) {
        out_str(o, "null");
        return;
    }
    if (d == floor(d) && fabs(d) < 9.2e18) {
        sl_fmt_int(buf, (long long)d);
    } else {
        for (int prec = 15; prec <= 17; prec++) { /* shortest that reads back exactly */
            snprintf(buf, sizeof buf, "%.*g", prec, d);
            if (strtod(buf, NULL) == d)
                break;
        }
    }
    out_str(o, buf);
}

/* One member of an object being written, sorted by key: its value a tree's or a view's token
 * (gateway/json_view.h). Keys hold no NUL (neither jansson nor the view reads one), so
 * memcmp and then length sort them as strcmp would. */
typedef struct member {
    const char *key;
    size_t len;
    const json_t *tree;
    uint32_t tok;
} member;

static int cmp_keys(const member *a, const member *b)
{
    int c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int cmp_members(const void *a, const void *b) { return cmp_keys(a, b); }

/* Requests' objects are small: an insertion sort on the stack beats qsort's setup. */
static void sort_members(member *m, size_t n)
{
    if (n > 16) {
        qsort(m, n, sizeof *m, cmp_members);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        member x = m[i];
        size_t j = i;
        for (; j > 0 && cmp_keys(&m[j - 1], &x) > 0; j--)
            m[j] = m[j - 1];
        m[j] = x;
    }
}

static int put_value(canon_out *o, const json_t *v);

/* The object's members that skip() lets through (skip may be NULL), sorted by key. */
static int put_view_value(canon_out *o, const sl_jview *v, uint32_t i);

/* The members of a tree's object v, or (v NULL) of view object token obj, that skip() lets
 * through (skip may be NULL), sorted by key. */
static int put_members(canon_out *o, const json_t *v, const sl_jview *view, uint32_t obj,
                       bool (*skip)(const char *, size_t))
{
    member small[16], *m = small;
    size_t n = v ? json_object_size(v) : view->tok[obj].size, i = 0;
    if (n > sizeof small / sizeof small[0] && !(m = malloc(n * sizeof *m)))
        return -1;
    if (v) {
        for (void *it = json_object_iter((json_t *)v); it && i < n; it = json_object_iter_next((json_t *)v, it)) {
            member x = {json_object_iter_key(it), json_object_iter_key_len(it), json_object_iter_value(it), 0};
            if (!skip || !skip(x.key, x.len))
                m[i++] = x;
        }
    } else {
        uint32_t k = obj + 1;
        for (size_t j = 0; j < n; j++, k = view->tok[k + 1].next) {
            member x = {NULL, 0, NULL, k + 1};
            x.key = sl_jview_str(view, (int)k, &x.len);
            if (!skip || !skip(x.key, x.len))
                m[i++] = x;
        }
    }
    sort_members(m, i);
    out_char(o, '{');
    int rc = 0;
    for (size_t j = 0; j < i && rc == 0; j++) {
        if (j)
            out_char(o, ',');
        put_string(o, m[j].key, m[j].len);
        out_char(o, ':');
        rc = v ? put_value(o, m[j].tree) : put_view_value(o, view, m[j].tok);
    }
    out_char(o, '}');
    if (m != small)
        free(m);
    return rc;
}

static int put_value(canon_out *o, const json_t *v)
{
    char buf[32];
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return put_members(o, v, NULL, 0, NULL);
    case JSON_ARRAY:
        out_char(o, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                out_char(o, ',');
            if (put_value(o, json_array_get(v, i)) < 0)
                return -1;
        }
        out_char(o, ']');
        return 0;
    case JSON_STRING:
        put_string(o, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        sl_fmt_int(buf, (long long)json_integer_value(v));
        out_str(o, buf);
        return 0;
    case JSON_REAL:
        put_number(o, json_real_value(v));
        return 0;
    case JSON_TRUE:
        out_str(o, "true");
        return 0;
    case JSON_FALSE:
        out_str(o, "false");
        return 0;
    case JSON_NULL:
        out_str(o, "null");
        return 0;
    }
    return -1;
}

/* The same canonical text, of a view's tokens (gateway/json_view.h). */
static int put_view_value(canon_out *o, const sl_jview *v, uint32_t i)
{
    const sl_jv_tok *t = &v->tok[i];
    char buf[SL_FMT_INT_MAX];
    size_t n;
    long long x;
    double d;
    switch (t->type) {
    case SL_JV_OBJECT:
        return put_members(o, NULL, v, i, NULL);
    case SL_JV_ARRAY:
        out_char(o, '[');
        for (uint32_t j = 0, k = i + 1; j < t->size; j++, k = v->tok[k].next) {
            if (j)
                out_char(o, ',');
            if (put_view_value(o, v, k) < 0)
                return -1;
        }
        out_char(o, ']');
        return 0;
    case SL_JV_STRING: {
        const char *s = sl_jview_str(v, (int)i, &n);
        put_string(o, s, n);
        return 0;
    }
    case SL_JV_INTEGER:
        sl_jview_int(v, (int)i, &x);
        out_bytes(o, buf, sl_fmt_int(buf, x));
        return 0;
    case SL_JV_REAL:
        sl_jview_number(v, (int)i, &d);
        put_number(o, d);
        return 0;
    case SL_JV_TRUE:
        out_str(o, "true");
        return 0;
    case SL_JV_FALSE:
        out_str(o, "false");
        return 0;
    case SL_JV_NULL:
        out_str(o, "null");
        return 0;
    }
    return -1;
}

static int sink_string(canon_out *o, const char *data, size_t len) { return sl_strbuf_add(o->arg, data, len); }

char *sl_cache_canonical(const json_t *v)
{
    sl_strbuf g = {0};
    canon_out o;
    out_init(&o, sink_string, &g);
    int rc = put_value(&o, v);
    out_flush(&o);
    if (rc < 0 || o.failed || (!g.s && sink_string(&o, "", 0) < 0)) {
        free(g.s);
        return NULL;
    }
    return g.s;
}

#define IS(lit) (n == sizeof(lit) - 1 && memcmp(name, lit, n) == 0)
static bool field_ignored(const char *name, size_t n)
{
    /* stream/stream_options: a streamed and a non-streamed request share an entry; model is
     * replaced by the client-facing name; the rest are labels that do not change the text. */
    switch (n ? name[0] : 0) {
    case 's': return IS("stream") || IS("stream_options") || IS("store");
    case 'm': return IS("model") || IS("metadata");
    case 'u': return IS("user");
    default: return false;
    }
}
#undef IS

bool sl_cache_field_ignored(const char *name) { return field_ignored(name, strlen(name)); }

static const char *endpoint_name(sl_endpoint ep)
{
    switch (ep) {
    case SL_EP_CHAT: return "chat.completions";
    case SL_EP_COMPLETIONS: return "completions";
    case SL_EP_EMBEDDINGS: return "embeddings";
    default: return "other";
    }
}

static int sink_digest(canon_out *o, const char *data, size_t len)
{
    return EVP_DigestUpdate(o->arg, data, len) ? 0 : -1;
}

/* SHA-256 fetched from the provider once: EVP_sha256() in a DigestInit fetches it again at
 * every call (OpenSSL 3), a cost seen in the gateway benchmark's profile. Each thread also
 * keeps one digest context that every key re-initialises, instead of a new one a key. */
static EVP_MD *sha256_fetched;
static pthread_key_t md_ctx_key;
static void md_ctx_free(void *ctx) { EVP_MD_CTX_free(ctx); }
static void digest_setup(void)
{
    sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pthread_key_create(&md_ctx_key, md_ctx_free) != 0) {
        EVP_MD_free(sha256_fetched);
        sha256_fetched = NULL;
    }
}

/* This thread's context, initialised for SHA-256; NULL on failure. */
static EVP_MD_CTX *sha256_start(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, digest_setup);
    if (!sha256_fetched)
        return NULL;
    EVP_MD_CTX *ctx = pthread_getspecific(md_ctx_key);
    if (!ctx) {
        if (!(ctx = EVP_MD_CTX_new()))
            return NULL;
        if (pthread_setspecific(md_ctx_key, ctx) != 0) {
            EVP_MD_CTX_free(ctx);
            return NULL;
        }
    }
    return EVP_DigestInit_ex(ctx, sha256_fetched, NULL) ? ctx : NULL;
}

/* SHA-256 of the canonical text of {"consumer", "endpoint", "model", "request": the body
 * without its ignored fields}, written straight into the digest. The body is a tree, or
 * (body NULL) view v's top-level object. */
static int key_of(const json_t *body, const sl_jview *v, const char *model, sl_endpoint ep, const char *consumer,
                  char hex[65], sl_err *err)
{
    EVP_MD_CTX *md_ctx = sha256_start();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!md_ctx) {
        sl_err_set(err, "cache: SHA-256 failed (OpenSSL)");
        return -1;
    }
    canon_out out, *o = &out;
    out_init(o, sink_digest, md_ctx);
    /* absent consumer or model: null (the key's form since the first release) */
    out_str(o, "{\"consumer\":");
    if (consumer)
        put_string(o, consumer, strlen(consumer));
    else
        out_str(o, "null");
    out_str(o, ",\"endpoint\":");
    put_string(o, endpoint_name(ep), strlen(endpoint_name(ep)));
    out_str(o, ",\"model\":");
    if (model)
        put_string(o, model, strlen(model));
    else
        out_str(o, "null");
    out_str(o, ",\"request\":");
    int rc = 0;
    if (!body && v && v->n && v->tok[0].type == SL_JV_OBJECT)
        rc = put_members(o, NULL, v, 0, field_ignored);
    else if (json_is_object(body))
        rc = put_members(o, body, NULL, 0, field_ignored);
    else
        out_str(o, "{}");
    out_char(o, '}');
    out_flush(o);
    if (o->failed)
        rc = -1;
    if (rc == 0 && (!EVP_DigestFinal_ex(md_ctx, md, &md_len) || md_len != 32))
        rc = -1;
    if (rc < 0) {
        sl_err_set(err, "cache: could not build or hash the key (out of memory, or OpenSSL failed)");
        return -1;
    }
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < md_len; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = 0;
    return 0;
}

int sl_cache_key(const json_t *body, const char *model, sl_endpoint ep, const char *consumer, char hex[65],
                 sl_err *err)
{
    return key_of(body, NULL, model, ep, consumer, hex, err);
}

int sl_cache_key_view(const sl_jview *v, const char *model, sl_endpoint ep, const char *consumer, char hex[65],
                      sl_err *err)
{
    return key_of(NULL, v, model, ep, consumer, hex, err);
}
