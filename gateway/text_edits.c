#include "text_edits.h"

#include <stdlib.h>
#include <string.h>

void sl_text_edits_init(sl_text_edits *t, const sl_jview *v)
{
    t->v = v;
    t->n = 0;
    t->buf = (sl_strbuf){0};
    t->failed = 0;
}

void sl_text_edit_span(sl_text_edits *t, size_t start, size_t end, const char *rep, size_t len)
{
    if (t->n == SL_TEXT_EDITS_MAX || sl_strbuf_reserve(&t->buf, len) < 0) {
        t->failed = 1;
        return;
    }
    t->e[t->n++] = (sl_text_edit){start, end, t->buf.len, len};
    sl_strbuf_add(&t->buf, rep, len);
}

void sl_text_edit_member_of(sl_text_edits *t, int obj, const char *key, const char *val, size_t vn)
{
    const sl_jview *v = t->v;
    int m = sl_jview_get(v, obj, key);
    if (m >= 0) {
        sl_text_edit_span(t, v->tok[m].start, v->tok[m].end, val, vn);
        return;
    }
    size_t at = v->tok[obj].end - 1, kl = strlen(key), from = t->buf.len; /* before the closing brace */
    if (sl_strbuf_reserve(&t->buf, kl + vn + 4) < 0 || t->n == SL_TEXT_EDITS_MAX) {
        t->failed = 1;
        return;
    }
    if (v->tok[obj].size) /* a member or an insert before this one: a comma first */
        sl_strbuf_add(&t->buf, ",", 1);
    else
        for (int i = 0; i < t->n; i++)
            if (t->e[i].start == at && t->e[i].end == at) {
                sl_strbuf_add(&t->buf, ",", 1);
                break;
            }
    sl_strbuf_add(&t->buf, "\"", 1);
    sl_strbuf_add(&t->buf, key, kl);
    sl_strbuf_add(&t->buf, "\":", 2);
    sl_strbuf_add(&t->buf, val, vn);
    t->e[t->n++] = (sl_text_edit){at, at, from, t->buf.len - from};
}

int sl_text_edits_parts(sl_text_edits *t, sl_upstream_part *out, int max)
{
    if (t->failed || 2 * t->n + 1 > max)
        return -1;
    /* in the text's order; inserts at one place in the order they were made */
    for (int i = 1; i < t->n; i++) {
        sl_text_edit x = t->e[i];
        int j = i;
        for (; j > 0 && t->e[j - 1].start > x.start; j--)
            t->e[j] = t->e[j - 1];
        t->e[j] = x;
    }
    const sl_jview *v = t->v;
    size_t at = v->tok[0].start;
    int n = 0;
    for (int i = 0; i < t->n; i++) {
        if (t->e[i].start > at)
            out[n++] = (sl_upstream_part){v->text + at, t->e[i].start - at};
        out[n++] = (sl_upstream_part){t->buf.s + t->e[i].rep_at, t->e[i].rep_len};
        at = t->e[i].end > at ? t->e[i].end : at;
    }
    out[n++] = (sl_upstream_part){v->text + at, v->tok[0].end - at};
    return n;
}

void sl_text_edits_free(sl_text_edits *t)
{
    free(t->buf.s);
    t->buf = (sl_strbuf){0};
}
