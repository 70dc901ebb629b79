/* Bounded string copies without printf (hot paths copy names into fixed buffers). */
#ifndef SL_STR_COPY_H
#define SL_STR_COPY_H

#include <stddef.h>

/* Appends src at dst[at] (dst holds size bytes), cut to fit, NUL-ended; returns the new
 * length. sl_str_put(dst, size, 0, src) is a bounded copy. */
static inline size_t sl_str_put(char *dst, size_t size, size_t at, const char *src)
{
    if (at >= size)
        return at;
    while (at + 1 < size && *src)
        dst[at++] = *src++;
    dst[at] = '\0';
    return at;
}

#endif
