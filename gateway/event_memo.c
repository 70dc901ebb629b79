#include "event_memo.h"

#include <stdlib.h>
#include <string.h>

sl_event_memo *sl_event_memo_new(void) { return calloc(1, sizeof(sl_event_memo)); }

sl_event_memo *sl_event_memo_take(sl_event_memo **spare, int *n)
{
    return *n > 0 ? spare[--*n] : sl_event_memo_new();
}

void sl_event_memo_give(sl_event_memo *m, sl_event_memo **spare, int *n, int max)
{
    if (!m)
        return;
    if (*n >= max || m->text.cap > 16384 || m->view.cap > 256) {
        sl_event_memo_free(m);
        return;
    }
    m->valid = m->summary_valid = false; /* the next stream reads its first event afresh */
    m->view.text = NULL;
    spare[(*n)++] = m;
}

void sl_event_memo_lend(sl_event_memo *m, sl_resp_event *ev)
{
    ev->view = &m->view;
    ev->summary = &m->summary;
    ev->view_again = m->valid;
    ev->summary_kept = m->valid && m->summary_valid;
}

void sl_event_memo_keep(sl_event_memo *m, const sl_resp_event *ev)
{
    sl_jview *v = &m->view;
    if (v->text == m->text.s) /* not read this event: still the last one's */
        return;
    m->valid = false;
    if (ev->view_state <= 0)
        return;
    m->text.len = 0;
    if (sl_strbuf_add(&m->text, v->text, v->len) < 0)
        return;
    v->text = m->text.s;
    m->valid = true;
    m->summary_valid = ev->summary_read;
}

void sl_event_memo_free(sl_event_memo *m)
{
    if (!m)
        return;
    sl_jview_free(&m->view);
    free(m->summary.c);
    free(m->text.s);
    free(m);
}
