#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

int sl_strbuf_reserve(sl_strbuf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s)
        return -1;
    b->s = s;
    b->cap = cap;
    return 0;
}

int sl_strbuf_add(sl_strbuf *b, const void *p, size_t n)
{
    if (sl_strbuf_reserve(b, n) < 0)
        return -1;
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}
