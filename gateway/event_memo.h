/* The stream's last event, kept so that the next one, which mostly differs from it in one
 * string (the delta's text), is read by moving the last one's tokens rather than reading it
 * all (sl_jview_read_again), and keeps its summary. Owned by the exchange (one a stream, made
 * at its first event that hooks see), so streams that take turns on a worker keep theirs. */
#ifndef SL_EVENT_MEMO_H
#define SL_EVENT_MEMO_H

#include <stdbool.h>
#include <stddef.h>

#include "json_view.h"
#include "plugin.h"
#include "strbuf.h"

typedef struct sl_event_memo {
    sl_jview view;
    sl_resp_summary summary;
    sl_strbuf text;         /* the view's text: the last event as the hooks left it (a copy) */
    bool valid;             /* view holds text's tokens */
    bool summary_valid;     /* and summary is of them */
} sl_event_memo;

/* NULL when out of memory. */
sl_event_memo *sl_event_memo_new(void);
/* One of the n spares (a finished stream's, its buffers kept), else a new one. */
sl_event_memo *sl_event_memo_take(sl_event_memo **spare, int *n);
/* m (NULL: nothing) kept among the spares while fewer than max and not grown large, else freed. */
void sl_event_memo_give(sl_event_memo *m, sl_event_memo **spare, int *n, int max);
/* ev is to be read with the memo's view and summary, against the last event. */
void sl_event_memo_lend(sl_event_memo *m, sl_resp_event *ev);
/* After ev's hooks, before its text and out are freed: keep a copy of what its view read, or
 * forget a view that this event left unread. */
void sl_event_memo_keep(sl_event_memo *m, const sl_resp_event *ev);
void sl_event_memo_free(sl_event_memo *m);

#endif
