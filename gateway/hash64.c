#include "hash64.h"

#include <string.h>

/* Eight bytes a step, then mixed so that every bit of the result depends on every byte
 * (tables take their shard from the high bits and their bucket from the low ones). */
uint64_t sl_hash64(const void *p, size_t n)
{
    const char *s = p;
    uint64_t h = 1469598103934665603ULL ^ n, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
    }
    w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 31;
    h *= 0x94D049BB133111EBULL;
    return h ^ (h >> 32);
}
