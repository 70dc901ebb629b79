/* The hot loop of the JSON string writers (request bodies, cache keys, access-log lines):
 * how far a string runs without a byte that needs a look (a control byte, '"', '\\', or
 * with non_ascii set, any byte from 0x80: the caller checks UTF-8 there). */
#ifndef SL_JSON_PLAIN_H
#define SL_JSON_PLAIN_H

#include <stdbool.h>
#include <stddef.h>

/* 1: plain ASCII that is written as is; 2: 0x80 and up */
extern const unsigned char sl_json_plain_class[256];

static inline size_t sl_json_plain_run(const char *s, size_t len, bool non_ascii)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    unsigned char ok = non_ascii ? 3 : 1;
    while (i + 4 <= len && (sl_json_plain_class[p[i]] & ok) && (sl_json_plain_class[p[i + 1]] & ok) &&
           (sl_json_plain_class[p[i + 2]] & ok) && (sl_json_plain_class[p[i + 3]] & ok))
        i += 4;
    while (i < len && (sl_json_plain_class[p[i]] & ok))
        i++;
    return i;
}

#endif
