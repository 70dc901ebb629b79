/* A string that grows: s (malloc'd, NUL-ended once anything was added) holds len bytes
 * of cap. The owner frees s. */
#ifndef SL_STRBUF_H
#define SL_STRBUF_H

#include <stddef.h>

typedef struct sl_strbuf {
    char *s;
    size_t len, cap;
} sl_strbuf;

/* Room for n more bytes (and the NUL) without growing again. 0, or -1 out of memory. */
int sl_strbuf_reserve(sl_strbuf *b, size_t n);
/* Append n bytes (keeping a NUL after them). 0, or -1 when out of memory (b unchanged). */
int sl_strbuf_add(sl_strbuf *b, const void *p, size_t n);

#endif
