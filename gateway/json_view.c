#include "json_view.h"
#include "json_parse.h"
#include "json_plain.h"

#include <emmintrin.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_NUMBER 40 /* a longer number (or one with an exponent) is left to jansson's range checks */

/* Out of line: the hot paths that push tokens stay small. */
static __attribute__((noinline)) int grow(sl_jview *v)
{
    uint32_t cap = v->cap ? v->cap * 2 : 64;
    sl_jv_tok *t = realloc(v->tok, (size_t)cap * sizeof *t);
    if (!t)
        return -1;
    v->tok = t;
    v->cap = cap;
    return 0;
}

static inline int push(sl_jview *v, sl_jv_type type, const char *at)
{
    if (__builtin_expect(v->n == v->cap, 0) && grow(v) < 0)
        return -1;
    sl_jv_tok *t = &v->tok[v->n];
    t->type = (uint8_t)type;
    t->escaped = false;
    t->start = (uint32_t)(at - v->text);
    t->size = 0;
    return (int)v->n++;
}

static int keep_decoded(sl_jview *v, const char *s, size_t n, uint32_t *at)
{
    *at = (uint32_t)v->dec.len;
    return sl_strbuf_add(&v->dec, s, n);
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* A string with an escape or a byte past ASCII (or not a string), read as read_string does. */
static __attribute__((noinline)) const char *read_decoded(sl_jview *v, const char *p, const char *end)
{
    const char *body = p + 1, *s = body, *after;
    size_t n = 0;
    if (!(after = sl_json_string_at(body, end, &s, &n, &v->scratch, &v->cap_scratch)))
        return NULL;
    int t = push(v, SL_JV_STRING, p);
    if (t < 0)
        return NULL;
    sl_jv_tok *tok = &v->tok[t];
    tok->end = (uint32_t)(after - v->text);
    tok->next = (uint32_t)t + 1;
    tok->size = (uint32_t)n;
    if (s != body) {
        tok->escaped = true;
        if (keep_decoded(v, s, n, &tok->dec) < 0)
            return NULL;
    }
    return after;
}

/* The string at p (its opening quote) as a token; past it, or NULL. */
static inline __attribute__((always_inline)) const char *read_string(sl_jview *v, const char *p, const char *end)
{
    const char *body = p + 1;
    size_t n = sl_json_plain_run(body, (size_t)(end - body), false);
    if (__builtin_expect(body + n >= end || body[n] != '"', 0)) /* an escape, past ASCII, no end: rare */
        return read_decoded(v, p, end);
    int t = push(v, SL_JV_STRING, p);
    if (t < 0)
        return NULL;
    sl_jv_tok *tok = &v->tok[t];
    tok->end = (uint32_t)(body + n + 1 - v->text);
    tok->next = (uint32_t)t + 1;
    tok->size = (uint32_t)n;
    return body + n + 1;
}

static const char *literal(const char *p, const char *end, const char *word, size_t n)
{
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

/* A number or a literal at p; past it, or NULL. What follows it is checked by the caller. */
static const char *read_scalar(sl_jview *v, const char *p, const char *end)
{
    const char *q = p;
    sl_jv_type type = SL_JV_INTEGER;
    switch (*p) {
    case 't': q = literal(p, end, "true", 4), type = SL_JV_TRUE; break;
    case 'f': q = literal(p, end, "false", 5), type = SL_JV_FALSE; break;
    case 'n': q = literal(p, end, "null", 4), type = SL_JV_NULL; break;
    default:
        if (*q == '-')
            q++;
        if (q >= end || *q < '0' || *q > '9')
            return NULL;
        if (*q == '0')
            q++;
        else
            while (q < end && *q >= '0' && *q <= '9')
                q++;
        if (q < end && *q == '.') {
            type = SL_JV_REAL;
            if (++q >= end || *q < '0' || *q > '9')
                return NULL;
            while (q < end && *q >= '0' && *q <= '9')
                q++;
        }
        /* "01", an exponent, 19 digits or more: jansson's to read (or refuse) */
        if ((q < end && ((*q >= '0' && *q <= '9') || *q == 'e' || *q == 'E')) ||
            (size_t)(q - p) > (type == SL_JV_INTEGER ? 19 : MAX_NUMBER) ||
            (type == SL_JV_INTEGER && (size_t)(q - p) - (*p == '-') > 18))
            return NULL;
    }
    if (!q)
        return NULL;
    int t = push(v, type, p);
    if (t < 0)
        return NULL;
    v->tok[t].end = (uint32_t)(q - v->text);
    v->tok[t].next = (uint32_t)t + 1;
    return q;
}

int sl_jview_read(sl_jview *v, const char *text, size_t len)
{
    v->text = text;
    v->len = len;
    v->n = 0;
    v->dec.len = 0;
    if (!text || len >= UINT32_MAX)
        return -1;
    const char *p = skip_ws(text, text + len), *end = text + len;
    uint32_t open[MAX_DEPTH];
    int depth = 0;
    if (p >= end || (*p != '{' && *p != '['))
        return -1;
    for (;;) {
        /* a value at p */
        p = skip_ws(p, end);
        if (p >= end)
            return -1;
        if (*p == '{' || *p == '[') {
            int t = depth < MAX_DEPTH ? push(v, *p == '{' ? SL_JV_OBJECT : SL_JV_ARRAY, p) : -1;
            if (t < 0)
                return -1;
            open[depth++] = (uint32_t)t;
            p = skip_ws(p + 1, end);
            if (p < end && (*p == '}' || *p == ']')) {
                if ((*p == '}') != (v->tok[t].type == SL_JV_OBJECT))
                    return -1;
                p++;
                v->tok[t].end = (uint32_t)(p - text);
                v->tok[t].next = v->n;
                depth--;
            } else if (v->tok[t].type == SL_JV_OBJECT) {
                goto key;
            } else {
                continue;
            }
        } else if (!(p = *p == '"' ? read_string(v, p, end) : read_scalar(v, p, end))) {
            return -1;
        }
        /* after a value: the next one, or the ends of the containers it closes */
        for (;;) {
            p = skip_ws(p, end);
            if (depth == 0)
                return p == end ? 0 : -1;
            sl_jv_tok *c = &v->tok[open[depth - 1]];
            c->size++;
            if (p >= end)
                return -1;
            bool obj = c->type == SL_JV_OBJECT;
            if (*p == ',') {
                p++;
                break;
            }
            if (*p != (obj ? '}' : ']'))
                return -1;
            p++;
            c->end = (uint32_t)(p - text);
            c->next = v->n;
            depth--;
        }
        if (v->tok[open[depth - 1]].type != SL_JV_OBJECT)
            continue;
    key:
        p = skip_ws(p, end);
        if (p >= end || *p != '"' || !(p = read_string(v, p, end)))
            return -1;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return -1;
        p++;
    }
}

/* The first byte at which a and b (n bytes each) differ, or n. */
static size_t first_difference(const char *a, const char *b, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(a + i));
        __m128i y = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
        unsigned same = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, y));
        if (same != 0xFFFF)
            return i + (size_t)__builtin_ctz(~same);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            return i + (size_t)__builtin_ctzll(x ^ y) / 8; /* little-endian: the lowest byte first */
    }
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* The last token that starts before byte d (tokens are in document order; token 0 does).
 * Halving without branches: where d falls follows no pattern the predictor could learn. */
static uint32_t token_before(const sl_jview *v, size_t d)
{
    const sl_jv_tok *b = v->tok;
    for (uint32_t n = v->n; n > 1; n -= n / 2)
        b = b[n / 2].start < d ? b + n / 2 : b;
    return (uint32_t)(b - v->tok);
}

int sl_jview_read_again(sl_jview *v, const char *text, size_t len)
{
    const char *old = v->text;
    size_t old_len = v->len;
    if (!old || !text || v->n == 0 || v->dec.len > 4096 || len >= UINT32_MAX) /* decoded bytes pile up */
        return sl_jview_read(v, text, len);
    size_t m = old_len < len ? old_len : len, from = 0;
    uint32_t h = v->moved; /* the same string as last time differs, most likely: all before it is the same */
    bool hinted = h < v->n && v->tok[h].type == SL_JV_STRING && v->tok[h].start < m &&
                  memcmp(old, text, v->tok[h].start + 1) == 0;
    if (hinted)
        from = v->tok[h].start + 1;
    size_t d = from + first_difference(old + from, text + from, m - from);
    if (d == old_len && d == len) {
        v->text = text;
        return 1;
    }
    if (d <= v->tok[0].start)
        return sl_jview_read(v, text, len);
    uint32_t i = hinted && d < v->tok[h].end ? h : token_before(v, d);
    sl_jv_tok *t = &v->tok[i];
    if (t->type != SL_JV_STRING || d >= t->end)
        return sl_jview_read(v, text, len);
    const char *q = skip_ws(old + t->end, old + old_len);
    if (q < old + old_len && *q == ':') /* a key: the members are others now */
        return sl_jview_read(v, text, len);
    const char *body = text + t->start + 1, *s = body, *after;
    size_t n = 0;
    if (!(after = sl_json_string_at(body, text + len, &s, &n, &v->scratch, &v->cap_scratch)))
        return sl_jview_read(v, text, len);
    size_t end = (size_t)(after - text);
    if (len - end != old_len - t->end || memcmp(after, old + t->end, len - end) != 0)
        return sl_jview_read(v, text, len);
    if (sl_jview_string_replaced(v, (int)i, text, len, end - t->start, s, n, s != body) < 0)
        return sl_jview_read(v, text, len);
    v->moved = i;
    return 1;
}

void sl_jview_free(sl_jview *v)
{
    free(v->tok);
    free(v->dec.s);
    free(v->scratch);
    *v = (sl_jview){0};
}

const char *sl_jview_str(const sl_jview *v, int i, size_t *len)
{
    if (i < 0 || v->tok[i].type != SL_JV_STRING)
        return NULL;
    const sl_jv_tok *t = &v->tok[i];
    *len = t->size;
    return t->escaped ? v->dec.s + t->dec : v->text + t->start + 1;
}

int sl_jview_getn(const sl_jview *v, int obj, const char *key, size_t kl)
{
    if (obj < 0 || v->tok[obj].type != SL_JV_OBJECT)
        return -1;
    int found = -1;
    uint32_t k = (uint32_t)obj + 1;
    for (uint32_t m = 0; m < v->tok[obj].size; m++) {
        const sl_jv_tok *t = &v->tok[k];
        if (t->size == kl) {
            /* keys are short: a byte loop beats a call to memcmp */
            const char *s = t->escaped ? v->dec.s + t->dec : v->text + t->start + 1;
            size_t j = 0;
            while (j < kl && s[j] == key[j])
                j++;
            if (j == kl)
                found = (int)k + 1;
        }
        k = v->tok[k + 1].next;
    }
    return found;
}

static inline uint32_t head4(const char *s)
{
    uint32_t h;
    memcpy(&h, s, 4);
    return h;
}

int sl_jkeys_init(sl_jkeys *ks, const sl_jkey *keys, int n)
{
    memset(ks, 0, sizeof *ks);
    if (n < 0 || n > SL_JKEYS_MAX)
        return -1;
    for (int j = 0; j < n; j++) {
        ks->key[j] = keys[j];
        ks->lens |= keys[j].len < 64 ? (uint64_t)1 << keys[j].len : 0; /* a longer one is never found */
        ks->head[j] = keys[j].len >= 4 ? head4(keys[j].s) : 0;
    }
    ks->n = n;
    return 0;
}

/* Not a memset call for a few ints (GCC makes the fill loop one). */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void sl_jview_members_of(const sl_jview *v, int obj,
                                                                                    const sl_jkeys *ks, int *out)
{
    for (int j = 0; j < ks->n; j++)
        out[j] = -1;
    if (obj < 0 || v->tok[obj].type != SL_JV_OBJECT)
        return;
    uint64_t lens = ks->lens; /* most members are passed over on their length */
    uint32_t k = (uint32_t)obj + 1;
    for (uint32_t m = 0; m < v->tok[obj].size; m++, k = v->tok[k + 1].next) {
        const sl_jv_tok *t = &v->tok[k];
        if (t->size >= 64 || !(lens >> t->size & 1))
            continue;
        const char *s = t->escaped ? v->dec.s + t->dec : v->text + t->start + 1;
        size_t from = t->size >= 4 ? 4 : 0; /* the first four bytes compared as one word */
        uint32_t head = from ? head4(s) : 0;
        for (int j = 0; j < ks->n; j++) {
            if (t->size != ks->key[j].len || head != ks->head[j])
                continue;
            size_t i = from;
            while (i < ks->key[j].len && s[i] == ks->key[j].s[i])
                i++;
            if (i == ks->key[j].len) {
                out[j] = (int)k + 1;
                break;
            }
        }
    }
}

void sl_jview_members(const sl_jview *v, int obj, const sl_jkey *keys, int n, int *out)
{
    sl_jkeys ks;
    for (int at = 0; at < n; at += SL_JKEYS_MAX) { /* a long list: in sets of SL_JKEYS_MAX */
        sl_jkeys_init(&ks, keys + at, n - at < SL_JKEYS_MAX ? n - at : SL_JKEYS_MAX);
        sl_jview_members_of(v, obj, &ks, out + at);
    }
}

int sl_jview_item(const sl_jview *v, int arr, size_t i)
{
    if (arr < 0 || v->tok[arr].type != SL_JV_ARRAY || i >= v->tok[arr].size)
        return -1;
    uint32_t k = (uint32_t)arr + 1;
    while (i--)
        k = v->tok[k].next;
    return (int)k;
}

bool sl_jview_int(const sl_jview *v, int i, long long *out)
{
    if (i < 0 || v->tok[i].type != SL_JV_INTEGER)
        return false;
    const char *p = v->text + v->tok[i].start, *end = v->text + v->tok[i].end;
    bool neg = *p == '-';
    long long x = 0;
    for (p += neg; p < end; p++)
        x = x * 10 + (*p - '0');
    *out = neg ? -x : x;
    return true;
}

bool sl_jview_number(const sl_jview *v, int i, double *out)
{
    long long x;
    if (sl_jview_int(v, i, &x)) {
        *out = (double)x;
        return true;
    }
    if (i < 0 || v->tok[i].type != SL_JV_REAL)
        return false;
    char buf[MAX_NUMBER + 1]; /* the view reads reals of at most MAX_NUMBER bytes */
    size_t len = v->tok[i].end - v->tok[i].start;
    memcpy(buf, v->text + v->tok[i].start, len);
    buf[len] = 0;
    *out = strtod(buf, NULL);
    return true;
}

#define UNIQUE_MAX 64

int sl_jview_keys_unique(const sl_jview *v)
{
    for (uint32_t o = 0; o < v->n; o++) {
        if (v->tok[o].type != SL_JV_OBJECT || v->tok[o].size < 2)
            continue;
        if (v->tok[o].size > UNIQUE_MAX)
            return 0;
        /* members are few: each key against those before it, by length first */
        const char *s[UNIQUE_MAX];
        uint32_t len[UNIQUE_MAX];
        uint32_t k = o + 1;
        for (uint32_t m = 0; m < v->tok[o].size; m++, k = v->tok[k + 1].next) {
            size_t n;
            s[m] = sl_jview_str(v, (int)k, &n);
            len[m] = (uint32_t)n;
            for (uint32_t j = 0; j < m; j++)
                if (len[j] == len[m] && memcmp(s[j], s[m], n) == 0)
                    return 0;
        }
    }
    return 1;
}

bool sl_jview_has_real(const sl_jview *v, int i)
{
    if (i < 0)
        return false;
    for (uint32_t k = (uint32_t)i, end = v->tok[i].next; k < end; k++)
        if (v->tok[k].type == SL_JV_REAL)
            return true;
    return false;
}

int sl_jview_string_replaced(sl_jview *v, int i, const char *text, size_t text_len, size_t new_len,
                             const char *s, size_t len, bool has_escape)
{
    sl_jv_tok *t = &v->tok[i];
    uint32_t old_end = t->end;
    uint32_t delta = (uint32_t)new_len - (t->end - t->start); /* modulo 2^32: a shift either way */
    /* tokens are in document order: before i, only what holds i ends past it; after i
     * (a string holds nothing), everything is past it */
    for (uint32_t j = 0; j < (uint32_t)i; j++) /* no branch: which ones hold i follows no pattern */
        v->tok[j].end += delta & -(uint32_t)(v->tok[j].end >= old_end);
    t->end += delta;
    for (uint32_t j = (uint32_t)i + 1; j < v->n; j++) {
        v->tok[j].start += delta;
        v->tok[j].end += delta;
    }
    v->text = text;
    v->len = text_len;
    t->size = (uint32_t)len;
    t->escaped = has_escape;
    return has_escape ? keep_decoded(v, s, len, &t->dec) : 0;
}

int sl_jview_member_added(sl_jview *v, int obj, const char *text, size_t text_len, sl_jv_span k, const char *key,
                          size_t kl, sl_jv_span val, const char *s, size_t len)
{
    if (v->n + 2 > v->cap && (grow(v) < 0 || (v->n + 2 > v->cap && grow(v) < 0)))
        return -1;
    uint32_t p = v->tok[obj].next; /* the new key's place: after obj's last member */
    uint32_t at = (uint32_t)k.start - (v->tok[obj].size > 0), added = (uint32_t)(val.end - at);
    memmove(&v->tok[p + 2], &v->tok[p], (size_t)(v->n - p) * sizeof *v->tok);
    v->n += 2;
    for (uint32_t j = 0; j < v->n; j++) {
        if (j == p) {
            j++;
            continue;
        }
        sl_jv_tok *t = &v->tok[j];
        /* obj and what holds it end after the new member; what obj holds ends before it */
        if (t->next > p || (t->next == p && j <= (uint32_t)obj))
            t->next += 2;
        if (t->start >= at)
            t->start += added;
        if (t->end > at)
            t->end += added;
    }
    v->tok[obj].size++;
    v->text = text;
    v->len = text_len;
    const sl_jv_span span[2] = {k, val};
    const char *str[2] = {key, s};
    size_t n[2] = {kl, len};
    for (int i = 0; i < 2; i++) {
        sl_jv_tok *t = &v->tok[p + (uint32_t)i];
        *t = (sl_jv_tok){.type = SL_JV_STRING, .start = (uint32_t)span[i].start, .end = (uint32_t)span[i].end,
                         .next = p + (uint32_t)i + 1, .size = (uint32_t)n[i]};
        t->escaped = span[i].end - span[i].start != n[i] + 2;
        if (t->escaped && keep_decoded(v, str[i], n[i], &t->dec) < 0)
            return -1;
    }
    return 0;
}

json_t *sl_jview_json(const sl_jview *v, int i)
{
    if (i < 0)
        return NULL;
    const sl_jv_tok *t = &v->tok[i];
    size_t n;
    long long x;
    switch (t->type) {
    case SL_JV_OBJECT: {
        json_t *o = json_object();
        uint32_t k = (uint32_t)i + 1;
        for (uint32_t m = 0; o && m < t->size; m++, k = v->tok[k + 1].next) {
            const char *key = sl_jview_str(v, (int)k, &n);
            if (json_object_setn_new_nocheck(o, key, n, sl_jview_json(v, (int)k + 1)) < 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    case SL_JV_ARRAY: {
        json_t *a = json_array();
        for (uint32_t m = 0, k = (uint32_t)i + 1; a && m < t->size; m++, k = v->tok[k].next)
            if (json_array_append_new(a, sl_jview_json(v, (int)k)) < 0) {
                json_decref(a);
                return NULL;
            }
        return a;
    }
    case SL_JV_STRING: {
        const char *s = sl_jview_str(v, i, &n);
        return json_stringn_nocheck(s, n);
    }
    case SL_JV_INTEGER: return sl_jview_int(v, i, &x) ? json_integer(x) : NULL;
    case SL_JV_TRUE: return json_true();
    case SL_JV_FALSE: return json_false();
    case SL_JV_NULL: return json_null();
    default: break;
    }
    /* a real, read as jansson reads it: alone it is not a JSON text to jansson, so in an array */
    char buf[MAX_NUMBER + 3];
    size_t len = t->end - t->start;
    buf[0] = '[';
    memcpy(buf + 1, v->text + t->start, len);
    buf[len + 1] = ']';
    json_t *arr = sl_json_loadb(buf, len + 2, 0, NULL);
    json_t *val = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return val;
}
