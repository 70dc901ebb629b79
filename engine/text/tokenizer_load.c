/* Loading a Hugging Face tokenizer.json (byte-level BPE) into sl_tokenizer. */
#include "tokenizer_internal.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint next_load_id = 1;

uint64_t sl_tok_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t pair_hash(uint64_t key)
{
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 31);
}

int32_t sl_tok_vocab_find(const sl_tokenizer *tok, const char *s, size_t len)
{
    size_t i = sl_tok_hash(s, len) & tok->vmap_mask;
    for (;; i = (i + 1) & tok->vmap_mask) {
        uint32_t v = tok->vmap[i];
        if (!v)
            return -1;
        int32_t id = (int32_t)v - 1;
        if (tok->tok_len[id] == len && memcmp(tok->arena + tok->tok_off[id], s, len) == 0)
            return id;
    }
}

int sl_tok_merge_find(const sl_tokenizer *tok, int32_t a, int32_t b, int32_t *rank, int32_t *id)
{
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    for (size_t i = pair_hash(key) & tok->mmap_mask;; i = (i + 1) & tok->mmap_mask) {
        const sl_tok_merge *m = &tok->mmap[i];
        if (m->key == key) {
            *rank = m->rank;
            *id = m->id;
            return 1;
        }
        if (!m->key)
            return 0;
    }
}

/* GPT-2's byte-level alphabet: printable bytes stand for themselves, the rest for
 * U+0100 upwards in byte order. */
static int16_t byte_of_unicode[324];
static pthread_once_t byte_table_once = PTHREAD_ONCE_INIT;

static void byte_table_build(void)
{
    int n = 0;
    for (int i = 0; i < 324; i++)
        byte_of_unicode[i] = -1;
    for (int b = 0; b < 256; b++) {
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
            byte_of_unicode[b] = (int16_t)b;
        else
            byte_of_unicode[256 + n++] = (int16_t)b;
    }
}

static int unicode_to_byte(uint32_t cp)
{
    pthread_once(&byte_table_once, byte_table_build);
    return cp < 324 ? byte_of_unicode[cp] : -1;
}

/* Decode one UTF-8 character of s (valid input assumed from jansson); returns its length. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80 || n < 2) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xE0) {
        *cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return 2;
    }
    if (s[0] < 0xF0 && n >= 3) {
        *cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        return 3;
    }
    if (n >= 4) {
        *cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
        return 4;
    }
    *cp = s[0];
    return 1;
}

/* Byte-level string -> raw bytes into out (capacity >= strlen(s)); returns length, or
 * -1 when s holds a character outside the byte-level alphabet. */
static long bytelevel_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += utf8_next((const unsigned char *)s + i, n - i, &cp);
        int b = unicode_to_byte(cp);
        if (b < 0)
            return -1;
        out[o++] = (char)b;
    }
    return (long)o;
}

static int arena_add(sl_tokenizer *tok, const char *s, size_t len, uint32_t *off)
{
    if (tok->arena_len + len > tok->arena_cap) {
        size_t cap = tok->arena_cap ? tok->arena_cap * 2 : 1 << 20;
        while (cap < tok->arena_len + len)
            cap *= 2;
        char *a = realloc(tok->arena, cap);
        if (!a)
            return -1;
        tok->arena = a;
        tok->arena_cap = cap;
    }
    memcpy(tok->arena + tok->arena_len, s, len);
    *off = (uint32_t)tok->arena_len;
    tok->arena_len += len;
    return 0;
}

static size_t pow2_above(size_t n)
{
    size_t c = 16;
    while (c < n * 2)
        c <<= 1;
    return c;
}

static int load_vocab(sl_tokenizer *tok, json_t *vocab, json_t *added, sl_err *err)
{
    int64_t max_id = -1;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX - 1) {
            sl_err_set(err, "model.vocab[\"%s\"] is not a valid token id", key);
            return -1;
        }
        if (json_integer_value(v) > max_id)
            max_id = json_integer_value(v);
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_t *id = json_object_get(v, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX - 1 ||
            !json_is_string(json_object_get(v, "content"))) {
            sl_err_set(err, "added_tokens[%zu] needs an integer id and a string content", i);
            return -1;
        }
        if (json_integer_value(id) > max_id)
            max_id = json_integer_value(id);
    }
    tok->n_vocab = (size_t)(max_id + 1);
    tok->tok_off = calloc(tok->n_vocab, sizeof *tok->tok_off);
    tok->tok_len = calloc(tok->n_vocab, sizeof *tok->tok_len);
    tok->tok_flags = calloc(tok->n_vocab, 1);
    size_t vcap = pow2_above(json_object_size(vocab));
    tok->vmap = calloc(vcap, sizeof *tok->vmap);
    tok->vmap_mask = vcap - 1;
    if (!tok->tok_off || !tok->tok_len || !tok->tok_flags || !tok->vmap)
        goto oom;

    char buf[4096];
    json_object_foreach(vocab, key, v) {
        int32_t id = (int32_t)json_integer_value(v);
        size_t klen = strlen(key);
        long n = klen < sizeof buf ? bytelevel_decode(key, klen, buf) : -1;
        const char *raw = n >= 0 ? buf : key;
        size_t rlen = n >= 0 ? (size_t)n : klen;
        if (arena_add(tok, raw, rlen, &tok->tok_off[id]))
            goto oom;
        tok->tok_len[id] = (uint32_t)rlen;
        tok->tok_flags[id] |= TOK_PRESENT;
        size_t h = sl_tok_hash(raw, rlen) & tok->vmap_mask;
        while (tok->vmap[h])
            h = (h + 1) & tok->vmap_mask;
        tok->vmap[h] = (uint32_t)id + 1;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        tok->byte_id[b] = sl_tok_vocab_find(tok, &c, 1);
        if (tok->byte_id[b] < 0) {
            sl_err_set(err, "model.vocab lacks the byte-level token for byte 0x%02x; only "
                            "byte-level BPE vocabularies are supported", b);
            return -1;
        }
    }

    tok->added = calloc(json_array_size(added) + 1, sizeof *tok->added);
    if (!tok->added)
        goto oom;
    json_array_foreach(added, i, v) {
        int32_t id = (int32_t)json_integer_value(json_object_get(v, "id"));
        const char *s = json_string_value(json_object_get(v, "content"));
        size_t len = json_string_length(json_object_get(v, "content"));
        if (!len)
            continue;
        sl_tok_added *a = &tok->added[tok->n_added++];
        if (arena_add(tok, s, len, &tok->tok_off[id]))
            goto oom;
        tok->tok_len[id] = (uint32_t)len;
        tok->tok_flags[id] |= TOK_PRESENT | TOK_ADDED;
        if (json_is_true(json_object_get(v, "special"))) {
            tok->tok_flags[id] |= TOK_SPECIAL;
            a->special = true;
        }
        a->id = id;
        a->len = (uint32_t)len;
        tok->added_first[(unsigned char)s[0]] = 1;
    }
    /* arena may have moved: point added tokens at it only now */
    for (i = 0; i < tok->n_added; i++)
        tok->added[i].text = tok->arena + tok->tok_off[tok->added[i].id];
    return 0;
oom:
    sl_err_set(err, "out of memory loading the vocabulary");
    return -1;
}

static int cmp_added(const void *a, const void *b)
{
    const sl_tok_added *x = a, *y = b;
    return x->len != y->len ? (x->len < y->len ? 1 : -1) : (x->id > y->id) - (x->id < y->id);
}

static int load_merges(sl_tokenizer *tok, json_t *merges, sl_err *err)
{
    size_t cap = pow2_above(json_array_size(merges));
    tok->mmap = calloc(cap, sizeof *tok->mmap);
    if (!tok->mmap) {
        sl_err_set(err, "out of memory loading merges");
        return -1;
    }
    tok->mmap_mask = cap - 1;
    size_t i;
    json_t *m;
    char a[1024], b[1024], ab[2048];
    json_array_foreach(merges, i, m) {
        const char *sa, *sb;
        size_t la, lb;
        if (json_is_string(m)) {
            const char *s = json_string_value(m), *sp = strchr(s, ' ');
            if (!sp)
                goto bad;
            sa = s;
            la = (size_t)(sp - s);
            sb = sp + 1;
            lb = strlen(sb);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            sa = json_string_value(json_array_get(m, 0));
            la = json_string_length(json_array_get(m, 0));
            sb = json_string_value(json_array_get(m, 1));
            lb = json_string_length(json_array_get(m, 1));
        } else {
            goto bad;
        }
        if (la >= sizeof a || lb >= sizeof b)
            goto bad;
        long na = bytelevel_decode(sa, la, a), nb = bytelevel_decode(sb, lb, b);
        if (na < 0 || nb < 0)
            goto bad;
        int32_t ia = sl_tok_vocab_find(tok, a, (size_t)na), ib = sl_tok_vocab_find(tok, b, (size_t)nb);
        memcpy(ab, a, (size_t)na);
        memcpy(ab + na, b, (size_t)nb);
        int32_t iab = sl_tok_vocab_find(tok, ab, (size_t)(na + nb));
        if (ia < 0 || ib < 0 || iab < 0) {
            sl_err_set(err, "model.merges[%zu] names a token that is not in model.vocab", i);
            return -1;
        }
        uint64_t key = (((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib) + 1;
        size_t h = pair_hash(key) & tok->mmap_mask;
        while (tok->mmap[h].key && tok->mmap[h].key != key)
            h = (h + 1) & tok->mmap_mask;
        if (tok->mmap[h].key)
            continue; /* a repeated merge keeps its first (best) rank */
        tok->mmap[h] = (sl_tok_merge){key, (int32_t)i, iab};
    }
    return 0;
bad:
    sl_err_set(err, "model.merges[%zu] is not a pair of byte-level tokens", i);
    return -1;
}

static int add_split(sl_tokenizer *tok, const char *pattern, sl_err *err)
{
    if (tok->n_split == SL_TOK_MAX_SPLITS) {
        sl_err_set(err, "pre_tokenizer has more than %d Split steps", SL_TOK_MAX_SPLITS);
        return -1;
    }
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!re) {
        char msg[256];
        pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
        sl_err_set(err, "pre_tokenizer regex at offset %zu: %s", (size_t)eo, msg);
        return -1;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT, the interpreter serves */
    tok->split[tok->n_split++] = re;
    return 0;
}

#define GPT2_PATTERN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static int load_pre_tokenizer(sl_tokenizer *tok, json_t *pt, sl_err *err)
{
    if (!pt || json_is_null(pt))
        return 0;
    const char *type = json_string_value(json_object_get(pt, "type"));
    if (!type)
        type = "";
    if (!strcmp(type, "Sequence")) {
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(pt, "pretokenizers"), i, p)
            if (load_pre_tokenizer(tok, p, err))
                return -1;
        return 0;
    }
    if (!strcmp(type, "Split")) {
        const char *re = json_string_value(json_object_get(json_object_get(pt, "pattern"), "Regex"));
        const char *beh = json_string_value(json_object_get(pt, "behavior"));
        if (!re || !beh || strcmp(beh, "Isolated") || json_is_true(json_object_get(pt, "invert"))) {
            sl_err_set(err, "pre_tokenizer Split: only a Regex pattern with behavior Isolated is supported");
            return -1;
        }
        return add_split(tok, re, err);
    }
    if (!strcmp(type, "ByteLevel")) {
        if (json_is_true(json_object_get(pt, "add_prefix_space"))) {
            sl_err_set(err, "pre_tokenizer ByteLevel with add_prefix_space is not supported");
            return -1;
        }
        if (json_is_true(json_object_get(pt, "use_regex")))
            return add_split(tok, GPT2_PATTERN, err);
        return 0;
    }
    sl_err_set(err, "pre_tokenizer type \"%s\" is not supported (byte-level BPE only)", type);
    return -1;
}

static int load_normalizer(sl_tokenizer *tok, json_t *n, sl_err *err)
{
    if (!n || json_is_null(n))
        return 0;
    const char *type = json_string_value(json_object_get(n, "type"));
    if (type && !strcmp(type, "NFC")) {
        tok->nfc = true;
        return 0;
    }
    if (type && !strcmp(type, "Sequence")) {
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(n, "normalizers"), i, p)
            if (load_normalizer(tok, p, err))
                return -1;
        return 0;
    }
    sl_err_set(err, "normalizer type \"%s\" is not supported (NFC only)", type ? type : "?");
    return -1;
}

sl_tokenizer *sl_tokenizer_load(const char *path, sl_err *err)
{
    json_error_t jerr;
    sl_tokenizer *tok = NULL;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        sl_err_set(err, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    tok = calloc(1, sizeof *tok);
    if (!tok) {
        sl_err_set(err, "out of memory");
        goto fail;
    }
    tok->load_id = atomic_fetch_add(&next_load_id, 1);
    json_t *model = json_object_get(root, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    if (!type || strcmp(type, "BPE") || !json_is_object(vocab) || !json_is_array(merges)) {
        sl_err_set(err, "model must be a BPE model with vocab and merges");
        goto fail;
    }
    if (!json_is_array(added))
        added = NULL;
    json_t *empty = json_array();
    int rc = load_vocab(tok, vocab, added ? added : empty, err);
    json_decref(empty);
    if (rc || load_merges(tok, merges, err) || load_normalizer(tok, json_object_get(root, "normalizer"), err) ||
        load_pre_tokenizer(tok, json_object_get(root, "pre_tokenizer"), err))
        goto fail;
    tok->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    qsort(tok->added, tok->n_added, sizeof *tok->added, cmp_added);
    json_decref(root);
    return tok;
fail:
    sl_err_prefix(err, "%s", path);
    json_decref(root);
    sl_tokenizer_free(tok);
    return NULL;
}

void sl_tokenizer_free(sl_tokenizer *tok)
{
    if (!tok)
        return;
    for (size_t i = 0; i < tok->n_split; i++)
        pcre2_code_free(tok->split[i]);
    free(tok->tok_off);
    free(tok->tok_len);
    free(tok->tok_flags);
    free(tok->arena);
    free(tok->vmap);
    free(tok->mmap);
    free(tok->added);
    free(tok);
}

int32_t sl_tokenizer_token_id(const sl_tokenizer *tok, const char *token)
{
    size_t len = strlen(token);
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].len == len && !memcmp(tok->added[i].text, token, len))
            return tok->added[i].id;
    char buf[1024];
    long n = len < sizeof buf ? bytelevel_decode(token, len, buf) : -1;
    return n < 0 ? -1 : sl_tok_vocab_find(tok, buf, (size_t)n);
}

size_t sl_tokenizer_vocab_size(const sl_tokenizer *tok)
{
    return tok->n_vocab;
}

bool sl_tokenizer_is_special(const sl_tokenizer *tok, int32_t id)
{
    return id >= 0 && (size_t)id < tok->n_vocab && (tok->tok_flags[id] & TOK_SPECIAL);
}
