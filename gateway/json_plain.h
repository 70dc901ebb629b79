/* The hot loop of the JSON string writers (request bodies, cache keys, access-log lines):
 * how far a string runs without a byte that needs a look (a control byte, '"', '\\', or
 * with non_ascii set, any byte from 0x80: the caller checks UTF-8 there). */
#ifndef SL_JSON_PLAIN_H
#define SL_JSON_PLAIN_H

#include <stdbool.h>
#include <stddef.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* 1: plain ASCII that is written as is; 2: 0x80 and up */
extern const unsigned char sl_json_plain_class[256];

static inline size_t sl_json_plain_run(const char *s, size_t len, bool non_ascii)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
#ifdef __SSE2__
    /* sixteen bytes a step: the bytes below 0x20 by a signed compare (which also takes 0x80
     * and up: kept out where non_ascii allows them), '"' and '\\' by equality */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    while (i + 16 <= len) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i low = _mm_cmplt_epi8(v, space);
        if (non_ascii)
            low = _mm_andnot_si128(_mm_cmplt_epi8(v, _mm_setzero_si128()), low);
        __m128i stop = _mm_or_si128(low, _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)));
        unsigned m = (unsigned)_mm_movemask_epi8(stop);
        if (m)
            return i + (size_t)__builtin_ctz(m);
        i += 16;
    }
#endif
    unsigned char ok = non_ascii ? 3 : 1;
    while (i + 4 <= len && (sl_json_plain_class[p[i]] & ok) && (sl_json_plain_class[p[i + 1]] & ok) &&
           (sl_json_plain_class[p[i + 2]] & ok) && (sl_json_plain_class[p[i + 3]] & ok))
        i += 4;
    while (i < len && (sl_json_plain_class[p[i]] & ok))
        i++;
    return i;
}

#endif
