/* guard: the content filter. On the request it denies (400 content_filter, or a refusal
 * answer) and masks; on the response it scans the text as it streams, holding back a
 * short window so a denied word split over chunks is never sent, and cuts the stream with
 * finish_reason "content_filter". Every block is an audit event (rule id, never text). */
#include "guard_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_pick.h"
#include "log.h"
#include "plugin.h"
#include "json_view.h"

extern const sl_plugin sl_plugin_guard;

static const char *const chat_fields[] = {"content", "reasoning_content", NULL};
static const char *const cmpl_fields[] = {"text", NULL};

static void audit_block(sl_exchange *ex, const sl_guard_conf *c, const sl_guard_hit *hit, const char *stage)
{
    char rule[64];
    sl_guard_rule_name(&c->rules, hit, rule, sizeof rule);
    const char *who = sl_ex_consumer(ex);
    sl_log_info("guard block consumer=%s rule=%s stage=%s request_id=%s", who ? who : "-", rule, stage,
                sl_ex_request_id(ex));
    sl_ex_log_field(ex, "guard", json_pack("{s:s, s:s, s:s}", "action", "block", "rule", rule, "stage", stage));
    sl_ex_audit(ex, "guard_block", json_pack("{s:s, s:s, s:s}", "rule", rule, "stage", stage, "model",
                                             sl_ex_model(ex) ? sl_ex_model(ex) : ""));
}

/* ---- request ---- */

/* Where a text of the request lives: holder[key] (object) or holder[index] (array), and
 * the string there (found while collecting: not looked up again); or, read through the
 * request's view, its string token (value NULL). */
typedef struct text_ref {
    json_t *holder;
    const char *key;
    size_t index;
    json_t *value;
    int tok;
} text_ref;

typedef struct refs {
    text_ref *v;
    size_t n, cap;
} refs;

static int push_ref(refs *r, json_t *holder, const char *key, size_t index, json_t *value)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        text_ref *v = realloc(r->v, cap * sizeof *v);
        if (!v)
            return -1;
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = (text_ref){holder, key, index, value, -1};
    return 0;
}

static int push_tok(refs *r, int tok)
{
    if (push_ref(r, NULL, NULL, 0, NULL) < 0)
        return -1;
    r->v[r->n - 1].tok = tok;
    return 0;
}

/* collect_texts of the request's view. */
static int collect_view(const sl_jview *v, sl_endpoint ep, refs *r)
{
    if (ep == SL_EP_COMPLETIONS || ep == SL_EP_EMBEDDINGS) {
        int x = sl_jview_get(v, 0, ep == SL_EP_COMPLETIONS ? "prompt" : "input");
        if (sl_jview_type(v, x) == SL_JV_STRING)
            return push_tok(r, x);
        for (int k = sl_jview_items(v, x); k >= 0; k = sl_jview_next(v, x, k))
            if (v->tok[k].type == SL_JV_STRING && push_tok(r, k) < 0)
                return -1;
        return 0;
    }
    int messages = sl_jview_get(v, 0, "messages");
    for (int m = sl_jview_items(v, messages); m >= 0; m = sl_jview_next(v, messages, m)) {
        int content = sl_jview_get(v, m, "content");
        if (sl_jview_type(v, content) == SL_JV_STRING && push_tok(r, content) < 0)
            return -1;
        for (int p = sl_jview_items(v, content); p >= 0; p = sl_jview_next(v, content, p)) {
            int text = sl_jview_get(v, p, "text");
            if (sl_jview_type(v, text) == SL_JV_STRING && push_tok(r, text) < 0)
                return -1;
        }
    }
    return 0;
}

/* A string, or an array of strings (prompt, input). */
static int push_strings(refs *r, json_t *holder, const char *key)
{
    json_t *v = json_object_get(holder, key);
    if (json_is_string(v))
        return push_ref(r, holder, key, 0, v);
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it)
        if (json_is_string(it) && push_ref(r, v, NULL, i, it) < 0)
            return -1;
    return 0;
}

static int collect_texts(json_t *body, sl_endpoint ep, refs *r)
{
    if (ep == SL_EP_COMPLETIONS)
        return push_strings(r, body, "prompt");
    if (ep == SL_EP_EMBEDDINGS)
        return push_strings(r, body, "input");
    size_t i, j;
    json_t *m, *part, *text;
    const json_t *messages = json_object_get(body, "messages"); /* the macro reads it each turn */
    json_array_foreach(messages, i, m) {
        json_t *content = json_object_get(m, "content");
        if (json_is_string(content) && push_ref(r, m, "content", 0, content) < 0)
            return -1;
        json_array_foreach(content, j, part)
            if (json_is_string(text = json_object_get(part, "text")) && push_ref(r, part, "text", 0, text) < 0)
                return -1;
    }
    return 0;
}

static void ref_set(const text_ref *r, json_t *v)
{
    if (r->key)
        json_object_set_new(r->holder, r->key, v);
    else
        json_array_set_new(r->holder, r->index, v);
}

static json_t *chunk_from(const json_t *tmpl)
{
    /* a shallow copy: the template's values (strings, numbers) are shared, never changed */
    json_t *o = json_copy((json_t *)tmpl);
    json_object_set_new(o, "choices", json_array());
    return o;
}

static json_t *choice_obj(bool chat, bool stream, int index, const char *field, const char *text, size_t len,
                          const char *finish)
{
    json_t *ch = json_pack("{s:i}", "index", index);
    json_t *holder = ch;
    if (chat) {
        holder = json_object();
        json_object_set_new(ch, stream ? "delta" : "message", holder);
        if (!stream)
            json_object_set_new(holder, "role", json_string("assistant"));
    } else {
        json_object_set_new(ch, "logprobs", json_null());
    }
    if (field)
        json_object_set_new(holder, field, json_stringn(text, len));
    else if (!chat)
        json_object_set_new(ch, "text", json_string(""));
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    return ch;
}

/* Answer a blocked request with a normal completion that carries the refusal. */
static void refuse(sl_exchange *ex, const sl_guard_conf *c)
{
    bool chat = sl_ex_endpoint(ex) == SL_EP_CHAT;
    char id[96];
    snprintf(id, sizeof id, "%s-guard-%s", chat ? "chatcmpl" : "cmpl", sl_ex_request_id(ex));
    const char *model = sl_ex_model(ex) ? sl_ex_model(ex) : "";
    const char *field = chat ? "content" : "text";
    size_t mlen = strlen(c->refusal);
    json_int_t now = (json_int_t)time(NULL);
    sl_ex_mark_altered(ex);
    if (sl_ex_stream(ex)) {
        json_t *tmpl = json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", chat ? "chat.completion.chunk" : "text_completion",
                                 "created", now, "model", model);
        json_t *a = chunk_from(tmpl), *b = chunk_from(tmpl);
        json_t *first = choice_obj(chat, true, 0, field, c->refusal, mlen, NULL);
        if (chat)
            json_object_set_new(json_object_get(first, "delta"), "role", json_string("assistant"));
        json_array_append_new(json_object_get(a, "choices"), first);
        json_array_append_new(json_object_get(b, "choices"), choice_obj(chat, true, 0, NULL, NULL, 0, "content_filter"));
        sl_ex_stream_begin(ex);
        sl_ex_emit_event(ex, a);
        sl_ex_emit_event(ex, b);
        json_decref(a);
        json_decref(b);
        json_decref(tmpl);
        sl_ex_stream_end(ex);
        return;
    }
    json_t *body = json_pack("{s:s, s:s, s:I, s:s, s:[o], s:{s:i, s:i, s:i}}", "id", id, "object",
                             chat ? "chat.completion" : "text_completion", "created", now, "model", model, "choices",
                             choice_obj(chat, false, 0, field, c->refusal, mlen, "content_filter"), "usage",
                             "prompt_tokens", 0, "completion_tokens", 0, "total_tokens", 0);
    sl_ex_respond_json(ex, 200, body);
}

/* Log probabilities carry each token's text beside the content (chunks' logprobs.content[].token,
 * bytes, top_logprobs): the answer's scan would not see a denied word there, nor hold it back.
 * So where answers are scanned, they are not asked for. */
static void drop_logprobs(sl_exchange *ex)
{
    const sl_jview *v = sl_ex_request_view(ex);
    if (v) {
        int lp = sl_jview_type(v, sl_jview_get(v, 0, "logprobs"));
        if ((lp < 0 || lp == SL_JV_FALSE || lp == SL_JV_NULL) && sl_jview_get(v, 0, "top_logprobs") < 0)
            return;
    } else {
        const json_t *view = sl_ex_body_view(ex);
        const json_t *lp = json_object_get(view, "logprobs"), *top = json_object_get(view, "top_logprobs");
        if ((!lp || json_is_false(lp) || json_is_null(lp)) && !top)
            return;
    }
    sl_ex_body_del(ex, "logprobs");
    sl_ex_body_del(ex, "top_logprobs");
    sl_ex_log_field(ex, "guard_logprobs_dropped", json_true());
}

static sl_step guard_on_request(sl_exchange *ex, void *conf)
{
    sl_guard_conf *c = conf;
    sl_endpoint ep = sl_ex_endpoint(ex);
    if (c->on_response && (ep == SL_EP_CHAT || ep == SL_EP_COMPLETIONS))
        drop_logprobs(ex);
    if (!c->on_request || (ep != SL_EP_CHAT && ep != SL_EP_COMPLETIONS && ep != SL_EP_EMBEDDINGS))
        return SL_STEP_CONTINUE;
    refs r = {0};
    sl_guard_scratch *sc = sl_guard_scratch_take();
    sl_guard_norm *norm = sc ? &sc->norm : NULL;
    pcre2_match_data *md = sc ? sc->md : NULL;
    sl_guard_hit hit;
    bool blocked = false, failed = !sc;
    int masked = 0;
    /* read through the request's view, else the tree: the body is taken for a change only
     * where a mask applies (and then its texts are collected again, from the tree) */
    const sl_jview *view = sl_ex_request_view(ex);
    if (!failed && (view ? collect_view(view, ep, &r) : collect_texts((json_t *)sl_ex_body_view(ex), ep, &r)) < 0)
        failed = true;
    for (size_t i = 0; i < r.n && !blocked && !failed; i++) {
        json_t *v = r.v[i].value;
        size_t len;
        const char *t = v ? json_string_value(v) : sl_jview_str(view, r.v[i].tok, &len);
        if (v)
            len = json_string_length(v);
        if (sl_guard_normalize(norm, t, len) < 0) {
            failed = true;
            break;
        }
        if (sl_guard_rules_scan(&c->rules, norm->s, norm->len, 0, false, !norm->raw, md, &hit)) {
            blocked = true;
            break;
        }
        if (c->n_masks) {
            char *out;
            size_t out_len;
            int k = sl_guard_masks_apply(c->masks, c->n_masks, t, len, norm, md, &out, &out_len);
            if (k < 0) {
                failed = true;
            } else if (k > 0 && !v) { /* the view's texts: again from the tree, which can change */
                free(out);
                r.n = 0;
                json_t *tree = sl_ex_body(ex);
                if (!tree || collect_texts(tree, ep, &r) < 0)
                    failed = true;
                i = (size_t)-1;
            } else if (k > 0) {
                (void)sl_ex_body(ex);
                ref_set(&r.v[i], json_stringn(out, out_len));
                free(out);
                masked += k;
            }
        }
    }
    free(r.v);
    sl_guard_scratch_give(sc);
    if (failed) {
        sl_ex_respond_error(ex, 500, "api_error", "internal_error", NULL, "the content guard ran out of memory");
        return SL_STEP_RESPOND;
    }
    if (masked)
        sl_ex_log_field(ex, "guard_masked", json_integer(masked));
    if (!blocked)
        return SL_STEP_CONTINUE;
    audit_block(ex, c, &hit, "request");
    if (c->refuse && ep != SL_EP_EMBEDDINGS) {
        refuse(ex, c);
    } else {
        char rule[64];
        sl_ex_respond_error(ex, 400, "invalid_request_error", "content_filter", NULL,
                            "The request was blocked by the content filter (rule %s).",
                            sl_guard_rule_name(&c->rules, &hit, rule, sizeof rule));
    }
    return SL_STEP_RESPOND;
}

/* ---- response ---- */

typedef struct field_stream {
    int choice;
    int field;
    bool finished;
    sl_guard_stream st;
} field_stream;

typedef struct resp_state {
    field_stream *fs;
    size_t n, cap;
    char *first;        /* the stream's first event, as it came */
    size_t first_len;
    json_t *tmpl;       /* id, object, created, model of the stream's chunks (template_of) */
} resp_state;

static void resp_state_free(resp_state *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        sl_guard_stream_free(&s->fs[i].st);
    free(s->fs);
    free(s->first);
    json_decref(s->tmpl);
    free(s);
}

static field_stream *find_stream(resp_state *s, int choice, int field)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->fs[i].choice == choice && s->fs[i].field == field)
            return &s->fs[i];
    return NULL;
}

static field_stream *add_stream(resp_state *s, const sl_guard_conf *c, int choice, int field)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        field_stream *v = realloc(s->fs, cap * sizeof *v);
        if (!v)
            return NULL;
        s->fs = v;
        s->cap = cap;
    }
    field_stream *f = &s->fs[s->n];
    *f = (field_stream){.choice = choice, .field = field};
    if (sl_guard_stream_init(&f->st, &c->rules, c->holdback) < 0)
        return NULL;
    s->n++;
    return f;
}

/* id, object, created, model of the stream's chunks, from its first event: read only when a
 * chunk is made up (a hit, or text held at the end), which most streams never need. */
static json_t *template_of(resp_state *s)
{
    if (!s->tmpl && s->first)
        s->tmpl = sl_resp_chunk_like(s->first, s->first_len);
    return s->tmpl;
}

static void keep_first(resp_state *s, sl_resp_event *ev)
{
    size_t n = 0;
    const char *text = sl_resp_event_text(ev, &n);
    if (text && (s->first = malloc(n ? n : 1))) {
        memcpy(s->first, text, n);
        s->first_len = n;
    }
}

/* The text that may go out for one field of one choice of this event. */
typedef struct piece {
    int pos;                /* the choice's place in choices */
    int index, field;
    const char *out;        /* in the field's stream buffer (sl_guard_stream_feed) */
    size_t len;
    bool had_field;         /* the field held a string */
} piece;

static void add_piece_to_chunk(json_t *chunk, bool chat, const char *const *fields, const piece *p)
{
    json_t *choices = json_object_get(chunk, "choices");
    json_t *ch = NULL;
    size_t i;
    json_t *it;
    json_array_foreach(choices, i, it)
        if (json_integer_value(json_object_get(it, "index")) == p->index)
            ch = it;
    if (!ch) {
        json_array_append_new(choices, choice_obj(chat, true, p->index, fields[p->field], p->out, p->len, NULL));
        return;
    }
    json_object_set_new(chat ? json_object_get(ch, "delta") : ch, fields[p->field], json_stringn(p->out, p->len));
}

static void flush_at_done(sl_exchange *ex, const sl_guard_conf *c, resp_state *s, bool chat)
{
    const char *const *fields = chat ? chat_fields : cmpl_fields;
    /* the chunks are made when first needed: most streams end with nothing held */
    json_t *chunk = NULL, *stop = NULL;
    bool failed = !s->first;
    for (size_t i = 0; i < s->n && !failed; i++) {
        field_stream *f = &s->fs[i];
        if (f->finished)
            continue;
        f->finished = true;
        sl_guard_hit hit;
        piece p = {.index = f->choice, .field = f->field};
        sl_guard_feed r = sl_guard_stream_feed(&f->st, "", 0, true, &p.out, &p.len, &hit);
        if (r == SL_GUARD_FEED_HIT) { /* only a rule that looks at the end ($, \b) can hit here */
            audit_block(ex, c, &hit, "response");
            sl_ex_mark_altered(ex);
            if (stop || (stop = chunk_from(template_of(s))))
                json_array_append_new(json_object_get(stop, "choices"),
                                      choice_obj(chat, true, f->choice, NULL, NULL, 0, "content_filter"));
            failed = !stop;
        }
        if (p.out && (chunk || (chunk = chunk_from(template_of(s)))))
            add_piece_to_chunk(chunk, chat, fields, &p);
        failed |= p.out && !chunk;
    }
    if (chunk)
        sl_ex_emit_event(ex, chunk);
    if (stop)
        sl_ex_emit_event(ex, stop);
    json_decref(chunk);
    json_decref(stop);
}

/* One choice of the event as the guard reads it, from the view or the tree. */
typedef struct choice_in {
    int index;
    bool final;             /* it has a finish_reason */
    const sl_resp_choice *c; /* view: the choice summed up */
    json_t *holder;         /* tree: the delta (or the choice) */
} choice_in;

/* The token of field f (of chat_fields or cmpl_fields) of choice c, whose text is in its delta
 * (a chunk), its message (an answer) or itself (a text completion); -1 where absent. */
static int field_tok(const sl_jview *v, const sl_resp_choice *c, bool chat, bool stream, int f)
{
    if (!chat)
        return c->text;
    int holder = stream ? c->delta : c->message;
    if (holder < 0)
        return -1;
    if (holder != (c->delta >= 0 ? c->delta : c->message)) /* not the holder summed up */
        return sl_jview_get(v, holder, chat_fields[f]);
    return f == 0 ? c->content : c->reasoning_content;
}

/* The text of the choice's field f, or NULL when it holds no string. */
static const char *field_in(const sl_jview *v, const choice_in *ci, bool chat, int f, size_t *len)
{
    if (v)
        return sl_jview_str(v, field_tok(v, ci->c, chat, true, f), len);
    json_t *s = json_object_get(ci->holder, (chat ? chat_fields : cmpl_fields)[f]);
    *len = json_string_length(s);
    return json_string_value(s);
}

/* Piece p's text set in the tree (made now if need be), the delta made where there was none. */
static void set_in_tree(sl_resp_event *ev, bool chat, const char *const *fields, const piece *p)
{
    json_t *json = sl_resp_event_json(ev);
    json_t *ch = json_array_get(json_object_get(json, "choices"), (size_t)p->pos);
    json_t *holder = chat ? json_object_get(ch, "delta") : ch;
    if (!json_is_object(holder)) {
        if (!json_is_object(ch))
            return;
        holder = json_object();
        json_object_set_new(ch, "delta", holder);
        sl_resp_event_edit(ev);
    }
    json_t *was = json_object_get(holder, fields[p->field]);
    if (json_is_string(was) && json_string_length(was) == p->len &&
        (p->len == 0 || memcmp(json_string_value(was), p->out, p->len) == 0))
        return; /* all of it may go out now: unchanged */
    sl_resp_event_set_string(ev, holder, fields[p->field], p->out ? p->out : "", p->len);
}

/* What may go out of each piece put in the event: through the view where the holder is an
 * object there (the field's string replaced, or the field added), else in the tree. */
static void apply_pieces(sl_resp_event *ev, bool chat, const char *const *fields, const piece *pieces, size_t np)
{
    for (size_t k = 0; k < np; k++) {
        const piece *p = &pieces[k];
        if (!p->had_field && !p->out)
            continue;
        const char *out = p->out ? p->out : "";
        const sl_jview *v = sl_resp_event_view(ev); /* as it stands after the pieces before */
        const sl_resp_summary *sum = v ? sl_resp_event_summary(ev) : NULL;
        const sl_resp_choice *c = sum && (size_t)p->pos < sum->n ? &sum->c[p->pos] : NULL;
        int holder = !c ? -1 : chat ? c->delta : c->tok;
        if (sl_jview_type(v, holder) == SL_JV_OBJECT) {
            int tok = field_tok(v, c, chat, true, p->field);
            size_t wn;
            const char *was = sl_jview_str(v, tok, &wn);
            if (was && wn == p->len && (p->len == 0 || memcmp(was, out, p->len) == 0))
                continue; /* all of it may go out now: unchanged */
            if (was ? sl_resp_event_view_set_string(ev, tok, out, p->len) == 0
                    : tok < 0 && sl_resp_event_view_add_string(ev, holder, fields[p->field], out, p->len) == 0)
                continue;
        }
        set_in_tree(ev, chat, fields, p);
    }
}

static sl_event_action scan_stream_event(sl_exchange *ex, const sl_guard_conf *c, resp_state *s, sl_resp_event *ev,
                                         bool chat)
{
    const char *const *fields = chat ? chat_fields : cmpl_fields;
    const sl_jview *v = sl_resp_event_view(ev);
    const sl_resp_summary *sum = v ? sl_resp_event_summary(ev) : NULL;
    if (!sum)
        v = NULL;
    json_t *json = v ? NULL : sl_resp_event_json(ev);
    json_t *choices = v ? NULL : json_object_get(json, "choices");
    size_t n_choices = v ? sum->n : json_is_array(choices) ? json_array_size(choices) : 0;
    if (n_choices == 0)
        return SL_EVENT_PASS;
    if (!s->first)
        keep_first(s, ev);
    size_t n_fields = chat ? 2 : 1;
    piece small[8]; /* one choice (or a few) per chunk: no allocation at every event */
    piece *pieces = n_choices * n_fields <= 8 ? small : calloc(n_choices * n_fields, sizeof *pieces);
    if (!pieces)
        return SL_EVENT_PASS;
    size_t np = 0;
    bool hit_found = false;
    sl_guard_hit hit;
    for (size_t i = 0; i < n_choices && !hit_found; i++) {
        choice_in ci = {.index = (int)i};
        if (v) {
            ci.c = &sum->c[i];
            ci.index = (int)ci.c->index;
            ci.final = sl_jview_type(v, ci.c->finish_reason) == SL_JV_STRING;
        } else {
            static const char *const of_choice[] = {"index", "finish_reason", "delta", NULL};
            json_t *cv[3];
            json_t *choice = json_array_get(choices, i);
            sl_json_pick(choice, of_choice, cv);
            if (json_is_integer(cv[0]))
                ci.index = (int)json_integer_value(cv[0]);
            ci.final = json_is_string(cv[1]);
            ci.holder = chat ? cv[2] : choice;
        }
        for (int f = 0; fields[f] && !hit_found; f++) {
            size_t len = 0;
            const char *text = field_in(v, &ci, chat, f, &len);
            field_stream *fs = find_stream(s, ci.index, f);
            if (!text && !(ci.final && fs))
                continue;
            piece *p = &pieces[np++];
            *p = (piece){.pos = (int)i, .index = ci.index, .field = f, .had_field = text != NULL};
            if (!fs && !(fs = add_stream(s, c, ci.index, f))) {
                p->out = ""; /* out of memory: send nothing unscanned */
                continue;
            }
            sl_guard_feed r = sl_guard_stream_feed(&fs->st, text ? text : "", len, ci.final, &p->out, &p->len, &hit);
            fs->finished = ci.final;
            hit_found = r == SL_GUARD_FEED_HIT;
        }
    }
    sl_event_action act = SL_EVENT_PASS;
    if (!hit_found) {
        apply_pieces(ev, chat, fields, pieces, np);
    } else {
        audit_block(ex, c, &hit, "response");
        sl_ex_mark_altered(ex);
        json_t *pre = chunk_from(template_of(s));
        bool any = false;
        for (size_t k = 0; k < np; k++)
            if (pieces[k].out) {
                add_piece_to_chunk(pre, chat, fields, &pieces[k]);
                any = true;
            }
        if (any)
            sl_ex_emit_event(ex, pre);
        json_decref(pre);
        json_t *stop = chunk_from(template_of(s));
        json_t *stop_choices = json_object_get(stop, "choices");
        for (size_t k = 0; k < s->n; k++) {
            bool dup = false;
            for (size_t j = 0; j < k && !dup; j++)
                dup = s->fs[j].choice == s->fs[k].choice;
            if (!dup)
                json_array_append_new(stop_choices, choice_obj(chat, true, s->fs[k].choice, NULL, NULL, 0,
                                                               "content_filter"));
        }
        sl_resp_event_replace(ev, stop);
        act = SL_EVENT_STOP;
    }
    if (pieces != small)
        free(pieces);
    return act;
}

/* A whole (non-streamed) response: a hit keeps the text before it. True when it cut. */
static bool scan_body(sl_exchange *ex, const sl_guard_conf *c, json_t *body, bool chat)
{
    const char *const *fields = chat ? chat_fields : cmpl_fields;
    sl_guard_scratch *sc = sl_guard_scratch_take();
    sl_guard_norm *norm = sc ? &sc->norm : NULL;
    pcre2_match_data *md = sc ? sc->md : NULL;
    size_t i;
    json_t *ch;
    bool blocked = false;
    const json_t *choices = json_object_get(body, "choices"); /* the macro reads it each turn */
    json_array_foreach(choices, i, ch) {
        json_t *holder = chat ? json_object_get(ch, "message") : ch;
        for (int f = 0; fields[f] && md; f++) {
            json_t *v = json_object_get(holder, fields[f]);
            sl_guard_hit hit;
            if (!json_is_string(v) || sl_guard_normalize(norm, json_string_value(v), json_string_length(v)) < 0 ||
                !sl_guard_rules_scan(&c->rules, norm->s, norm->len, 0, false, !norm->raw, md, &hit))
                continue;
            if (!blocked)
                audit_block(ex, c, &hit, "response");
            blocked = true;
            json_object_set_new(holder, fields[f], json_stringn(json_string_value(v), norm->map[hit.start]));
            json_object_set_new(ch, "finish_reason", json_string("content_filter"));
        }
    }
    if (blocked)
        sl_ex_mark_altered(ex);
    sl_guard_scratch_give(sc);
    return blocked;
}

/* Whether a whole answer, read through its view, has a field some rule hits. */
static bool body_hits(const sl_guard_conf *c, const sl_jview *v, const sl_resp_summary *sum, bool chat)
{
    const char *const *fields = chat ? chat_fields : cmpl_fields;
    sl_guard_scratch *sc = sl_guard_scratch_take();
    bool hit = false;
    for (size_t i = 0; sc && !hit && i < sum->n; i++) {
        for (int f = 0; fields[f] && !hit; f++) {
            size_t n;
            const char *text = sl_jview_str(v, field_tok(v, &sum->c[i], chat, false, f), &n);
            sl_guard_hit h;
            hit = text && sl_guard_normalize(&sc->norm, text, n) == 0 &&
                  sl_guard_rules_scan(&c->rules, sc->norm.s, sc->norm.len, 0, false, !sc->norm.raw, sc->md, &h);
        }
    }
    sl_guard_scratch_give(sc);
    return hit;
}

static sl_event_action guard_on_response_event(sl_exchange *ex, void *conf, sl_resp_event *ev)
{
    sl_guard_conf *c = conf;
    sl_endpoint ep = sl_ex_endpoint(ex);
    if (!c->on_response || sl_guard_rules_empty(&c->rules) || (ep != SL_EP_CHAT && ep != SL_EP_COMPLETIONS) ||
        ev->status < 200 || ev->status >= 300)
        return SL_EVENT_PASS;
    bool chat = ep == SL_EP_CHAT;
    if (!ev->stream) {
        /* read through the view; the tree is made only to cut a hit */
        const sl_jview *v = sl_resp_event_view(ev);
        const sl_resp_summary *sum = v ? sl_resp_event_summary(ev) : NULL;
        if (sum && !body_hits(c, v, sum, chat))
            return SL_EVENT_PASS;
        json_t *json = sl_resp_event_json(ev);
        if (json && scan_body(ex, c, json, chat))
            sl_resp_event_edit(ev);
        return SL_EVENT_PASS;
    }
    resp_state *s = sl_ex_plugin_state(ex, &sl_plugin_guard);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)))
            return SL_EVENT_PASS;
        sl_ex_set_plugin_state(ex, &sl_plugin_guard, s);
    }
    if (ev->done) {
        flush_at_done(ex, c, s, chat);
        return SL_EVENT_PASS;
    }
    const sl_jview *v = sl_resp_event_view(ev);
    if (v ? sl_jview_type(v, 0) != SL_JV_OBJECT : !json_is_object(sl_resp_event_json(ev)))
        return SL_EVENT_PASS;
    return scan_stream_event(ex, c, s, ev, chat);
}

static void guard_on_complete(sl_exchange *ex, void *conf)
{
    (void)conf;
    resp_state *s = sl_ex_plugin_state(ex, &sl_plugin_guard);
    if (s) {
        resp_state_free(s);
        sl_ex_set_plugin_state(ex, &sl_plugin_guard, NULL);
    }
}

const sl_plugin sl_plugin_guard = {
    .name = "guard",
    .api_version = SL_PLUGIN_API_VERSION,
    .config_parse = sl_guard_config_parse,
    .config_free = sl_guard_config_free,
    .on_request = guard_on_request,
    .wants_events = true,
    .on_response_event = guard_on_response_event,
    .on_complete = guard_on_complete,
};
