/* Decimal text of an integer without printf (hot paths: response heads, headers, JSON). */
#ifndef SL_FMT_INT_H
#define SL_FMT_INT_H

#include <stddef.h>
#include <string.h>

#define SL_FMT_INT_MAX 21 /* "-9223372036854775808" and a NUL */

/* Writes v's digits (and '-') to out, NUL-ended; returns their count. */
static inline size_t sl_fmt_int(char out[SL_FMT_INT_MAX], long long v)
{
    char buf[SL_FMT_INT_MAX], *p = buf + sizeof buf;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    *--p = 0;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10));
    if (v < 0)
        *--p = '-';
    size_t n = (size_t)(buf + sizeof buf - p);
    memcpy(out, p, n);
    return n - 1;
}

#endif
