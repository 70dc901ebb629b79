#include "log_fields.h"

#include <stdlib.h>
#include <string.h>

void sl_log_fields_init(sl_log_fields *lf)
{
    lf->f = lf->inline_f;
    lf->n = 0;
    lf->cap = SL_LOG_FIELDS_INLINE;
    lf->keys_used = 0;
    lf->seen = 0;
}

/* A key's bit in lf->seen: its length and first byte, hashed. */
static uint64_t key_bit(const char *key, size_t len)
{
    return (uint64_t)1 << ((len * 7 + (len ? (unsigned char)key[0] : 0)) & 63);
}

/* The access log asks for each of its own keys: most are answered by that bit alone. */
static sl_log_field *find(const sl_log_fields *lf, const char *key, size_t len)
{
    if (!(lf->seen & key_bit(key, len)))
        return NULL;
    for (size_t i = 0; i < lf->n; i++)
        if (lf->f[i].len == len && memcmp(lf->f[i].key, key, len) == 0)
            return &lf->f[i];
    return NULL;
}

json_t *sl_log_fields_getn(const sl_log_fields *lf, const char *key, size_t len)
{
    const sl_log_field *f = find(lf, key, len);
    return f ? f->value : NULL;
}

void sl_log_fields_set(sl_log_fields *lf, const char *key, json_t *value)
{
    if (!value)
        return;
    size_t len = strlen(key);
    sl_log_field *f = find(lf, key, len);
    if (f) {
        json_decref(f->value);
        f->value = value;
        return;
    }
    if (lf->n == lf->cap) {
        size_t cap = lf->cap * 2;
        sl_log_field *nf = lf->f == lf->inline_f ? malloc(cap * sizeof *nf) : realloc(lf->f, cap * sizeof *nf);
        if (!nf) {
            json_decref(value);
            return;
        }
        if (lf->f == lf->inline_f)
            memcpy(nf, lf->inline_f, lf->n * sizeof *nf);
        lf->f = nf;
        lf->cap = cap;
    }
    f = &lf->f[lf->n];
    *f = (sl_log_field){.len = len, .value = value};
    lf->seen |= key_bit(key, len);
    if (lf->keys_used + len + 1 <= sizeof lf->keys) {
        char *k = lf->keys + lf->keys_used;
        memcpy(k, key, len + 1);
        lf->keys_used += len + 1;
        f->key = k;
    } else {
        char *k = malloc(len + 1);
        if (!k) {
            json_decref(value);
            return;
        }
        memcpy(k, key, len + 1);
        f->key = k;
        f->key_owned = true;
    }
    lf->n++;
}

void sl_log_fields_free(sl_log_fields *lf)
{
    for (size_t i = 0; i < lf->n; i++) {
        json_decref(lf->f[i].value);
        if (lf->f[i].key_owned)
            free((char *)lf->f[i].key);
    }
    if (lf->f != lf->inline_f)
        free(lf->f);
    sl_log_fields_init(lf);
}
