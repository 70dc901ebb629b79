/* Splitting a text/event-stream byte stream into whole events, whatever the TCP chunking. */
#ifndef SL_SSE_H
#define SL_SSE_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

typedef struct sl_sse {
    struct evbuffer *pending;   /* bytes of an event not yet complete */
    size_t scanned;             /* bytes of pending already searched for the end */
} sl_sse;

int sl_sse_init(sl_sse *s);
void sl_sse_free(sl_sse *s);
void sl_sse_feed(sl_sse *s, const char *data, size_t len);
/* Take the next complete event (its bytes up to and including the blank line) into a
 * malloc'd buffer the caller frees. Returns NULL when none is complete. */
char *sl_sse_next(sl_sse *s, size_t *len);
/* Bytes left that do not form a complete event (at the end of the stream). */
char *sl_sse_rest(sl_sse *s, size_t *len);

/* The payload of an event's data: lines joined with '\n' (malloc'd, caller frees), or NULL
 * if the event has no data field. */
char *sl_sse_data(const char *event, size_t len, size_t *data_len);

#endif
