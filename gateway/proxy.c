/* The upstream side of an exchange: the attempt plan (targets, then fallbacks), retries
 * with backoff, circuit breakers, and forwarding the response — streamed event by event
 * with backpressure, or buffered — to the client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "circuit.h"
#include "event_memo.h"
#include "exchange_int.h"
#include "json_dump.h"
#include "json_plain.h"
#include "json_parse.h"
#include "json_view.h"
#include "log.h"
#include "openai_error.h"
#include "pool.h"
#include "profile.h"
#include "text_edits.h"
#include "str_copy.h"

#define MAX_RESPONSE_BYTES (64u << 20)

/* ---- writing to the client ---- */

static void stream_writev(sl_exchange *ex, const sl_http_piece *parts, size_t n)
{
    if (!ex->conn || !ex->client_streaming)
        return;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += parts[i].len;
    sl_http_stream_writev(ex->conn, parts, n);
    if (ex->ttft_ms <= 0)
        ex->ttft_ms = sl_ex_ms_since(&ex->t0);
    ex->bytes_out += len;
}

void sl_ex_stream_write(sl_exchange *ex, const char *data, size_t len)
{
    sl_http_piece one = {data, len};
    stream_writev(ex, &one, 1);
}

void sl_ex_stream_write_data(sl_exchange *ex, const char *json, size_t len)
{
    sl_http_piece parts[3] = {{"data: ", 6}, {json, len}, {"\n\n", 2}};
    stream_writev(ex, parts, 3);
}

void sl_ex_client_stream_begin(sl_exchange *ex)
{
    if (!ex->conn || ex->client_streaming)
        return;
    ex->client_streaming = true;
    ex->status = 200;
    sl_ex_add_common_headers(ex);
    sl_http_add_header(ex->conn, "Cache-Control", "no-cache");
    sl_http_add_header(ex->conn, "X-Accel-Buffering", "no");
    sl_http_stream_begin(ex->conn, 200, "text/event-stream; charset=utf-8");
}

void sl_ex_end_stream(sl_exchange *ex)
{
    if (!ex->conn)
        return;
    sl_http_conn *c = ex->conn;
    ex->conn = NULL;
    ex->req = NULL;
    sl_http_stream_end(c);
}

/* Remember the usage an event or body reports. Returns true for the usage-only chunk
 * of a stream (choices empty), which clients that did not ask for it must not see. */
static bool note_usage_json(sl_exchange *ex, const json_t *o)
{
    json_t *u = json_object_get(o, "usage");
    if (!json_is_object(u))
        return false;
    json_decref(ex->usage);
    ex->usage = json_deep_copy(u); /* its own: the tree it came from is read into again */
    json_t *choices = json_object_get(o, "choices");
    return json_is_array(choices) && json_array_size(choices) == 0;
}

static bool note_usage(sl_exchange *ex, const char *json_text, size_t len)
{
    if (!memmem(json_text, len, "\"usage\"", 7))
        return false;
    json_t *o = sl_json_loadb(json_text, len, 0, NULL);
    bool usage_only = o && note_usage_json(ex, o);
    json_decref(o);
    return usage_only;
}

/* The plugins that want response events, in chain order, until one drops or stops. */
static sl_event_action run_event_hooks(sl_exchange *ex, sl_resp_event *ev)
{
    sl_event_action act = SL_EVENT_PASS;
    for (size_t i = 0; i < ex->cfg->n_plugins && act == SL_EVENT_PASS; i++) {
        const sl_plugin *p = ex->cfg->plugins[i].plugin;
        if (p->wants_events && p->on_response_event) {
            if (p->api_version < 3)
                sl_resp_event_json(ev); /* made before the hook, as version 2 promised */
            act = p->on_response_event(ex, ex->cfg->plugins[i].conf, ev);
        }
    }
    return act;
}

/* ---- the attempt in progress ---- */

/* The attempt's transfer is over (done or cancelled): its time counts as the upstream's
 * (the rest is what the gateway added), and its engine process goes back. */
static void attempt_release(sl_exchange *ex)
{
    if (ex->up_open) {
        ex->upstream_ms += sl_ex_ms_since(&ex->t0) - ex->up_began_ms;
        ex->up_open = false;
    }
    if (ex->engine) {
        sl_pool_release(ex->engine);
        ex->engine = NULL;
    }
}

static void try_next(sl_exchange *ex);
static void launch(sl_exchange *ex, const sl_attempt *a);

static void attempt_note(sl_exchange *ex, const char *outcome)
{
    if (!ex->attempt_log)
        ex->attempt_log = json_array();
    char line[600];
    snprintf(line, sizeof line, "%s/%s: %s", ex->target->upstream, ex->target->model, outcome);
    json_array_append_new(ex->attempt_log, json_string(line));
}

/* Report the attempt's outcome to its circuit breaker, once. */
static void attempt_verdict(sl_exchange *ex, int verdict /* 1 ok, 0 failed, -1 none */)
{
    sl_attempt *a = ex->cur < ex->n_plan ? &ex->plan[ex->cur] : NULL;
    if (!a || !a->circuit || ex->attempt_reported)
        return;
    ex->attempt_reported = true;
    if (verdict < 0)
        sl_circuit_release(a->circuit);
    else
        sl_circuit_report(a->circuit, verdict == 1);
}

static unsigned failure_class(sl_upstream_result r, int status)
{
    if (r != SL_UP_OK)
        return sl_upstream_result_is_timeout(r) ? SL_FAIL_TIMEOUT : SL_FAIL_CONNECT;
    if (status == 429)
        return SL_FAIL_429;
    if (status >= 500)
        return SL_FAIL_5XX;
    return 0;
}

/* Delay before the next attempt, or -1 when the plan or its budget is spent. */
static long long next_delay(sl_exchange *ex, unsigned cls)
{
    const sl_retry_policy *p = ex->policy;
    if (!p || !(p->fail_on & cls) || ex->cur + 1 >= ex->n_plan || ex->n_started >= p->max_attempts)
        return -1;
    long long d = p->backoff_base_ms;
    for (int k = 1; k < ex->n_started && d < p->backoff_max_ms; k++)
        d *= 2;
    if (d > p->backoff_max_ms)
        d = p->backoff_max_ms;
    d = d / 2 + (d > 1 ? random() % (d / 2 + 1) : 0);
    const sl_attempt *next = &ex->plan[ex->cur + 1];
    if (ex->retry_after_ms > 0 && next->target->up == ex->target->up) {
        long long ra = ex->retry_after_ms < p->max_retry_after_ms ? ex->retry_after_ms : p->max_retry_after_ms;
        if (ra > d)
            d = ra;
    }
    if (sl_ex_ms_since(&ex->t0) + (double)d > (double)p->budget_ms)
        return -1;
    return d;
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_exchange *ex = arg;
    if (!ex->finished)
        try_next(ex);
}

/* A failed attempt: move on to the next target, or answer with this failure. */
static void attempt_failed(sl_exchange *ex, unsigned cls, int status, const char *type, const char *code,
                           const char *message)
{
    char outcome[300];
    snprintf(outcome, sizeof outcome, "%s", message);
    attempt_note(ex, outcome);
    attempt_verdict(ex, cls == SL_FAIL_429 ? 1 : 0);
    long long delay = next_delay(ex, cls);
    ex->last_status = status;
    ex->last_code = code;
    snprintf(ex->last_message, sizeof ex->last_message, "%s", message);
    if (delay >= 0) {
        ex->n_failed++;
        ex->cur++;
        ex->attempt_reported = false;
        if (!ex->backoff)
            ex->backoff = evtimer_new(ex->w->base, backoff_cb, ex);
        struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
        evtimer_add(ex->backoff, &tv);
        return;
    }
    sl_ex_respond_error_now(ex, status, type, code, NULL, message);
    sl_ex_finish(ex);
}

static void transport_failed(sl_exchange *ex, sl_upstream_result r, const char *message)
{
    char msg[512];
    bool timeout = sl_upstream_result_is_timeout(r);
    snprintf(msg, sizeof msg, "upstream %s: %s", ex->target->upstream, message);
    attempt_failed(ex, failure_class(r, 0), timeout ? 504 : 502, "api_error",
                   timeout ? "upstream_timeout" : "upstream_error", msg);
}

/* The usage a streamed event reports, read through its view (no tree made); see
 * note_usage_json. */
static bool note_usage_event(sl_exchange *ex, sl_resp_event *ev)
{
    const sl_jview *v = sl_resp_event_view(ev);
    if (!v) {
        json_t *json = sl_resp_event_json(ev);
        return json && note_usage_json(ex, json);
    }
    const sl_resp_summary *sum = sl_resp_event_summary(ev);
    json_t *usage = sum && sl_jview_type(v, sum->usage) == SL_JV_OBJECT ? sl_jview_json(v, sum->usage) : NULL;
    if (!usage)
        return false;
    json_decref(ex->usage);
    ex->usage = usage;
    return sum->choices >= 0 && sum->n == 0;
}

/* The event's edited text, or the buffer it did not need, is the next event's to write into
 * (one is kept, the larger, up to 64 KiB). */
static void keep_out_buffer(sl_exchange *ex, sl_resp_event *ev)
{
    char *keep = ev->out_spare;
    size_t cap = ev->out_spare_cap;
    if (ev->out && ev->out_cap > cap && ev->out_cap <= 65536) {
        free(keep);
        keep = ev->out;
        cap = ev->out_cap;
    } else {
        free(ev->out);
    }
    ev->out = ev->out_spare = NULL;
    ex->out_spare = keep;
    ex->out_spare_cap = keep ? cap : 0;
}

/* One event of the stream. at: when the read that brought it came (ms since the exchange's
 * start; < 0 until asked): the events of one read arrived together, and share one reading
 * of the clock. */
static void forward_event(sl_exchange *ex, const char *event, size_t len, double *at)
{
    size_t dlen = 0;
    char *joined = NULL;
    const char *data = sl_sse_data_of(&ex->sse, event, len, &dlen, &joined);
    bool done = data && dlen == 6 && memcmp(data, "[DONE]", 6) == 0;
    /* a stream's events share their shape: a tree, when one is made, is read into the last one's */
    sl_resp_event rev = {.stream = true, .done = done, .status = ex->up_status, .text = data, .text_len = dlen,
                         .spare = &ex->ev_spare, .view = &ex->w->ev_view,
                         .summary = &ex->w->ev_summary};
    if (ex->want_events && data && !ex->ev_memo)
        ex->ev_memo = sl_event_memo_take(ex->w->memo_spare, &ex->w->n_memo_spare); /* NULL: the worker's view */
    if (ex->ev_memo)
        sl_event_memo_lend(ex->ev_memo, &rev);
    if (done)
        ex->saw_done = true;
    else if (data && (ex->want_events ? note_usage_event(ex, &rev) : note_usage(ex, data, dlen)) &&
             !ex->client_wants_usage) {
        if (ex->ev_memo)
            sl_event_memo_keep(ex->ev_memo, &rev);
        sl_json_to_spare(&ex->ev_spare, rev.json); /* we asked the upstream for it; this client did not */
        free(joined);
        return;
    }
    sl_ex_client_stream_begin(ex);
    if (!done && data)
        sl_metrics_itl_event(&ex->itl, *at >= 0 ? *at : (*at = sl_ex_ms_since(&ex->t0)));
    if (!ex->want_events || !data) {
        free(joined);
        sl_ex_stream_write(ex, event, len);
        return;
    }
    rev.out_spare = ex->out_spare; /* an edit writes the event into the last one's buffer */
    rev.out_spare_cap = ex->out_spare_cap;
    ex->out_spare = NULL;
    sl_event_action act = run_event_hooks(ex, &rev);
    if (act != SL_EVENT_DROP) {
        size_t n = 0;
        const char *s = rev.edited ? sl_resp_event_text(&rev, &n) : NULL;
        if (s) {
            sl_ex_stream_write_data(ex, s, n);
        } else {
            sl_ex_stream_write(ex, event, len);
        }
    }
    if (ex->ev_memo)
        sl_event_memo_keep(ex->ev_memo, &rev);
    free(joined);
    keep_out_buffer(ex, &rev);
    sl_json_to_spare(&ex->ev_spare, rev.json);
    if (act == SL_EVENT_STOP) {
        ex->altered = true;
        if (!done)
            sl_ex_stream_write(ex, "data: [DONE]\n\n", 14);
        attempt_verdict(ex, 1);
        sl_proxy_stop(ex);
        sl_ex_end_stream(ex);
        sl_ex_finish(ex);
    }
}

static void up_on_headers(void *arg, int status, const char *ctype, const char *retry_after)
{
    sl_exchange *ex = arg;
    ex->up_status = status;
    ex->ttfb_ms = sl_ex_ms_since(&ex->t0);
    sl_str_put(ex->up_content_type, sizeof ex->up_content_type, 0, ctype ? ctype : "");
    sl_str_put(ex->retry_after, sizeof ex->retry_after, 0, retry_after ? retry_after : "");
    ex->retry_after_ms = retry_after ? strtoll(retry_after, NULL, 10) * 1000 : 0;
    unsigned cls = failure_class(SL_UP_OK, status);
    if (cls && next_delay(ex, cls) >= 0) {
        /* not worth reading: the next target gets the request */
        sl_upstream_cancel(ex->up);
        ex->up = NULL;
        attempt_release(ex);
        char msg[128];
        snprintf(msg, sizeof msg, "upstream %s answered %d", ex->target->upstream, status);
        attempt_failed(ex, cls, 502, "api_error", "upstream_error", msg);
        return;
    }
    if (status == 200 && ctype && strncasecmp(ctype, "text/event-stream", 17) == 0) {
        ex->up_stream = true;
        if (!ex->sse.pending)
            sl_sse_init(&ex->sse);
    }
}

static void up_on_data(void *arg, const char *data, size_t len)
{
    sl_exchange *ex = arg;
    if (!ex->up_stream) {
        if (evbuffer_get_length(ex->resp) + len > MAX_RESPONSE_BYTES) {
            sl_upstream_cancel(ex->up);
            ex->up = NULL;
            attempt_release(ex);
            attempt_verdict(ex, 0);
            sl_ex_respond_error_now(ex, 502, "api_error", "upstream_error", NULL, "upstream response too large");
            sl_ex_finish(ex);
            return;
        }
        evbuffer_add(ex->resp, data, len);
        return;
    }
    sl_ex_ref(ex);
    sl_sse_feed(&ex->sse, data, len);
    size_t n;
    const char *event;
    double at = -1;
    while (!ex->finished && (event = sl_sse_take(&ex->sse, &n)))
        forward_event(ex, event, n, &at);
    if (!ex->finished && ex->conn && ex->up &&
        sl_http_pending(ex->conn) > (size_t)ex->cfg->server.stream_buffer_bytes) {
        sl_upstream_pause(ex->up);
        sl_http_want_drain(ex->conn);
    }
    sl_ex_unref(ex);
}

void sl_proxy_client_drained(void *arg)
{
    sl_exchange *ex = arg;
    if (ex->up)
        sl_upstream_resume(ex->up);
}

static char *upstream_error_message(sl_exchange *ex, const char *body, size_t len)
{
    json_t *o = sl_json_loadb(body, len, 0, NULL);
    json_t *m = json_object_get(json_object_get(o, "error"), "message");
    if (!m)
        m = json_object_get(o, "message");
    char *out;
    if (json_is_string(m)) {
        if (asprintf(&out, "upstream %s answered %d: %s", ex->target->upstream, ex->up_status, json_string_value(m)) < 0)
            out = NULL;
    } else if (asprintf(&out, "upstream %s answered %d", ex->target->upstream, ex->up_status) < 0) {
        out = NULL;
    }
    json_decref(o);
    return out;
}

static void finish_buffered(sl_exchange *ex)
{
    size_t len = evbuffer_get_length(ex->resp);
    char *body = (char *)evbuffer_pullup(ex->resp, -1);
    const char *ctype = ex->up_content_type[0] ? ex->up_content_type : "application/json";
    int st = ex->up_status;
    bool is_json = strncasecmp(ctype, "application/json", 16) == 0;
    /* a 2xx JSON answer is read through its view; its tree is made when a plugin asks (or the
     * view cannot read it, to tell whether it is JSON at all) */
    sl_resp_event rev = {.stream = false, .status = st, .text = body ? body : "", .text_len = len,
                         .spare = &ex->w->answer_spare, .view = &ex->w->ev_view,
                         .summary = &ex->w->ev_summary};
    bool readable = is_json && st >= 200 && st < 300;
    if (readable && !sl_resp_event_view(&rev) && !sl_resp_event_json(&rev)) {
        /* a 200 the client cannot read is the upstream's failure, not a success to pass on */
        attempt_verdict(ex, 0);
        char msg[300];
        snprintf(msg, sizeof msg, "upstream %s answered %d with a body that is not valid JSON", ex->target->upstream, st);
        attempt_note(ex, msg);
        ex->upstream_ok = false;
        sl_ex_respond_error_now(ex, 502, "api_error", "upstream_error", NULL, msg);
        return;
    }
    attempt_verdict(ex, st >= 500 ? 0 : 1);
    if (st >= 500) {
        char *msg = upstream_error_message(ex, body ? body : "", len);
        attempt_note(ex, msg ? msg : "upstream error");
        int out = st == 503 || st == 504 ? st : 502;
        sl_ex_respond_error_now(ex, out, "api_error", st == 504 ? "upstream_timeout" : "upstream_error", NULL,
                                msg ? msg : "upstream error");
        free(msg);
        return;
    }
    if (st == 429 && ex->retry_after[0] && ex->conn)
        sl_http_add_header(ex->conn, "Retry-After", ex->retry_after);
    if (st >= 400)
        ex->error_code = "upstream_status";
    if (readable) {
        note_usage_event(ex, &rev);
        if (ex->want_events)
            run_event_hooks(ex, &rev);
    }
    /* the upstream's bytes, unless a plugin changed the answer */
    size_t n = len;
    const char *out = rev.edited ? sl_resp_event_text(&rev, &n) : body;
    sl_ex_respond_raw(ex, st, ctype, out ? out : body, out ? n : len);
    free(rev.out);
    sl_json_to_spare(&ex->w->answer_spare, rev.json);
}

/* An engine process that refused the connection has died and the main thread has not
 * reaped it yet (or its socket is gone): the same attempt goes to another process of the
 * same upstream, once, before it counts as the target's failure. */
static bool retry_other_engine(sl_exchange *ex, const sl_engine_proc *refused, sl_upstream_result result)
{
    if (result != SL_UP_CONNECT_FAILED || !refused || ex->engine_refused || ex->cur >= ex->n_plan)
        return false;
    ex->engine_refused = refused;
    attempt_note(ex, "engine process refused the connection: another process of the upstream");
    launch(ex, &ex->plan[ex->cur]);
    return true;
}

static void up_on_done(void *arg, sl_upstream_result result, const char *message)
{
    sl_exchange *ex = arg;
    ex->up = NULL;
    const sl_engine_proc *engine = ex->engine;
    attempt_release(ex);
    if (ex->finished)
        return;
    ex->upstream_ok = result == SL_UP_OK && ex->up_status >= 200 && ex->up_status < 300;
    if (ex->up_stream) {
        size_t n;
        char *rest = sl_sse_rest(&ex->sse, &n);
        if (rest) {
            /* an event the upstream did not finish: complete it only when its data is whole
             * (JSON or [DONE]); else it is dropped, as an SSE reader drops it, and the stream
             * counts as cut below */
            size_t dlen = 0;
            char *data = sl_sse_data(rest, n, &dlen);
            json_t *j = data ? sl_json_loadb(data, dlen, 0, NULL) : NULL;
            bool whole = j || (data && dlen == 6 && memcmp(data, "[DONE]", 6) == 0);
            json_decref(j);
            free(data);
            char *ev = whole ? malloc(n + 2) : NULL;
            if (ev) {
                memcpy(ev, rest, n);
                memcpy(ev + n, "\n\n", 2);
                double at = -1;
                forward_event(ex, ev, n + 2, &at);
                free(ev);
            }
            free(rest);
            if (ex->finished)
                return;
        }
        if (result != SL_UP_OK && !ex->client_streaming) {
            if (!retry_other_engine(ex, engine, result))
                transport_failed(ex, result, message); /* nothing reached the client: fall back */
            return;
        }
        bool cut = result == SL_UP_OK && !ex->saw_done && (ex->ep == SL_EP_CHAT || ex->ep == SL_EP_COMPLETIONS);
        sl_ex_client_stream_begin(ex);
        if (result != SL_UP_OK || cut) {
            /* the client already has a 200: end the stream with an error event, never silently */
            attempt_verdict(ex, 0);
            bool timeout = sl_upstream_result_is_timeout(result);
            char msg[512];
            snprintf(msg, sizeof msg, "upstream %s failed mid-stream: %s", ex->target->upstream,
                     cut ? "the stream ended without data: [DONE]" : message);
            ex->upstream_ok = false; /* a cut stream is never cached */
            attempt_note(ex, msg);
            size_t len;
            char *err = sl_openai_error_json("api_error", timeout ? "upstream_timeout" : "upstream_error", NULL, msg, &len);
            sl_ex_stream_write_data(ex, err, len);
            free(err);
            ex->error_code = timeout ? "upstream_timeout" : "upstream_error";
            sl_ex_stream_write(ex, "data: [DONE]\n\n", 14);
        } else {
            attempt_verdict(ex, 1);
        }
        sl_ex_end_stream(ex);
        sl_ex_finish(ex);
        return;
    }
    if (result != SL_UP_OK) {
        if (!retry_other_engine(ex, engine, result))
            transport_failed(ex, result, message);
        return;
    }
    finish_buffered(ex);
    sl_ex_finish(ex);
}

static const char *endpoint_path(sl_endpoint ep)
{
    switch (ep) {
    case SL_EP_CHAT: return "/chat/completions";
    case SL_EP_COMPLETIONS: return "/completions";
    case SL_EP_EMBEDDINGS: return "/embeddings";
    default: return NULL;
    }
}

/* The affinity key of a request to an engine: its leading system (or developer) messages
 * and the first message after them, which a conversation's later turns repeat (requests
 * that share only a system prompt still spread), or the start of a completion prompt.
 * 0: none. */
static uint64_t prefix_key(const json_t *req, sl_endpoint ep)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    const char *text = NULL;
    size_t len = 0;
    char *owned = NULL;
    if (ep == SL_EP_CHAT) {
        json_t *msgs = json_object_get(req, "messages");
        if (!json_is_array(msgs) || json_array_size(msgs) == 0)
            return 0;
        json_t *head = json_array();
        for (size_t i = 0; i < json_array_size(msgs); i++) {
            json_t *m = json_array_get(msgs, i);
            json_array_append(head, m);
            const char *role = json_string_value(json_object_get(m, "role"));
            if (!role || (strcmp(role, "system") != 0 && strcmp(role, "developer") != 0))
                break;
        }
        text = owned = sl_json_dumps(head, &len);
        json_decref(head);
    } else if (ep == SL_EP_COMPLETIONS) {
        json_t *prompt = json_object_get(req, "prompt");
        if (json_is_string(prompt)) {
            text = json_string_value(prompt);
            len = json_string_length(prompt);
            len = len < 512 ? len : 512;
        }
    }
    for (size_t i = 0; text && i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 1099511628211ULL;
    free(owned);
    return text && len ? (h ? h : 1) : 0;
}

static void send_attempt(sl_exchange *ex, const sl_upstream_target *t, const sl_upstream_part *parts, int n);

/* The upstream's body from a viewed request, as edits of the client's own text (any spelling:
 * it goes on as it is around them): the model's value, the attempt's profile and, where a
 * stream's usage must be asked for, stream_options.include_usage set. The parts point into the
 * text and t's buffer, for the upstream client to copy once. 0 where that fails (out of
 * memory): the tree is serialised then. */
#define VIEW_PARTS (2 * SL_TEXT_EDITS_MAX + 1)
static int body_from_view(sl_exchange *ex, const sl_jview *v, const sl_attempt *a, bool profiled, sl_text_edits *t,
                          sl_upstream_part *parts)
{
    if (ex->stream && (ex->ep == SL_EP_CHAT || ex->ep == SL_EP_COMPLETIONS)) {
        /* usage at the end of every stream, for accounting; hidden again from clients that
         * did not ask for it */
        int so = sl_jview_get(v, 0, "stream_options");
        ex->client_wants_usage = sl_jview_type(v, sl_jview_get(v, so, "include_usage")) == SL_JV_TRUE;
        if (sl_jview_type(v, so) == SL_JV_OBJECT) {
            if (!ex->client_wants_usage)
                sl_text_edit_member_of(t, so, "include_usage", "true", 4);
        } else {
            sl_text_edit_member(t, "stream_options", "{\"include_usage\":true}", 22);
        }
    }
    sl_text_edit_member_string(t, "model", a->target->model, strlen(a->target->model));
    if (profiled)
        sl_profile_apply_view(&a->model->profile, ex->ep, v, t);
    int n = sl_text_edits_parts(t, parts, VIEW_PARTS);
    return n > 0 ? n : 0;
}

/* Send the request to plan[cur]. */
static void launch(sl_exchange *ex, const sl_attempt *a)
{
    ex->model = a->model;
    ex->target = a->target;
    ex->up_status = 0;
    ex->up_stream = false;
    ex->saw_done = false;
    ex->retry_after_ms = 0;
    ex->up_content_type[0] = ex->retry_after[0] = 0;
    sl_sse_free(&ex->sse); /* made again when the answer turns out to be a stream */
    if (!ex->resp)
        ex->resp = evbuffer_new();
    evbuffer_drain(ex->resp, evbuffer_get_length(ex->resp));

    const sl_upstream_conf *uc = a->target->up;
    sl_upstream_target t = {.base_url = uc->base_url, .conf = uc};
    if (uc->type == SL_UPSTREAM_ENGINE) {
        uint64_t key = uc->prefix_affinity > 0 ? prefix_key(sl_ex_tree(ex), ex->ep) : 0;
        ex->engine = sl_pool_pick(ex->w->pool, uc, ex->engine_refused, key);
        if (!ex->engine) {
            char msg[300];
            snprintf(msg, sizeof msg, "no engine process of upstream %s is ready", uc->name);
            attempt_failed(ex, SL_FAIL_CONNECT, 503, "api_error", "upstream_error", msg);
            return;
        }
        t.base_url = "http://engine/v1";
        t.unix_socket = ex->engine->socket_path;
    }
    /* each attempt gets the request as its own model's profile shapes it */
    bool profiled = !sl_profile_is_empty(&a->model->profile);
    const sl_jview *view = sl_ex_request_view(ex);
    if (view) {
        sl_text_edits edits;
        sl_upstream_part parts[VIEW_PARTS];
        sl_text_edits_init(&edits, view, &ex->w->edit_buf);
        int n_parts = body_from_view(ex, view, a, profiled, &edits, parts);
        if (n_parts) {
            send_attempt(ex, &t, parts, n_parts);
            return;
        }
    }
    json_t *req = sl_ex_tree(ex);
    if (profiled) {
        req = json_deep_copy(ex->body);
        sl_profile_apply(&a->model->profile, ex->ep, req);
    }
    if (req == ex->body)
        ex->body_gen++; /* changed below */
    if (!req) {
        sl_ex_respond_error_now(ex, 500, "api_error", "internal_error", NULL, "out of memory");
        sl_ex_finish(ex);
        return;
    }
    /* the tree (a plugin changed it, or the view could not read the text): serialised */
    json_object_set_new(req, "model", json_string(a->target->model));
    if (ex->stream && (ex->ep == SL_EP_CHAT || ex->ep == SL_EP_COMPLETIONS)) {
        json_t *so = json_object_get(req, "stream_options");
        ex->client_wants_usage = json_is_true(json_object_get(so, "include_usage"));
        if (!json_is_object(so)) {
            so = json_object();
            json_object_set_new(req, "stream_options", so);
        }
        json_object_set_new(so, "include_usage", json_true());
    }
    size_t body_len = 0;
    char *body = sl_json_dumps(req, &body_len);
    if (req != ex->body)
        json_decref(req);
    if (!body) {
        sl_ex_respond_error_now(ex, 500, "api_error", "internal_error", NULL, "could not serialise the request");
        sl_ex_finish(ex);
        return;
    }
    sl_upstream_part whole = {body, body_len};
    send_attempt(ex, &t, &whole, 1);
    free(body);
}

/* The attempt's body (its parts) sent to t. */
static void send_attempt(sl_exchange *ex, const sl_upstream_target *t, const sl_upstream_part *parts, int n)
{
    sl_upstream_cbs cbs = {.on_headers = up_on_headers, .on_data = up_on_data, .on_done = up_on_done};
    ex->n_started++;
    ex->up_open = true;
    ex->up_began_ms = sl_ex_ms_since(&ex->t0);
    ex->up = sl_upstream_post(ex->w->upstream, t, endpoint_path(ex->ep), parts, n, &cbs, ex);
    if (!ex->up) {
        attempt_release(ex);
        attempt_verdict(ex, -1);
        sl_ex_respond_error_now(ex, 500, "api_error", "internal_error", NULL, "could not start the upstream request");
        sl_ex_finish(ex);
    }
}

static void try_next(sl_exchange *ex)
{
    while (ex->cur < ex->n_plan) {
        sl_attempt *a = &ex->plan[ex->cur];
        if (a->circuit && !sl_circuit_allow(a->circuit)) {
            ex->target = a->target;
            attempt_note(ex, "circuit open");
            if (ex->cur + 1 < ex->n_plan)
                ex->n_failed++;
            ex->cur++;
            continue;
        }
        ex->attempt_reported = false;
        launch(ex, a);
        return;
    }
    if (ex->last_status)
        sl_ex_respond_error_now(ex, ex->last_status, "api_error", ex->last_code, NULL, ex->last_message);
    else
        sl_ex_respond_error_now(ex, 503, "api_error", "upstream_error", NULL,
                                "no upstream is available for this model: every target's circuit is open");
    sl_ex_finish(ex);
}

void sl_proxy_start(sl_exchange *ex)
{
    if (!ex->n_plan) {
        sl_ex_respond_error_now(ex, 500, "api_error", "internal_error", NULL, "no route chose a target for this request");
        sl_ex_finish(ex);
        return;
    }
    try_next(ex);
}

void sl_proxy_stop(sl_exchange *ex)
{
    if (ex->up) {
        sl_upstream_cancel(ex->up);
        ex->up = NULL;
        attempt_verdict(ex, -1);
    }
    attempt_release(ex); /* also an engine picked for an attempt that never started */
    if (ex->backoff)
        evtimer_del(ex->backoff);
}
