/* A string that grows: s (malloc'd, NUL-ended once anything was added) holds len bytes
 * of cap. The owner frees s. */
#ifndef SL_STRBUF_H
#define SL_STRBUF_H

#include <stddef.h>
#include <string.h>

typedef struct sl_strbuf {
    char *s;
    size_t len, cap;
} sl_strbuf;

/* Room for n more bytes (and the NUL) without growing again. 0, or -1 out of memory. */
int sl_strbuf_grow(sl_strbuf *b, size_t n);
static inline int sl_strbuf_reserve(sl_strbuf *b, size_t n)
{
    return b->len + n + 1 <= b->cap ? 0 : sl_strbuf_grow(b, n);
}

/* Append n bytes (keeping a NUL after them). 0, or -1 when out of memory (b unchanged).
 * Inline: the JSON writer and the access log add many short pieces. */
static inline int sl_strbuf_add(sl_strbuf *b, const void *p, size_t n)
{
    if (sl_strbuf_reserve(b, n) < 0)
        return -1;
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}

#endif
