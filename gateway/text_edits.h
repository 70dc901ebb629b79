/* Edits of a JSON text that is read through a view (json_view.h): spans of it replaced by new
 * bytes, and members set in its objects, then the result handed out as parts of the old text
 * and the new bytes, so that a request goes upstream without being serialised again. The new
 * bytes go to a buffer the caller owns and may keep for the next list (a worker's). */
#ifndef SL_TEXT_EDITS_H
#define SL_TEXT_EDITS_H

#include <stddef.h>

#include "json_view.h"
#include "strbuf.h"
#include "upstream.h"

#define SL_TEXT_EDITS_MAX 12

typedef struct sl_text_edit {
    size_t start, end;          /* the bytes of the text replaced (start == end: an insert) */
    size_t rep_at, rep_len;     /* the new bytes, in buf */
} sl_text_edit;

typedef struct sl_text_edits {
    const sl_jview *v;
    sl_text_edit e[SL_TEXT_EDITS_MAX];
    int n;
    sl_strbuf *buf;
    int failed;                 /* out of memory, or more than SL_TEXT_EDITS_MAX edits */
} sl_text_edits;

/* Begins an edit list of v's text (v: a view of a JSON object); buf (emptied) takes the new
 * bytes and stays the caller's. */
void sl_text_edits_init(sl_text_edits *t, const sl_jview *v, sl_strbuf *buf);
/* Bytes [start, end) replaced by rep (len bytes). Edits must not overlap. */
void sl_text_edit_span(sl_text_edits *t, size_t start, size_t end, const char *rep, size_t len);
/* Member key of object token obj set to the JSON text val (vn bytes): its value replaced where
 * it is, else the member added last. key must need no escape. */
void sl_text_edit_member_of(sl_text_edits *t, int obj, const char *key, const char *val, size_t vn);
/* The same in the top-level object. */
static inline void sl_text_edit_member(sl_text_edits *t, const char *key, const char *val, size_t vn)
{
    sl_text_edit_member_of(t, 0, key, val, vn);
}
/* Member key of object token obj taken out (with the comma that separates it), if it is there.
 * At most one member of an object a list. */
void sl_text_edit_member_delete(sl_text_edits *t, int obj, const char *key);
/* Top-level member key set to the string s (len bytes), written as JSON. */
void sl_text_edit_member_string(sl_text_edits *t, const char *key, const char *s, size_t len);
/* The edited text as parts (at most 2 * n + 1 of out, in order; pointing into the view's text
 * and the buffer): their count, or -1 when the list failed. */
int sl_text_edits_parts(sl_text_edits *t, sl_upstream_part *out, int max);

#endif
