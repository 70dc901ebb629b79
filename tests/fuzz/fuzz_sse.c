/* Fuzz target: the SSE splitter (gateway/sse.c) fed in pieces whose sizes come from the
 * input. Checks that the events plus the rest give back exactly the bytes fed, and that
 * each event ends at the first event end a byte-by-byte search finds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

/* Where the first event of p ends, byte by byte (the splitter's own search skips ahead with
 * memchr): just past the first "\n\n", "\r\n\r\n" or "\r\r", or 0. */
static size_t first_end(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && i + 1 < n && p[i + 1] == '\n')
            return i + 2;
        if (p[i] == '\n' && i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\r')
            return i + 2;
    }
    return 0;
}

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
            joined = NULL;
            rlen = 0;
            r = sl_sse_data_of(&s, ev, len, &rlen, &joined); /* knowing the event's lines from take */
            if (!r != !d || (r && (rlen != dlen || memcmp(r, d, dlen) != 0)))
                abort();
            free(joined);
            free(d);
            if (got + len > size)
                abort();
            if (first_end(ev, len) != len)
                abort(); /* an event ends at its first end, not before, not after */
            memcpy(out + got, ev, len);
            got += len;
            free(ev);
        }
    }
    size_t rlen = 0;
    char *rest = sl_sse_rest(&s, &rlen);
    if (rest) {
        if (got + rlen > size || first_end(rest, rlen) != 0)
            abort(); /* the rest holds no whole event */
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
