/* Splitting a text/event-stream byte stream into whole events, whatever the TCP chunking. */
#ifndef SL_SSE_H
#define SL_SSE_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

typedef struct sl_sse {
    struct evbuffer *pending;   /* bytes of an event not yet complete */
    size_t taken;               /* bytes at its front handed out by sl_sse_take */
    size_t scanned;             /* bytes after those already searched for the end */
    bool one_line;              /* the event taken last is one line and the blank one: no '\r',
                                   and its first '\n' ends it (sl_sse_data_of reads no more) */
} sl_sse;

int sl_sse_init(sl_sse *s);
void sl_sse_free(sl_sse *s);
void sl_sse_feed(sl_sse *s, const char *data, size_t len);
/* Take the next complete event (its bytes up to and including the blank line), where it
 * lies: valid until the next sl_sse_feed, sl_sse_rest or sl_sse_free. NULL when none is
 * complete. */
const char *sl_sse_take(sl_sse *s, size_t *len);
/* The same into a malloc'd buffer (NUL-ended) the caller frees. */
char *sl_sse_next(sl_sse *s, size_t *len);
/* Bytes left that do not form a complete event (at the end of the stream). */
char *sl_sse_rest(sl_sse *s, size_t *len);

/* The payload of an event's data: lines joined with '\n' (malloc'd, caller frees), or NULL
 * if the event has no data field. */
char *sl_sse_data(const char *event, size_t len, size_t *data_len);
/* The same without a copy where the event has one data line: then a pointer into event (not
 * NUL-ended); else the lines joined into *joined (malloc'd, the caller frees; NULL otherwise). */
const char *sl_sse_data_ref(const char *event, size_t len, size_t *data_len, char **joined);
/* sl_sse_data_ref for the event s took last, which it already knows the lines of when it is
 * one line (the usual "data: {...}\n\n"). */
const char *sl_sse_data_of(const sl_sse *s, const char *event, size_t len, size_t *data_len, char **joined);

#endif
