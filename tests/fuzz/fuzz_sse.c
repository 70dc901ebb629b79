/* Fuzz target: the SSE splitter (gateway/sse.c) fed in pieces whose sizes come from the
 * input. Checks that the events plus the rest give back exactly the bytes fed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] % 17 + 1;
    data++, size--;
    sl_sse s;
    if (sl_sse_init(&s) < 0)
        return 0;
    char *out = malloc(size + 1);
    size_t got = 0;
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        sl_sse_feed(&s, (const char *)data + off, n);
        char *ev;
        size_t len;
        while ((ev = sl_sse_next(&s, &len))) {
            size_t dlen;
            char *d = sl_sse_data(ev, len, &dlen);
            if (d && (dlen > len || strlen(d) > dlen))
                abort();
            char *joined = NULL;
            size_t rlen = 0;
            const char *r = sl_sse_data_ref(ev, len, &rlen, &joined);
            if (!r != !d || (r && (rlen != dlen || memcmp(r, d, dlen) != 0)))
                abort(); /* the copy-free data is the data */
            free(joined);
            free(d);
            if (got + len > size)
                abort();
            memcpy(out + got, ev, len);
            got += len;
            free(ev);
        }
    }
    size_t rlen = 0;
    char *rest = sl_sse_rest(&s, &rlen);
    if (rest) {
        if (got + rlen > size)
            abort();
        memcpy(out + got, rest, rlen);
        got += rlen;
        free(rest);
    }
    if (got != size || memcmp(out, data, size) != 0)
        abort(); /* an event lost or reordered bytes */
    free(out);
    sl_sse_free(&s);
    return 0;
}
