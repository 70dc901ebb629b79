/* Matching text: NFKC + case fold, default-ignorable characters (zero-width spaces, soft
 * hyphens) dropped, so that "ＢａＤ", "BAD" and "b\u200bad" all read "bad". The text is
 * cut into units (a base character with its combining marks) and each unit is normalised
 * on its own, which keeps a map from every normalised byte back to its unit. */
#include "guard_int.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define UNIT_MAX_CP 32      /* longer runs of combining marks are cut into several units */
#define DECOMP_MAX 512

static int reserve(sl_guard_norm *n, size_t need)
{
    if (need + 1 > n->cap) {
        size_t cap = n->cap ? n->cap : 256;
        while (cap < need + 1)
            cap *= 2;
        char *s = realloc(n->s, cap);
        if (!s)
            return -1;
        n->s = s;
        n->cap = cap;
    }
    if (need + 1 > n->map_cap) {
        size_t cap = n->map_cap ? n->map_cap : 256;
        while (cap < need + 1)
            cap *= 2;
        uint32_t *m = realloc(n->map, cap * sizeof *m);
        if (!m)
            return -1;
        n->map = m;
        n->map_cap = cap;
    }
    return 0;
}

/* Decode one code point; an invalid byte reads as itself (one byte, cp -1). */
static size_t next_cp(const uint8_t *p, size_t left, int32_t *cp)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate(p, (utf8proc_ssize_t)(left > 4 ? 4 : left), &c);
    if (k <= 0) {
        *cp = -1;
        return 1;
    }
    *cp = c;
    return (size_t)k;
}

static bool is_mark(int32_t cp)
{
    return cp >= 0x300 && utf8proc_get_property(cp)->combining_class != 0;
}

/* CJK unified ideographs (and extension A): no decomposition, no case. */
static bool is_plain_han(int32_t cp) { return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF); }

static bool next_is_mark(const uint8_t *t, size_t i, size_t len)
{
    if (i >= len || t[i] < 0xCC) /* marks start at U+0300 (0xCC 0x80) */
        return false;
    int32_t cp;
    next_cp(t + i, len - i, &cp);
    return is_mark(cp);
}

/* Normalise the unit text[us, ue) and append it. */
static int add_unit(sl_guard_norm *n, const uint8_t *text, size_t us, size_t ue)
{
    utf8proc_int32_t buf[DECOMP_MAX];
    const utf8proc_option_t opt = UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE | UTF8PROC_STABLE;
    utf8proc_ssize_t k = utf8proc_decompose(text + us, (utf8proc_ssize_t)(ue - us), buf, DECOMP_MAX, opt);
    if (k < 0 || k > DECOMP_MAX) { /* invalid bytes: keep them as they are */
        if (reserve(n, n->len + (ue - us)) < 0)
            return -1;
        n->raw = true;
        for (size_t i = us; i < ue; i++) {
            n->s[n->len] = (char)text[i];
            n->map[n->len++] = (uint32_t)us;
        }
        return 0;
    }
    k = utf8proc_normalize_utf32(buf, k, UTF8PROC_COMPOSE | UTF8PROC_STABLE);
    if (k < 0)
        return -1;
    if (reserve(n, n->len + (size_t)k * 4) < 0)
        return -1;
    for (utf8proc_ssize_t i = 0; i < k; i++) {
        utf8proc_ssize_t w = utf8proc_encode_char(buf[i], (utf8proc_uint8_t *)n->s + n->len);
        for (utf8proc_ssize_t j = 0; j < w; j++)
            n->map[n->len + (size_t)j] = (uint32_t)us;
        n->len += (size_t)w;
    }
    return 0;
}

/* Lower-cases the ASCII run from t[i] into o (with each byte's offset into m) up to the
 * first byte from 0x80 or len; returns where it stopped. Eight bytes a step where it can:
 * a byte below 0x80 plus 0x3F reaches 0x80 from 'A' and plus 0x25 from '[' (no carries). */
static size_t ascii_run(const uint8_t *t, size_t i, size_t len, char *o, uint32_t *m)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    size_t k = i;
    for (; k + 8 <= len; k += 8, o += 8, m += 8) {
        uint64_t w;
        memcpy(&w, t + k, 8);
        if (w & high)
            break;
        uint64_t upper = ((w + 0x3F * ones) ^ (w + 0x25 * ones)) & high; /* 'A' <= byte <= 'Z' */
        w |= upper >> 2;                                                 /* + 0x20 */
        memcpy(o, &w, 8);
        for (unsigned j = 0; j < 8; j++)
            m[j] = (uint32_t)(k + j);
    }
    for (; k < len && t[k] < 0x80; k++) {
        uint8_t c = t[k];
        *o++ = (char)((unsigned)(c - 'A') < 26u ? c + 32 : c);
        *m++ = (uint32_t)k;
    }
    return k;
}

int sl_guard_normalize(sl_guard_norm *n, const char *text, size_t len)
{
    n->len = 0;
    n->raw = false;
    return sl_guard_normalize_more(n, text, 0, len);
}

int sl_guard_normalize_more(sl_guard_norm *n, const char *text, size_t from, size_t len)
{
    const uint8_t *t = (const uint8_t *)text;
    if (len > UINT32_MAX - 1 || reserve(n, n->len + (len - from)) < 0)
        return -1;
    size_t i = from;
    while (i < len) {
        if (t[i] < 0x80) { /* a run of ASCII: each byte that no mark follows, lower-cased */
            if (reserve(n, n->len + (len - i)) < 0) /* the run is no longer than what is left */
                return -1;
            size_t e = ascii_run(t, i, len, n->s + n->len, n->map + n->len);
            size_t stop = e < len ? e - 1 : e; /* the run's last byte may take a mark after it */
            if (stop > i) {
                n->len += stop - i;
                i = stop;
                continue;
            }
        }
        size_t us = i, ncp = 1;
        int32_t cp;
        i += next_cp(t + i, len - i, &cp);
        if (is_plain_han(cp) && !next_is_mark(t, i, len)) { /* NFKC and case fold leave these alone */
            if ((n->len + 4 > n->cap || n->len + 4 > n->map_cap) && reserve(n, n->len + 3) < 0)
                return -1;
            for (size_t k = us; k < i; k++) {
                n->s[n->len] = (char)t[k];
                n->map[n->len++] = (uint32_t)us;
            }
            continue;
        }
        while (i < len && ncp < UNIT_MAX_CP) {
            size_t k = next_cp(t + i, len - i, &cp);
            if (!is_mark(cp))
                break;
            i += k;
            ncp++;
        }
        if (add_unit(n, t, us, i) < 0)
            return -1;
    }
    n->s[n->len] = '\0';
    n->map[n->len] = (uint32_t)len;
    return 0;
}

void sl_guard_norm_span(const sl_guard_norm *n, size_t ns, size_t ne, size_t *os, size_t *oe)
{
    *os = n->map[ns];
    if (ne == 0 || ne >= n->len) {
        *oe = ne == 0 ? *os : n->map[n->len];
        return;
    }
    size_t j = ne;
    while (j < n->len && n->map[j] == n->map[ne - 1])
        j++;
    *oe = n->map[j];
}

void sl_guard_norm_free(sl_guard_norm *n)
{
    free(n->s);
    free(n->map);
    memset(n, 0, sizeof *n);
}

size_t sl_guard_utf8_count(const char *s, size_t len)
{
    size_t c = 0;
    for (size_t i = 0; i < len; i++)
        c += ((uint8_t)s[i] & 0xC0) != 0x80;
    return c;
}
