#include "text_edits.h"

#include <string.h>

#include "json_dump.h"

void sl_text_edits_init(sl_text_edits *t, const sl_jview *v, sl_strbuf *buf)
{
    t->v = v;
    t->n = 0;
    t->buf = buf;
    t->failed = 0;
    buf->len = 0;
}

void sl_text_edit_span(sl_text_edits *t, size_t start, size_t end, const char *rep, size_t len)
{
    if (t->n == SL_TEXT_EDITS_MAX || sl_strbuf_add(t->buf, rep, len) < 0) {
        t->failed = 1;
        return;
    }
    t->e[t->n++] = (sl_text_edit){start, end, t->buf->len - len, len};
}

/* Where member key of obj's value goes: its value's bytes, or (absent) an insert before the
 * closing brace, its key written to the buffer first. The value follows in the buffer from
 * *from on; member_end records the edit. */
static void member_begin(sl_text_edits *t, int obj, const char *key, size_t *start, size_t *end, size_t *from)
{
    const sl_jview *v = t->v;
    int m = sl_jview_get(v, obj, key);
    *from = t->buf->len;
    if (m >= 0) {
        *start = v->tok[m].start;
        *end = v->tok[m].end;
        return;
    }
    *start = *end = v->tok[obj].end - 1;
    bool comma = v->tok[obj].size > 0; /* a member before it, or an insert made before this one */
    for (int i = 0; i < t->n && !comma; i++)
        comma = t->e[i].start == *start && t->e[i].end == *start;
    size_t kl = strlen(key);
    if ((comma && sl_strbuf_add(t->buf, ",", 1) < 0) || sl_strbuf_add(t->buf, "\"", 1) < 0 ||
        sl_strbuf_add(t->buf, key, kl) < 0 || sl_strbuf_add(t->buf, "\":", 2) < 0)
        t->failed = 1;
}

static void member_end(sl_text_edits *t, size_t start, size_t end, size_t from)
{
    if (t->n == SL_TEXT_EDITS_MAX)
        t->failed = 1;
    else
        t->e[t->n++] = (sl_text_edit){start, end, from, t->buf->len - from};
}

void sl_text_edit_member_of(sl_text_edits *t, int obj, const char *key, const char *val, size_t vn)
{
    size_t start, end, from;
    member_begin(t, obj, key, &start, &end, &from);
    if (sl_strbuf_add(t->buf, val, vn) < 0)
        t->failed = 1;
    member_end(t, start, end, from);
}

void sl_text_edit_member_string(sl_text_edits *t, const char *key, const char *s, size_t len)
{
    size_t start, end, from;
    member_begin(t, 0, key, &start, &end, &from);
    if (sl_json_dump_string(t->buf, s, len) < 0)
        t->failed = 1;
    member_end(t, start, end, from);
}

void sl_text_edit_member_delete(sl_text_edits *t, int obj, const char *key)
{
    const sl_jview *v = t->v;
    size_t kl = strlen(key), prev_end = 0;
    uint32_t k = (uint32_t)obj + 1;
    for (uint32_t m = 0; m < v->tok[obj].size; m++, k = v->tok[k + 1].next) {
        size_t n;
        const char *s = sl_jview_str(v, (int)k, &n);
        if (n != kl || memcmp(s, key, n) != 0) {
            prev_end = v->tok[k + 1].end;
            continue;
        }
        /* after a member: from its end (the comma between); the first: up to the next key */
        size_t start = m ? prev_end : v->tok[k].start, end = v->tok[k + 1].end;
        if (!m && v->tok[obj].size > 1)
            end = v->tok[v->tok[k + 1].next].start;
        sl_text_edit_span(t, start, end, "", 0);
        return;
    }
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
        out[n++] = (sl_upstream_part){t->buf->s + t->e[i].rep_at, t->e[i].rep_len};
        at = t->e[i].end > at ? t->e[i].end : at;
    }
    out[n++] = (sl_upstream_part){v->text + at, v->tok[0].end - at};
    return n;
}
