/* The cache key: canonical JSON of what decides the response, hashed with SHA-256. Two
 * requests that differ only in key order, whitespace or number spelling share a key. */
#include "cache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

static void put_string(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* Integral numbers print as integers whatever their JSON spelling; others in the shortest
 * %.17g form, which is the same text for the same double. */
static void put_number(FILE *f, double d)
{
    if (d == 0) {
        fputs("0", f);
    } else if (!isfinite(d)) {
        fputs("null", f);
    } else if (d == floor(d) && fabs(d) < 9.2e18) {
        fprintf(f, "%lld", (long long)d);
    } else {
        char buf[40];
        for (int prec = 15; prec <= 17; prec++) { /* shortest that reads back exactly */
            snprintf(buf, sizeof buf, "%.*g", prec, d);
            if (strtod(buf, NULL) == d)
                break;
        }
        fputs(buf, f);
    }
}

static int cmp_keys(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int put_value(FILE *f, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        if (!keys)
            return -1;
        const char *k;
        json_t *item;
        json_object_foreach((json_t *)v, k, item) keys[i++] = k;
        qsort(keys, n, sizeof *keys, cmp_keys);
        fputc('{', f);
        int rc = 0;
        for (i = 0; i < n && rc == 0; i++) {
            if (i)
                fputc(',', f);
            put_string(f, keys[i], strlen(keys[i]));
            fputc(':', f);
            rc = put_value(f, json_object_get(v, keys[i]));
        }
        fputc('}', f);
        free(keys);
        return rc;
    }
    case JSON_ARRAY:
        fputc('[', f);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                fputc(',', f);
            if (put_value(f, json_array_get(v, i)) < 0)
                return -1;
        }
        fputc(']', f);
        return 0;
    case JSON_STRING:
        put_string(f, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        fprintf(f, "%lld", (long long)json_integer_value(v));
        return 0;
    case JSON_REAL:
        put_number(f, json_real_value(v));
        return 0;
    case JSON_TRUE:
        fputs("true", f);
        return 0;
    case JSON_FALSE:
        fputs("false", f);
        return 0;
    case JSON_NULL:
        fputs("null", f);
        return 0;
    }
    return -1;
}

char *sl_cache_canonical(const json_t *v)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    int rc = put_value(f, v);
    if (fclose(f) != 0 || rc < 0) {
        free(out);
        return NULL;
    }
    return out;
}

bool sl_cache_field_ignored(const char *name)
{
    /* stream/stream_options: a streamed and a non-streamed request share an entry; model is
     * replaced by the client-facing name; the rest are labels that do not change the text. */
    static const char *const ignored[] = {"stream", "stream_options", "model", "user", "metadata", "store", NULL};
    for (size_t i = 0; ignored[i]; i++)
        if (strcmp(name, ignored[i]) == 0)
            return true;
    return false;
}

static const char *endpoint_name(sl_endpoint ep)
{
    switch (ep) {
    case SL_EP_CHAT: return "chat.completions";
    case SL_EP_COMPLETIONS: return "completions";
    case SL_EP_EMBEDDINGS: return "embeddings";
    default: return "other";
    }
}

int sl_cache_key(const json_t *body, const char *model, sl_endpoint ep, const char *consumer, char hex[65],
                 sl_err *err)
{
    json_t *req = json_object(), *top = NULL;
    char *text = NULL;
    int rc = -1;
    const char *why = "out of memory building the key";
    if (!req)
        goto fail;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v) {
        if (!sl_cache_field_ignored(k) && json_object_set(req, k, v) < 0)
            goto fail;
    }
    top = json_pack("{s:s, s:s?, s:s?, s:O}", "endpoint", endpoint_name(ep), "model", model, "consumer", consumer,
                    "request", req);
    if (!top || !(text = sl_cache_canonical(top)))
        goto fail;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(text, strlen(text), md, &md_len, EVP_sha256(), NULL) || md_len != 32) {
        why = "SHA-256 failed (OpenSSL)";
        goto fail;
    }
    for (unsigned i = 0; i < md_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    rc = 0;
fail:
    if (rc < 0)
        sl_err_set(err, "cache: %s", why);
    free(text);
    json_decref(top);
    json_decref(req);
    return rc;
}
