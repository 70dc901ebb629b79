#include "json_parse.h"
#include "json_plain.h"

#include <errno.h>
#include <locale.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* jansson reads a byte at a time through a stream and grows a string buffer a byte at a
 * time; on a 400-byte answer that was most of the parse. This parser reads the text once,
 * hands strings without escapes straight from the input to jansson, and gives up (NULL,
 * bail) on anything it does not handle itself: the caller then asks json_loadb, which
 * produces the value or the error. A bail is never an answer, so only inputs jansson would
 * accept in the same way come back from here. */

#define MAX_DEPTH 1024

typedef struct reader {
    const unsigned char *p, *end;
    int depth;
    bool reject_duplicates;
    bool compact; /* so far the text is what sl_json_dumps writes of the value read */
    char *scratch; /* decoded escaped strings */
    size_t cap;
} reader;

static inline void skip_ws(reader *r)
{
    if (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t')) {
        r->compact = false;
        do
            r->p++;
        while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'));
    }
}

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), 0 when not valid (overlong,
 * surrogate, past U+10FFFF, cut short): jansson refuses all of those. */
size_t sl_utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n = (size_t)(end - p);
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
            return 0;
        return 4;
    }
    return 0;
}

static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        int d = c >= '0' && c <= '9' ? (int)(c - '0')
              : c >= 'a' && c <= 'f' ? (int)(c - 'a' + 10)
              : c >= 'A' && c <= 'F' ? (int)(c - 'A' + 10) : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

const char *sl_json_string_at(const char *from, const char *to, const char **s, size_t *n, char **scratch,
                              size_t *cap)
{
    const unsigned char *start = (const unsigned char *)from, *p = start, *end = (const unsigned char *)to;
    while (p < end) {
        /* plain ASCII sixteen or four bytes a step; stops at '"', '\\', a control byte or from 0x80 */
        p += sl_json_plain_run((const char *)p, (size_t)(end - p), false);
        if (p >= end)
            break;
        unsigned c = *p;
        if (c == '"') {
            *s = (const char *)start;
            *n = (size_t)(p - start);
            return (const char *)p + 1;
        }
        if (c == '\\')
            break;
        if (c < 0x20)
            return NULL;
        size_t k = sl_utf8_seq_len(p, end);
        if (!k)
            return NULL;
        p += k;
    }
    if (p >= end)
        return NULL;
    /* escapes: decode from the start into scratch (each escape shrinks or keeps the length) */
    size_t need = (size_t)(end - start);
    if (need > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < need)
            c *= 2;
        char *grown = realloc(*scratch, c);
        if (!grown)
            return NULL;
        *scratch = grown;
        *cap = c;
    }
    char *out = *scratch;
    size_t o = (size_t)(p - start);
    memcpy(out, start, o);
    while (p < end) {
        unsigned c = *p;
        if (c == '"') {
            *s = out;
            *n = o;
            return (const char *)p + 1;
        }
        if (c < 0x20)
            return NULL;
        if (c >= 0x80) {
            size_t k = sl_utf8_seq_len(p, end);
            if (!k)
                return NULL;
            memcpy(out + o, p, k);
            o += k;
            p += k;
            continue;
        }
        if (c != '\\') {
            out[o++] = (char)c;
            p++;
            continue;
        }
        if (end - p < 2)
            return NULL;
        char e = (char)p[1];
        p += 2;
        switch (e) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            int v = end - p >= 4 ? hex4(p) : -1;
            if (v <= 0 || (v >= 0xDC00 && v <= 0xDFFF)) /* NUL or a lone low surrogate */
                return NULL;
            p += 4;
            uint32_t cp = (uint32_t)v;
            if (v >= 0xD800 && v <= 0xDBFF) {
                int lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return NULL;
                p += 6;
                cp = 0x10000 + (((uint32_t)v - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            }
            o += put_utf8(out + o, cp); /* at most the 6 or 12 bytes of its escape */
            break;
        }
        default: return NULL;
        }
    }
    return NULL;
}

/* The string whose opening quote r->p is on. *s points into the input where it has no
 * escapes, else into r->scratch (valid until the next string). No NUL inside. */
static bool read_string(reader *r, const char **s, size_t *n)
{
    const char *after = sl_json_string_at((const char *)r->p + 1, (const char *)r->end, s, n, &r->scratch, &r->cap);
    if (!after)
        return false;
    if (*s == r->scratch)
        r->compact = false; /* an escape the writer may write otherwise (\/, \u0041) */
    r->p = (const unsigned char *)after;
    return true;
}

static bool decimal_point_is_dot(void)
{
    static atomic_int known; /* 0 unknown, 1 yes, 2 no; threads racing store the same answer */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (!k) {
        k = localeconv()->decimal_point[0] == '.' ? 1 : 2;
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k == 1;
}

/* A number at r->p: *real tells which of *iv and *dv holds it. False on a bail (jansson
 * decides those: "01", integers past 18 digits, reals out of range or under a comma locale). */
static bool scan_number(reader *r, bool *real, long long *iv, double *dv)
{
    const unsigned char *p = r->p, *start = p;
    bool neg = false;
    *real = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    if (p >= r->end || *p < '0' || *p > '9')
        return false;
    const unsigned char *digits = p;
    if (*p == '0') {
        p++;
    } else {
        while (p < r->end && *p >= '0' && *p <= '9')
            p++;
    }
    size_t n_int = (size_t)(p - digits);
    if (p < r->end && *p == '.') {
        *real = true;
        p++;
        if (p >= r->end || *p < '0' || *p > '9')
            return false;
        while (p < r->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        *real = true;
        p++;
        if (p < r->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= r->end || *p < '0' || *p > '9')
            return false;
        while (p < r->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < r->end && *p >= '0' && *p <= '9') /* "01": jansson refuses it */
        return false;
    r->p = p;
    if (!*real) {
        if (n_int > 18)
            return false; /* jansson's range check (too big integer) decides */
        long long v = 0;
        for (const unsigned char *d = digits; d < p; d++)
            v = v * 10 + (*d - '0');
        if (neg && !v)
            r->compact = false; /* -0 is written 0 */
        *iv = neg ? -v : v;
        return true;
    }
    r->compact = false; /* a real is written as %.17g */
    char buf[64];
    size_t len = (size_t)(p - start);
    if (len >= sizeof buf || !decimal_point_is_dot())
        return false;
    memcpy(buf, start, len);
    buf[len] = 0;
    errno = 0;
    *dv = strtod(buf, NULL);
    return errno != ERANGE; /* overflow is jansson's error; underflow its call */
}

static json_t *read_number(reader *r)
{
    bool real;
    long long iv;
    double dv;
    if (!scan_number(r, &real, &iv, &dv))
        return NULL;
    return real ? json_real(dv) : json_integer(iv);
}

static json_t *read_value(reader *r);

/* After a member or an element: 1 on ',' (another follows), 0 on close (the container
 * ends), -1 on anything else. */
static int after_item(reader *r, char close)
{
    skip_ws(r);
    if (r->p >= r->end || (*r->p != ',' && *r->p != close))
        return -1;
    return *r->p++ == ',';
}

/* Just after the opening bracket: true (and past it) when close follows at once. */
static bool empty_container(reader *r, char close)
{
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return true;
    }
    return false;
}

static json_t *read_object(reader *r)
{
    json_t *o = json_object();
    if (!o || empty_container(r, '}'))
        return o;
    for (;;) {
        skip_ws(r);
        if (r->p >= r->end || *r->p != '"')
            goto bail;
        const char *k;
        size_t kn;
        if (!read_string(r, &k, &kn))
            goto bail;
        char small[128], *key = (char *)k;
        if (k == r->scratch) { /* the value may reuse scratch: keep the key apart */
            key = kn < sizeof small ? small : malloc(kn + 1);
            if (!key)
                goto bail;
            memcpy(key, k, kn);
        }
        skip_ws(r);
        json_t *v = NULL;
        bool ok = r->p < r->end && *r->p == ':';
        if (ok) {
            r->p++;
            skip_ws(r);
            v = read_value(r);
        }
        if (!v) {
            ok = false;
        } else {
            /* a duplicate key replaces the value and leaves the size: the bail lets
             * json_loadb report it (one hash lookup a key instead of two) */
            size_t size = json_object_size(o);
            ok = json_object_setn_new_nocheck(o, key, kn, v) == 0; /* takes v, also on failure */
            if (ok && json_object_size(o) == size) {
                r->compact = false; /* the writer writes the key once */
                if (r->reject_duplicates)
                    ok = false;
            }
        }
        if (key != k && key != small)
            free(key);
        int more = ok ? after_item(r, '}') : -1;
        if (more < 0)
            goto bail;
        if (!more)
            return o;
    }
bail:
    json_decref(o);
    return NULL;
}

static json_t *read_array(reader *r)
{
    json_t *a = json_array();
    if (!a || empty_container(r, ']'))
        return a;
    for (;;) {
        skip_ws(r);
        json_t *v = read_value(r);
        int more = v && json_array_append_new(a, v) == 0 ? after_item(r, ']') : -1;
        if (more < 0)
            goto bail;
        if (!more)
            return a;
    }
bail:
    json_decref(a);
    return NULL;
}

static bool literal(reader *r, const char *word, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return false;
    r->p += n;
    return true;
}

static json_t *read_value(reader *r)
{
    if (r->p >= r->end)
        return NULL;
    switch (*r->p) {
    case '{':
    case '[': {
        if (++r->depth > MAX_DEPTH)
            return NULL;
        json_t *v = *r->p == '{' ? read_object(r) : read_array(r);
        r->depth--;
        return v;
    }
    case '"': {
        const char *s;
        size_t n;
        return read_string(r, &s, &n) ? json_stringn_nocheck(s, n) : NULL;
    }
    case 't': return literal(r, "true", 4) ? json_true() : NULL;
    case 'f': return literal(r, "false", 5) ? json_false() : NULL;
    case 'n': return literal(r, "null", 4) ? json_null() : NULL;
    default: return read_number(r);
    }
}

/* ---- reading a text into a value of the same shape, in place ---- */

static bool reload_value(reader *r, json_t *old, bool shared);

/* May this node be changed? Not where the node or a container above it has another holder:
 * they would see the change. */
static bool mutable_node(const json_t *v, bool shared) { return !shared && v->refcount == 1; }

static bool reload_object(reader *r, json_t *o, bool shared)
{
    void *it = json_object_iter(o);
    if (empty_container(r, '}'))
        return !it;
    for (;;) {
        skip_ws(r);
        if (!it || r->p >= r->end || *r->p != '"')
            return false;
        const char *k;
        size_t kn;
        if (!read_string(r, &k, &kn) || kn != json_object_iter_key_len(it) ||
            memcmp(k, json_object_iter_key(it), kn) != 0)
            return false;
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':')
            return false;
        r->p++;
        skip_ws(r);
        if (!reload_value(r, json_object_iter_value(it), shared))
            return false;
        it = json_object_iter_next(o, it);
        int more = after_item(r, '}');
        if (more <= 0)
            return more == 0 && !it;
    }
}

static bool reload_array(reader *r, json_t *a, bool shared)
{
    size_t n = json_array_size(a), i = 0;
    if (empty_container(r, ']'))
        return n == 0;
    for (;;) {
        skip_ws(r);
        if (i >= n || !reload_value(r, json_array_get(a, i++), shared))
            return false;
        int more = after_item(r, ']');
        if (more <= 0)
            return more == 0 && i == n;
    }
}

static bool reload_value(reader *r, json_t *old, bool shared)
{
    if (r->p >= r->end)
        return false;
    switch (*r->p) {
    case '{':
    case '[': {
        bool obj = *r->p == '{';
        if ((obj ? !json_is_object(old) : !json_is_array(old)) || ++r->depth > MAX_DEPTH)
            return false;
        shared |= old->refcount != 1;
        bool ok = obj ? reload_object(r, old, shared) : reload_array(r, old, shared);
        r->depth--;
        return ok;
    }
    case '"': {
        const char *s;
        size_t n;
        if (!json_is_string(old) || !read_string(r, &s, &n))
            return false;
        if (json_string_length(old) == n && memcmp(json_string_value(old), s, n) == 0)
            return true;
        return mutable_node(old, shared) && json_string_setn_nocheck(old, s, n) == 0;
    }
    case 't': return json_is_true(old) && literal(r, "true", 4);
    case 'f': return json_is_false(old) && literal(r, "false", 5);
    case 'n': return json_is_null(old) && literal(r, "null", 4);
    default: {
        bool real;
        long long iv;
        double dv;
        if (!scan_number(r, &real, &iv, &dv))
            return false;
        if (!real) {
            if (!json_is_integer(old))
                return false;
            return json_integer_value(old) == iv || (mutable_node(old, shared) && json_integer_set(old, iv) == 0);
        }
        if (!json_is_real(old))
            return false;
        double was = json_real_value(old); /* bit for bit: -0.0 is not 0.0 to the writer */
        return memcmp(&was, &dv, sizeof dv) == 0 || (mutable_node(old, shared) && json_real_set(old, dv) == 0);
    }
    }
}

bool sl_json_reload(json_t *old, const char *buf, size_t len, bool *compact)
{
    if (!old || !buf || old->refcount != 1 || (!json_is_object(old) && !json_is_array(old)))
        return false;
    reader r = {.p = (const unsigned char *)buf, .end = (const unsigned char *)buf + len, .compact = true};
    skip_ws(&r);
    bool ok = reload_value(&r, old, false);
    if (ok) {
        skip_ws(&r);
        ok = r.p == r.end;
    }
    free(r.scratch);
    if (ok && compact)
        *compact = r.compact;
    return ok;
}

json_t *sl_json_from_spare(json_t **spare, const char *text, size_t len, bool *compact)
{
    json_t *t = *spare;
    *spare = NULL;
    if (t && sl_json_reload(t, text, len, compact))
        return t;
    json_decref(t);
    return sl_json_loadb_compact(text, len, 0, NULL, compact);
}

void sl_json_to_spare(json_t **spare, json_t *t)
{
    if (t && t->refcount == 1 && !*spare)
        *spare = t;
    else
        json_decref(t);
}

json_t *sl_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error)
{
    return sl_json_loadb_compact(buf, len, flags, error, NULL);
}

json_t *sl_json_loadb_compact(const char *buf, size_t len, size_t flags, json_error_t *error, bool *compact)
{
    if (compact)
        *compact = false;
    if (buf && (flags & ~(size_t)JSON_REJECT_DUPLICATES) == 0) {
        reader r = {.p = (const unsigned char *)buf, .end = (const unsigned char *)buf + len,
                    .reject_duplicates = flags & JSON_REJECT_DUPLICATES, .compact = true};
        skip_ws(&r);
        json_t *v = r.p < r.end && (*r.p == '{' || *r.p == '[') ? read_value(&r) : NULL;
        if (v) {
            skip_ws(&r);
            if (r.p != r.end) {
                json_decref(v);
                v = NULL;
            }
        }
        free(r.scratch);
        if (v) {
            if (compact)
                *compact = r.compact;
            if (error) {
                memset(error, 0, sizeof *error);
                error->line = error->column = -1;
                strcpy(error->source, "<buffer>");
            }
            return v;
        }
    }
    return json_loadb(buf, len, flags, error);
}
