/* A response event on its way through the plugins: its text, the tree made of it on demand,
 * its view (json_view.h), and the edits made to either. */
#include "plugin.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "json_dump.h"
#include "json_parse.h"
#include "json_view.h"
#include "strbuf.h"

void sl_resp_event_edit(sl_resp_event *ev)
{
    ev->edited = true;
    free(ev->out);
    ev->out = NULL;
    ev->out_cap = 0;
    ev->out_exact = false;
    ev->view_state = 0;
}

/* The json serialised as it stands, where that is known without serialising it: the
 * upstream's text while unedited and compact, or the text kept since the last edit (made
 * by sl_resp_event_text or by a splice). NULL otherwise. */
static const char *exact_text(const sl_resp_event *ev, size_t *len)
{
    if (ev->edited ? !(ev->out && ev->out_exact) : !(ev->compact && ev->text))
        return NULL;
    *len = ev->edited ? ev->out_len : ev->text_len;
    return ev->edited ? ev->out : ev->text;
}

/* Where pat is in text, when it is there exactly once; else NULL. Since the text is the json
 * serialised, a piece found once is the member it was made from. */
static const char *find_once(const char *text, size_t tlen, const char *pat, size_t plen)
{
    const char *at = memmem(text, tlen, pat, plen);
    return at && !memmem(at + 1, tlen - (size_t)(at + 1 - text), pat, plen) ? at : NULL;
}

/* text with its bytes [head, tail) replaced by `"key":` (when key is set; after a comma
 * when comma is) and s as a JSON string, written into b (empty; its buffer, if it has one, is
 * reused). -1 when out of memory or s is not UTF-8 (b is then freed). *s_at, when asked:
 * where s's string begins in it. */
static int splice_at(sl_strbuf *b, const char *text, size_t tlen, size_t head, size_t tail, bool comma,
                     const char *key, const char *s, size_t len, size_t *s_at)
{
    size_t kl = key ? strlen(key) : 0;
    if (sl_strbuf_reserve(b, tlen - (tail - head) + kl + len + 8) < 0 || sl_strbuf_add(b, text, head) < 0 ||
        (comma && sl_strbuf_add(b, ",", 1) < 0) ||
        (key && (sl_json_dump_string(b, key, kl) < 0 || sl_strbuf_add(b, ":", 1) < 0)))
        goto fail;
    if (s_at)
        *s_at = b->len;
    if (sl_json_dump_string(b, s, len) < 0 || sl_strbuf_add(b, text + tail, tlen - tail) < 0)
        goto fail;
    return 0;
fail:
    free(b->s);
    *b = (sl_strbuf){0};
    return -1;
}

/* text with holder's member key (a string, was) holding s instead; NULL where that cannot
 * be told from the text alone: "key":"was" is not in it exactly once. */
static char *splice_string(const char *text, size_t tlen, const char *key, const json_t *was, const char *s,
                           size_t len, size_t *out_len)
{
    sl_strbuf pat = {0};
    size_t key_part = 0;
    const char *at = NULL;
    if (sl_json_dump_string(&pat, key, strlen(key)) == 0 && sl_strbuf_add(&pat, ":", 1) == 0 &&
        (key_part = pat.len, sl_json_dump_string(&pat, json_string_value(was), json_string_length(was)) == 0))
        at = find_once(text, tlen, pat.s, pat.len);
    sl_strbuf out = {0};
    if (at)
        splice_at(&out, text, tlen, (size_t)(at - text) + key_part, (size_t)(at - text) + pat.len, false, NULL, s,
                  len, NULL);
    free(pat.s);
    *out_len = out.len;
    return out.s;
}

/* text with holder, an empty object, holding key: s; NULL unless "{}" is in text exactly
 * once (then it is holder: every empty object is written "{}"). */
static char *splice_into_empty(const char *text, size_t tlen, const char *key, const char *s, size_t len,
                               size_t *out_len)
{
    const char *at = find_once(text, tlen, "{}", 2);
    size_t inside = at ? (size_t)(at - text) + 1 : 0;
    sl_strbuf out = {0};
    if (at)
        splice_at(&out, text, tlen, inside, inside, false, key, s, len, NULL);
    *out_len = out.len;
    return out.s;
}

void sl_resp_event_set_string(sl_resp_event *ev, json_t *holder, const char *key, const char *s, size_t len)
{
    size_t tlen = 0, out_len = 0;
    const char *text = exact_text(ev, &tlen);
    json_t *was = json_object_get(holder, key);
    char *out = !text                 ? NULL
                : json_is_string(was) ? splice_string(text, tlen, key, was, s, len, &out_len)
                : !was && json_is_object(holder) && json_object_size(holder) == 0
                    ? splice_into_empty(text, tlen, key, s, len, &out_len)
                    : NULL;
    /* the string held by holder alone changes in place: no new value, no second lookup */
    int rc = json_is_string(was) && was->refcount == 1 ? json_string_setn(was, s, len)
                                                         : json_object_set_new(holder, key, json_stringn(s, len));
    if (rc < 0) {
        free(out); /* not set (out of memory, not UTF-8): the json decides what goes out */
        out = NULL;
    }
    sl_resp_event_edit(ev);
    ev->out = out;
    ev->out_cap = 0;
    ev->out_len = out_len;
    ev->out_exact = out != NULL;
}

const char *sl_resp_event_text(sl_resp_event *ev, size_t *len)
{
    if (!ev->edited && ev->text) {
        *len = ev->text_len;
        return ev->text;
    }
    if (!ev->out && ev->json) {
        ev->out_len = 0;
        ev->out = sl_json_dumps(ev->json, &ev->out_len);
        ev->out_cap = 0;
        ev->out_exact = ev->out != NULL;
    }
    *len = ev->out_len;
    return ev->out;
}


/* The tree the event no longer needs (the text was edited instead): kept as the spare, or
 * dropped. */
static void drop_tree(sl_resp_event *ev)
{
    if (ev->spare)
        sl_json_to_spare(ev->spare, ev->json);
    else
        json_decref(ev->json);
    ev->json = NULL;
    ev->json_tried = false;
}

json_t *sl_resp_event_json(sl_resp_event *ev)
{
    if (ev->json || ev->json_tried || ev->done)
        return ev->json;
    ev->json_tried = true;
    size_t len = 0;
    const char *text = sl_resp_event_text(ev, &len); /* as it stands: edited, or the tree serialised */
    if (!text)
        return NULL;
    bool compact = false;
    json_t *none = NULL;
    ev->json = sl_json_from_spare(ev->spare ? ev->spare : &none, text, len, &compact);
    if (ev->edited)
        ev->out_exact = compact;
    else
        ev->compact = compact;
    return ev->json;
}

void sl_resp_event_replace(sl_resp_event *ev, json_t *json)
{
    json_decref(ev->json);
    ev->json = json;
    ev->json_tried = true;
    sl_resp_event_edit(ev);
}

const sl_jview *sl_resp_event_view(sl_resp_event *ev)
{
    if (ev->view_state == 0 && !ev->done) {
        size_t len = 0;
        const char *text = sl_resp_event_text(ev, &len);
        int r = !ev->view || !text  ? -1
                : ev->view_again    ? sl_jview_read_again(ev->view, text, len)
                                    : sl_jview_read(ev->view, text, len);
        ev->view_state = r >= 0 ? 1 : -1;
        ev->summary_read = r == 1 && ev->summary_kept; /* the same tokens as the last event's */
        ev->view_again = false;
    }
    return ev->view_state > 0 ? ev->view : NULL;
}

json_t *sl_resp_chunk_like(const char *text, size_t len)
{
    static const char *const copied[] = {"id", "object", "created", "model", "system_fingerprint"};
    json_t *ev = sl_json_loadb(text, len, 0, NULL);
    json_t *chunk = json_is_object(ev) ? json_object() : NULL;
    for (size_t i = 0; chunk && i < sizeof copied / sizeof *copied; i++) {
        json_t *v = json_object_get(ev, copied[i]);
        if (v)
            json_object_set(chunk, copied[i], v);
    }
    json_decref(ev);
    return chunk;
}

static const sl_jkey top_keys[] = {SL_JKEY("choices"), SL_JKEY("usage"), SL_JKEY("error")};
static const sl_jkey choice_keys[] = {SL_JKEY("index"), SL_JKEY("finish_reason"), SL_JKEY("delta"),
                                      SL_JKEY("message"), SL_JKEY("text")};
static const sl_jkey holder_keys[] = {SL_JKEY("content"), SL_JKEY("reasoning_content"), SL_JKEY("tool_calls")};

/* The three key sets, with their length masks and heads worked out once for all workers. */
static sl_jkeys top_set, choice_set, holder_set;
static pthread_once_t sets_made = PTHREAD_ONCE_INIT;

static void make_sets(void)
{
    sl_jkeys_init(&top_set, top_keys, 3);
    sl_jkeys_init(&choice_set, choice_keys, 5);
    sl_jkeys_init(&holder_set, holder_keys, 3);
}

static void read_choice(const sl_jview *v, int tok, size_t place, sl_resp_choice *c)
{
    int m[5], h[3];
    sl_jview_members_of(v, tok, &choice_set, m);
    c->tok = tok;
    if (!sl_jview_int(v, m[0], &c->index))
        c->index = (long long)place;
    c->finish_reason = m[1];
    c->delta = m[2];
    c->message = m[3];
    c->text = m[4];
    sl_jview_members_of(v, c->delta >= 0 ? c->delta : c->message, &holder_set, h);
    c->content = h[0];
    c->reasoning_content = h[1];
    c->tool_calls = h[2];
}

const sl_resp_summary *sl_resp_event_summary(sl_resp_event *ev)
{
    const sl_jview *v = sl_resp_event_view(ev);
    sl_resp_summary *s = ev->summary;
    if (!v || !s || sl_jview_type(v, 0) != SL_JV_OBJECT)
        return NULL;
    if (ev->summary_read)
        return s;
    int top[3];
    pthread_once(&sets_made, make_sets);
    sl_jview_members_of(v, 0, &top_set, top);
    s->choices = sl_jview_type(v, top[0]) == SL_JV_ARRAY ? top[0] : -1;
    s->usage = top[1];
    s->error = top[2];
    s->n = 0;
    size_t n = s->choices >= 0 ? v->tok[s->choices].size : 0;
    if (n > s->cap) {
        sl_resp_choice *c = realloc(s->c, n * sizeof *c);
        if (!c)
            return NULL;
        s->c = c;
        s->cap = n;
    }
    for (uint32_t i = 0, tok = (uint32_t)s->choices + 1; i < n; i++, tok = v->tok[tok].next)
        read_choice(v, (int)tok, i, &s->c[i]);
    s->n = n;
    ev->summary_read = true;
    return s;
}

/* The event's text is now out (taken): edited through the view, and any tree made before
 * dropped. */
static void text_edited(sl_resp_event *ev, const sl_strbuf *out)
{
    free(ev->out); /* the text the view read may be ev->out: replaced only now */
    ev->out = out->s;
    ev->out_cap = out->cap;
    ev->out_len = out->len;
    ev->out_exact = false;
    ev->edited = true;
    if (ev->json)
        drop_tree(ev);
}

int sl_resp_event_view_set_string(sl_resp_event *ev, int tok, const char *s, size_t len)
{
    sl_jview *v = ev->view_state > 0 ? ev->view : NULL;
    if (!v || sl_jview_type(v, tok) != SL_JV_STRING)
        return -1;
    const sl_jv_tok *t = &v->tok[tok];
    size_t kept = v->len - (t->end - t->start);
    sl_strbuf out = {.s = ev->out_spare, .cap = ev->out_spare_cap}; /* the last edited event's buffer */
    ev->out_spare = NULL;
    if (splice_at(&out, v->text, v->len, t->start, t->end, false, NULL, s, len, NULL) < 0)
        return -1;
    text_edited(ev, &out);
    size_t written = out.len - kept; /* the string as written, quotes and escapes included */
    if (sl_jview_string_replaced(v, tok, out.s, out.len, written, s, len, written != len + 2) < 0)
        ev->view_state = 0;
    return 0;
}

int sl_resp_event_view_add_string(sl_resp_event *ev, int obj, const char *key, const char *s, size_t len)
{
    sl_jview *v = ev->view_state > 0 ? ev->view : NULL;
    if (!v || sl_jview_type(v, obj) != SL_JV_OBJECT)
        return -1;
    const sl_jv_tok *t = &v->tok[obj];
    bool comma = t->size > 0;
    size_t at = t->end - 1, s_at = 0; /* before the closing brace */
    sl_strbuf out = {0};
    if (splice_at(&out, v->text, v->len, at, at, comma, key, s, len, &s_at) < 0)
        return -1;
    text_edited(ev, &out);
    sl_jv_span k = {at + comma, s_at - 1}, val = {s_at, at + (out.len - v->len)}; /* "key" : "s" */
    if (sl_jview_member_added(v, obj, out.s, out.len, k, key, strlen(key), val, s, len) < 0)
        ev->view_state = 0; /* read again when next asked */
    ev->summary_read = false; /* tokens after it moved */
    return 0;
}
