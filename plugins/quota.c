/* quota: token quotas per consumer and window that hold under concurrency and across
 * instances. At admission the prompt (an upper-bound count) plus the completion cap is
 * reserved atomically in the store — the cap lowered to what is left — and the request's
 * max_tokens set to that cap; when the exchange ends the reservation is settled to the
 * upstream's usage (or the gateway's own count), charged for what reached the client if
 * it went away, released if the upstream failed before any token. A stream that runs past
 * its cap is cut with finish_reason "length". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "config_int.h"
#include "fmt_int.h"
#include "log.h"
#include "plugin.h"
#include "json_view.h"
#include "store.h"
#include "token_count.h"
#include "tokenizer.h"

extern const sl_plugin sl_plugin_quota;

typedef struct quota_conf {
    const struct sl_tokenizer *tok;
    long long default_cap;
} quota_conf;

typedef struct quota_state {
    const quota_conf *conf;
    sl_exchange *ex;
    sl_quota_resv resv;
    bool have_resv;
    bool reserving;         /* the store has not answered yet */
    bool completed;         /* the exchange ended meanwhile */
    int64_t prompt_est;
    int64_t cap;
    bool own_cap;           /* the request set max_tokens (or max_completion_tokens) */
    char *text;             /* the completion text that reached the client */
    size_t len, tcap;
    int64_t counted;        /* running count of text, chunk by chunk */
    bool delivered;
    bool cut;
} quota_state;

static void state_free(quota_state *s)
{
    free(s->text);
    free(s);
}

static void ignore_cb(void *arg, sl_store_status st, const sl_quota_resv *r, const sl_quota_usage *u, const sl_err *err)
{
    (void)r;
    (void)u;
    if (st != SL_STORE_OK)
        sl_log_warn("quota: settling %s failed: %s", (const char *)arg ? (const char *)arg : "",
                    err && err->msg[0] ? err->msg : sl_store_status_name(st));
}

static void reserved(void *arg, sl_store_status st, const sl_quota_resv *r, const sl_quota_usage *u, const sl_err *err)
{
    quota_state *s = arg;
    sl_exchange *ex = s->ex;
    s->reserving = false;
    if (s->completed) { /* the client left while we waited: give it back */
        if (st == SL_STORE_OK)
            sl_store_quota_release(sl_ex_store(ex), r, ignore_cb, NULL);
        state_free(s);
        sl_ex_resume(ex, SL_STEP_RESPOND);
        return;
    }
    if (st == SL_STORE_OK) {
        s->resv = *r;
        s->have_resv = true;
        int64_t cap = r->amount - s->prompt_est;
        if (s->cap > 0 && (cap < s->cap || !s->own_cap)) {
            const sl_jview *v = sl_ex_request_view(ex);
            bool mct = v ? sl_jview_get(v, 0, "max_completion_tokens") >= 0
                         : json_object_get(sl_ex_body_view(ex), "max_completion_tokens") != NULL;
            sl_ex_body_set(ex, mct ? "max_completion_tokens" : "max_tokens", json_integer(cap));
            s->cap = cap;
        }
        char left[SL_FMT_INT_MAX];
        sl_fmt_int(left, (long long)(u ? u->remaining : 0));
        sl_ex_add_response_header(ex, "x-sluice-quota-remaining", left);
        sl_ex_log_field(ex, "quota_reserved", json_integer(r->amount));
        sl_ex_resume(ex, SL_STEP_CONTINUE);
        return;
    }
    /* refused: the exchange ends inside sl_ex_respond_error, without this state */
    sl_ex_set_plugin_state(ex, &sl_plugin_quota, NULL);
    if (st == SL_STORE_DENIED) {
        char when[40] = "never";
        if (u && u->resets_at) {
            time_t t = (time_t)u->resets_at;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        sl_ex_log_field(ex, "quota", json_string("exhausted"));
        sl_ex_respond_error(ex, 429, "insufficient_quota", "insufficient_quota", NULL,
                            "You exceeded your token quota: %lld of %lld tokens used or reserved in this %s, "
                            "%lld left, this request needs at least %lld. The window resets at %s.",
                            (long long)(u ? u->used + u->reserved : 0), (long long)(u ? u->limit : 0),
                            sl_window_name(s->resv.window), (long long)(u ? u->remaining : 0),
                            (long long)(s->prompt_est + (s->cap > 0 ? 1 : 0)), when);
    } else {
        sl_log_warn("quota: reserve failed: %s", err && err->msg[0] ? err->msg : sl_store_status_name(st));
        sl_ex_respond_error(ex, 503, "api_error", "store_unavailable", NULL,
                            "the gateway cannot check the token quota right now; retry shortly");
    }
    state_free(s);
    sl_ex_resume(ex, SL_STEP_RESPOND);
}

static sl_step quota_on_request(sl_exchange *ex, void *conf)
{
    quota_conf *qc = conf;
    sl_endpoint ep = sl_ex_endpoint(ex);
    if (ep != SL_EP_CHAT && ep != SL_EP_COMPLETIONS && ep != SL_EP_EMBEDDINGS)
        return SL_STEP_CONTINUE;
    const sl_consumer_conf *cc = sl_ex_consumer(ex) ? sl_config_consumer(sl_ex_config(ex), sl_ex_consumer(ex)) : NULL;
    if (!cc || cc->quota_tokens <= 0)
        return SL_STEP_CONTINUE;
    quota_state *s = calloc(1, sizeof *s);
    if (!s) {
        sl_ex_respond_error(ex, 500, "api_error", "internal_error", NULL, "out of memory");
        return SL_STEP_RESPOND;
    }
    s->conf = qc;
    s->ex = ex;
    s->prompt_est = sl_ex_prompt_estimate(ex, qc->tok); /* ratelimit's may serve */
    if (ep != SL_EP_EMBEDDINGS) {
        const sl_jview *v = sl_ex_request_view(ex);
        s->cap = v ? sl_token_request_cap_view(v) : sl_token_request_cap(sl_ex_body_view(ex));
        s->own_cap = s->cap != 0;
        const sl_model_conf *m = sl_config_model(sl_ex_config(ex), sl_ex_model(ex));
        if (!s->cap)
            s->cap = m && m->profile.max_tokens > 0 ? m->profile.max_tokens : qc->default_cap;
        if (m && m->profile.max_tokens_limit > 0 && s->cap > m->profile.max_tokens_limit)
            s->cap = m->profile.max_tokens_limit;
    }
    sl_ex_log_field(ex, "prompt_tokens_estimate", json_integer(s->prompt_est));
    sl_ex_set_plugin_state(ex, &sl_plugin_quota, s);
    s->reserving = true;
    s->resv.window = cc->quota_window;
    sl_store_quota_reserve(sl_ex_store(ex), cc->name, cc->quota_window, cc->quota_tokens,
                           s->prompt_est + (s->cap > 0 ? 1 : 0), s->prompt_est + s->cap, reserved, s);
    return SL_STEP_PENDING;
}

/* A final chunk saying the cap was reached, in the shape of the event it replaces. */
static json_t *length_chunk(const json_t *ev)
{
    json_t *o = json_object();
    const char *keys[] = {"id", "object", "created", "model"};
    for (size_t i = 0; i < 4; i++)
        if (json_object_get(ev, keys[i]))
            json_object_set(o, keys[i], json_object_get(ev, keys[i]));
    bool chat = json_is_string(json_object_get(ev, "object")) &&
                strcmp(json_string_value(json_object_get(ev, "object")), "chat.completion.chunk") == 0;
    json_t *choice = chat ? json_pack("{s:i, s:{}, s:s}", "index", 0, "delta", "finish_reason", "length")
                          : json_pack("{s:i, s:s, s:s}", "index", 0, "text", "", "finish_reason", "length");
    json_object_set_new(o, "choices", json_pack("[o]", choice));
    return o;
}

/* An upstream that ignored max_tokens never gets more than the reserved cap past us: the
 * usage it reports is lowered to the cap (what was served and is charged). True when it
 * lowered it. */
static bool clamp_usage(json_t *usage, int64_t cap)
{
    json_t *ct = json_object_get(usage, "completion_tokens");
    if (cap <= 0 || !json_is_integer(ct) || json_integer_value(ct) <= cap)
        return false;
    json_t *pt = json_object_get(usage, "prompt_tokens");
    json_object_set_new(usage, "completion_tokens", json_integer(cap));
    if (json_is_integer(pt))
        json_object_set_new(usage, "total_tokens", json_integer(json_integer_value(pt) + cap));
    return true;
}

/* The first cap tokens of text (malloc'd). */
static char *first_tokens(const struct sl_tokenizer *tok, const char *text, int64_t cap)
{
    size_t len = strlen(text);
    if (!tok) { /* the estimate: 3 bytes a token; cut on a character boundary */
        size_t n = (size_t)cap * 3 < len ? (size_t)cap * 3 : len;
        while (n > 0 && n < len && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
        return strndup(text, n);
    }
    int32_t *ids = NULL;
    size_t n = 0;
    char *out = NULL;
    size_t olen = 0;
    if (sl_tokenizer_encode(tok, text, len, false, &ids, &n) == 0 &&
        sl_tokenizer_decode(tok, ids, n < (size_t)cap ? n : (size_t)cap, false, &out, &olen) == 0) {
        free(ids);
        return out;
    }
    free(ids);
    return strdup(text);
}

/* A whole (not streamed) answer longer than the cap is cut to it, finish_reason "length". */
static bool cut_body(quota_state *s, json_t *body)
{
    const struct sl_tokenizer *tok = s->conf->tok;
    json_t *usage = json_object_get(body, "usage");
    json_t *ct = json_object_get(usage, "completion_tokens");
    bool over = (json_is_integer(ct) && json_integer_value(ct) > s->cap) ||
                sl_token_count(tok, s->text ? s->text : "", s->len) > s->cap;
    if (!over)
        return false;
    size_t i;
    json_t *ch;
    const json_t *choices = json_object_get(body, "choices"); /* the macro reads it each turn */
    json_array_foreach(choices, i, ch) {
        json_t *m = json_object_get(ch, "message");
        json_t *holder = m ? m : ch;
        const char *key = m ? "content" : "text";
        const char *text = json_string_value(json_object_get(holder, key));
        if (text && sl_token_count(tok, text, strlen(text)) > s->cap) {
            char *cut = first_tokens(tok, text, s->cap);
            json_object_set_new(holder, key, json_string(cut ? cut : ""));
            free(cut);
        }
        json_object_set_new(ch, "finish_reason", json_string("length"));
    }
    clamp_usage(usage, s->cap);
    s->len = 0;
    sl_token_collect_text(body, &s->text, &s->len, &s->tcap);
    return true;
}

/* A streamed event reporting more completion tokens than the cap (its usage is then clamped
 * in its tree). */
static bool usage_over(const sl_jview *v, const sl_resp_summary *sum, int64_t cap)
{
    long long ct;
    return cap > 0 && sum && sl_jview_int(v, sl_jview_get(v, sum->usage, "completion_tokens"), &ct) && ct > cap;
}

static sl_event_action quota_on_event(sl_exchange *ex, void *conf, sl_resp_event *ev)
{
    quota_state *s = sl_ex_plugin_state(ex, &sl_plugin_quota);
    if (!s || !s->have_resv || ev->done)
        return SL_EVENT_PASS;
    /* the event is read through its view; its tree is made only to change it */
    const sl_jview *v = sl_resp_event_view(ev);
    if (!v || usage_over(v, sl_resp_event_summary(ev), s->cap)) {
        json_t *json = sl_resp_event_json(ev);
        if (!json)
            return SL_EVENT_PASS;
        if (clamp_usage(json_object_get(json, "usage"), s->cap))
            sl_resp_event_edit(ev);
        v = sl_resp_event_view(ev);
    }
    size_t before = s->len;
    if (v)
        sl_token_collect_view(v, sl_resp_event_summary(ev), &s->text, &s->len, &s->tcap);
    else
        sl_token_collect_text(sl_resp_event_json(ev), &s->text, &s->len, &s->tcap);
    if (!ev->stream) {
        /* a whole answer over the cap (as its view tells) is cut in its tree */
        bool over = s->cap > 0 && (!v || sl_token_count(((quota_conf *)conf)->tok, s->text ? s->text : "", s->len) > s->cap);
        if (over && cut_body(s, sl_resp_event_json(ev))) {
            s->cut = true;
            sl_resp_event_edit(ev);
            sl_ex_mark_altered(ex);
            sl_ex_log_field(ex, "quota_cut", json_true());
        }
        s->delivered = s->len > 0;
        return SL_EVENT_PASS;
    }
    if (s->len == before)
        return SL_EVENT_PASS;
    s->counted += sl_token_count(((quota_conf *)conf)->tok, s->text + before, s->len - before);
    if (s->cap > 0 && s->counted > s->cap) {
        s->counted = sl_token_count(((quota_conf *)conf)->tok, s->text, s->len); /* exact, at the edge */
        if (s->counted > s->cap) {
            s->len = before; /* this event's text never reaches the client */
            s->counted = sl_token_count(((quota_conf *)conf)->tok, s->text, s->len);
            s->cut = true;
            sl_resp_event_replace(ev, length_chunk(sl_resp_event_json(ev)));
            sl_ex_mark_altered(ex);
            sl_ex_log_field(ex, "quota_cut", json_true());
            return SL_EVENT_STOP;
        }
    }
    s->delivered = true;
    return SL_EVENT_PASS;
}

static int64_t usage_field(const json_t *u, const char *k)
{
    json_t *v = json_object_get(u, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static void quota_on_complete(sl_exchange *ex, void *conf)
{
    quota_state *s = sl_ex_plugin_state(ex, &sl_plugin_quota);
    if (!s)
        return;
    sl_ex_set_plugin_state(ex, &sl_plugin_quota, NULL);
    if (s->reserving) {
        s->completed = true; /* reserved() releases and frees */
        return;
    }
    if (!s->have_resv) {
        state_free(s);
        return;
    }
    int status = sl_ex_status(ex);
    const json_t *usage = sl_ex_usage(ex);
    const json_t *cache = sl_ex_log_get(ex, "cache");
    int64_t charge = -1; /* -1: release */
    if (json_is_string(cache) && strcmp(json_string_value(cache), "hit") == 0) {
        if (json_is_true(sl_ex_log_get(ex, "cache_charge"))) {
            const json_t *pt = sl_ex_log_get(ex, "prompt_tokens"), *ct = sl_ex_log_get(ex, "completion_tokens");
            charge = (json_is_integer(pt) ? json_integer_value(pt) : s->prompt_est) +
                     (json_is_integer(ct) ? json_integer_value(ct) : 0);
        }
    } else if ((status >= 200 && status < 300) || s->delivered || status == 499) {
        int64_t pt = usage_field(usage, "prompt_tokens"), ct = usage_field(usage, "completion_tokens");
        bool whole = status >= 200 && status < 300 && (!s->cut || !sl_ex_stream(ex)) && ct >= 0;
        if (pt < 0)
            pt = s->prompt_est;
        if (s->cap > 0 && ct > s->cap)
            ct = s->cap; /* what the client was given (clamp_usage) */
        if (!whole) /* cut, or the client left: what reached it, by our count */
            ct = sl_token_count(((quota_conf *)conf)->tok, s->text, s->len);
        charge = pt + ct;
    }
    if (charge < 0) {
        sl_store_quota_release(sl_ex_store(ex), &s->resv, ignore_cb, NULL);
    } else {
        sl_ex_log_field(ex, "quota_charged", json_integer(charge));
        sl_store_quota_settle(sl_ex_store(ex), &s->resv, charge, ignore_cb, NULL);
    }
    state_free(s);
}

static void quota_free(void *conf) { free(conf); }

static int quota_parse(const sl_ynode *node, sl_plugin_ctx *ctx, void **out)
{
    static const char *const keys[] = {"tokenizer", "default_max_tokens", NULL};
    quota_conf *qc = calloc(1, sizeof *qc);
    if (!qc)
        return -1;
    *out = qc;
    qc->default_cap = 4096;
    if (!node || sl_ynode_is_null(node))
        return 0;
    int rc = sl_ymap_check_keys(node, keys, ctx->diag);
    char *path = NULL;
    rc |= sl_cfg_str(node, "tokenizer", ctx->diag, &path);
    rc |= sl_cfg_int(node, "default_max_tokens", ctx->diag, 1, 10000000, &qc->default_cap);
    if (path) {
        sl_err err = {{0}};
        qc->tok = sl_token_counter_get(path, &err);
        if (!qc->tok) /* a model folder not there yet: count by the estimate meanwhile */
            sl_diag_warn(ctx->diag, sl_ymap_get(node, "tokenizer"),
                         "plugins: quota.tokenizer: %s; counting by the estimate (1 token per 3 bytes)", err.msg);
        free(path);
    }
    return rc ? -1 : 0;
}

const sl_plugin sl_plugin_quota = {
    .name = "quota",
    .api_version = SL_PLUGIN_API_VERSION,
    .config_parse = quota_parse,
    .config_free = quota_free,
    .on_request = quota_on_request,
    .wants_events = true,
    .on_response_event = quota_on_event,
    .on_complete = quota_on_complete,
};
