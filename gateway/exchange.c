#include "exchange.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <event2/buffer.h>

#include "log.h"
#include "openai_error.h"
#include "sse.h"

#define MAX_RESPONSE_BYTES (64u << 20)

struct sl_exchange {
    sl_worker *w;
    sl_config *cfg;
    sl_http_conn *conn;             /* NULL once answered or the client is gone */
    sl_http_request *req;           /* valid while conn is */
    char id[40];
    char method[16];
    char path[160];
    char client[64];
    sl_endpoint ep;
    json_t *body;
    bool stream;
    char *model_name;               /* as the client asked */
    const sl_model_conf *model;
    const sl_target_conf *target;
    char *consumer;

    int refs;
    size_t chain_pos;
    bool in_hook;
    bool sync_resumed;
    sl_step sync_step;
    void **pstate;
    json_t *log;

    bool finished;
    bool altered;
    bool upstream_ok;
    bool plugin_stream;
    int status;
    const char *error_code;

    sl_upstream_req *up;
    int up_status;
    bool up_stream;
    bool saw_done;
    sl_sse sse;
    struct evbuffer *resp;
    char up_content_type[128];
    char retry_after[64];
    bool want_events;
    json_t *usage;

    struct timespec t0;
    double ttfb_ms;
    size_t bytes_out;
};

static void ex_finish(sl_exchange *ex);

static double ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

static void ex_ref(sl_exchange *ex) { ex->refs++; }

static void ex_unref(sl_exchange *ex)
{
    if (--ex->refs > 0)
        return;
    json_decref(ex->body);
    json_decref(ex->log);
    json_decref(ex->usage);
    free(ex->consumer);
    free(ex->model_name);
    free(ex->pstate);
    sl_sse_free(&ex->sse);
    if (ex->resp)
        evbuffer_free(ex->resp);
    sl_config_unref(ex->cfg);
    free(ex);
}

/* ---- responses ---- */

static void add_common_headers(sl_exchange *ex)
{
    sl_http_add_header(ex->conn, "x-sluice-request-id", ex->id);
    if (ex->target) {
        char v[512];
        snprintf(v, sizeof v, "%s/%s", ex->target->upstream, ex->target->model);
        sl_http_add_header(ex->conn, "x-sluice-upstream", v);
    }
}

static void respond_raw(sl_exchange *ex, int status, const char *ctype, const char *body, size_t len)
{
    if (!ex->conn)
        return;
    add_common_headers(ex);
    ex->status = status;
    ex->bytes_out += len;
    sl_http_conn *c = ex->conn;
    ex->conn = NULL;
    ex->req = NULL;
    sl_http_respond(c, status, ctype, body, len);
}

static void respond_error(sl_exchange *ex, int status, const char *type, const char *code, const char *param,
                          const char *message)
{
    size_t len;
    char *body = sl_openai_error_json(type, code, param, message, &len);
    ex->error_code = code;
    respond_raw(ex, status, "application/json", body, len);
    free(body);
}

void sl_ex_respond_error(sl_exchange *ex, int status, const char *type, const char *code, const char *param,
                         const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    respond_error(ex, status, type, code, param, msg);
    ex_finish(ex);
}

void sl_ex_respond_json(sl_exchange *ex, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!s) {
        respond_error(ex, 500, "api_error", "internal_error", NULL, "could not serialise the response");
    } else {
        respond_raw(ex, status, "application/json", s, strlen(s));
        free(s);
    }
    ex_finish(ex);
}

/* ---- the end of an exchange ---- */

static json_t *log_line(sl_exchange *ex)
{
    char ts[40];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:f, s:I}", "ts", ts, "request_id", ex->id, "client",
                          ex->client, "method", ex->method, "path", ex->path, "status", ex->status, "duration_ms",
                          ms_since(&ex->t0), "bytes", (json_int_t)ex->bytes_out);
    if (!o)
        return NULL;
    if (ex->consumer)
        json_object_set_new(o, "consumer", json_string(ex->consumer));
    if (ex->model_name)
        json_object_set_new(o, "model", json_string(ex->model_name));
    if (ex->target) {
        json_object_set_new(o, "upstream", json_string(ex->target->upstream));
        json_object_set_new(o, "upstream_model", json_string(ex->target->model));
    }
    if (ex->ep == SL_EP_CHAT || ex->ep == SL_EP_COMPLETIONS)
        json_object_set_new(o, "stream", json_boolean(ex->stream));
    if (ex->ttfb_ms > 0)
        json_object_set_new(o, "ttfb_ms", json_real(ex->ttfb_ms));
    if (ex->up_status)
        json_object_set_new(o, "upstream_status", json_integer(ex->up_status));
    json_t *pt = ex->usage ? json_object_get(ex->usage, "prompt_tokens") : NULL;
    json_t *ct = ex->usage ? json_object_get(ex->usage, "completion_tokens") : NULL;
    if (json_is_integer(pt))
        json_object_set(o, "prompt_tokens", pt);
    if (json_is_integer(ct))
        json_object_set(o, "completion_tokens", ct);
    if (ex->error_code)
        json_object_set_new(o, "error", json_string(ex->error_code));
    if (ex->log)
        json_object_update(o, ex->log);
    return o;
}

static void client_gone(void *arg);
static void client_drained(void *arg);

static void ex_finish(sl_exchange *ex)
{
    if (ex->finished)
        return;
    ex->finished = true;
    if (ex->up) {
        sl_upstream_cancel(ex->up);
        ex->up = NULL;
    }
    if (ex->conn) { /* nobody answered: should not happen, but never leave a client hanging */
        respond_error(ex, 500, "api_error", "internal_error", NULL, "the request ended without a response");
    }
    for (size_t i = 0; i < ex->cfg->n_plugins; i++) {
        const sl_plugin *p = ex->cfg->plugins[i].plugin;
        if (p->on_complete)
            p->on_complete(ex, ex->cfg->plugins[i].conf);
    }
    json_t *line = log_line(ex);
    if (line)
        sl_access_log_write(ex->w->alog, line);
    ex_unref(ex);
}

static void client_gone(void *arg)
{
    sl_exchange *ex = arg;
    ex->conn = NULL;
    ex->req = NULL;
    if (!ex->status)
        ex->status = 499;
    ex->error_code = ex->error_code ? ex->error_code : "client_closed";
    ex_finish(ex);
}

/* ---- upstream response ---- */

static void stream_write(sl_exchange *ex, const char *data, size_t len)
{
    if (!ex->conn)
        return;
    sl_http_stream_write(ex->conn, data, len);
    ex->bytes_out += len;
}

static void note_usage(sl_exchange *ex, const char *json_text, size_t len)
{
    if (!memmem(json_text, len, "\"usage\"", 7))
        return;
    json_t *o = json_loadb(json_text, len, 0, NULL);
    json_t *u = o ? json_object_get(o, "usage") : NULL;
    if (json_is_object(u)) {
        json_decref(ex->usage);
        ex->usage = json_incref(u);
    }
    json_decref(o);
}

/* Run the plugins that want response events over one event; returns the action. The
 * event's JSON may be replaced. */
static sl_event_action run_event_hooks(sl_exchange *ex, sl_resp_event *ev)
{
    sl_event_action act = SL_EVENT_PASS;
    for (size_t i = 0; i < ex->cfg->n_plugins && act == SL_EVENT_PASS; i++) {
        const sl_plugin *p = ex->cfg->plugins[i].plugin;
        if (p->wants_events && p->on_response_event)
            act = p->on_response_event(ex, ex->cfg->plugins[i].conf, ev);
    }
    return act;
}

static void end_stream(sl_exchange *ex)
{
    if (!ex->conn)
        return;
    sl_http_conn *c = ex->conn;
    ex->conn = NULL;
    ex->req = NULL;
    sl_http_stream_end(c);
}

static void forward_event(sl_exchange *ex, char *event, size_t len)
{
    size_t dlen = 0;
    char *data = sl_sse_data(event, len, &dlen);
    bool done = data && dlen == 6 && memcmp(data, "[DONE]", 6) == 0;
    if (done)
        ex->saw_done = true;
    else if (data)
        note_usage(ex, data, dlen);
    if (ex->want_events && data) {
        sl_resp_event rev = {.json = done ? NULL : json_loadb(data, dlen, 0, NULL), .stream = true, .done = done,
                             .status = ex->up_status};
        json_t *orig = rev.json;
        json_incref(orig);
        sl_event_action act = run_event_hooks(ex, &rev);
        if (act != SL_EVENT_DROP) {
            if (rev.json) { /* plugins edit in place: always re-serialise */
                char *s = json_dumps(rev.json, JSON_COMPACT);
                if (s) {
                    stream_write(ex, "data: ", 6);
                    stream_write(ex, s, strlen(s));
                    stream_write(ex, "\n\n", 2);
                    free(s);
                }
            } else {
                stream_write(ex, event, len);
            }
        }
        json_decref(orig);
        json_decref(rev.json);
        free(data);
        if (act == SL_EVENT_STOP) {
            ex->altered = true;
            if (!done)
                stream_write(ex, "data: [DONE]\n\n", 14);
            if (ex->up) {
                sl_upstream_cancel(ex->up);
                ex->up = NULL;
            }
            ex->status = 200;
            end_stream(ex);
            ex_finish(ex);
        }
        return;
    }
    free(data);
    stream_write(ex, event, len);
}

static void up_on_headers(void *arg, int status, const char *ctype, const char *retry_after)
{
    sl_exchange *ex = arg;
    ex->up_status = status;
    ex->ttfb_ms = ms_since(&ex->t0);
    snprintf(ex->up_content_type, sizeof ex->up_content_type, "%s", ctype ? ctype : "");
    snprintf(ex->retry_after, sizeof ex->retry_after, "%s", retry_after ? retry_after : "");
    if (status == 200 && ctype && strncasecmp(ctype, "text/event-stream", 17) == 0 && ex->conn) {
        ex->up_stream = true;
        ex->status = 200;
        add_common_headers(ex);
        sl_http_add_header(ex->conn, "Cache-Control", "no-cache");
        sl_http_add_header(ex->conn, "X-Accel-Buffering", "no");
        sl_http_stream_begin(ex->conn, 200, "text/event-stream; charset=utf-8");
    }
}

static void up_on_data(void *arg, const char *data, size_t len)
{
    sl_exchange *ex = arg;
    if (!ex->up_stream) {
        if (evbuffer_get_length(ex->resp) + len > MAX_RESPONSE_BYTES) {
            sl_upstream_cancel(ex->up);
            ex->up = NULL;
            respond_error(ex, 502, "api_error", "upstream_error", NULL, "upstream response too large");
            ex_finish(ex);
            return;
        }
        evbuffer_add(ex->resp, data, len);
        return;
    }
    ex_ref(ex);
    sl_sse_feed(&ex->sse, data, len);
    size_t n;
    char *event;
    while (!ex->finished && (event = sl_sse_next(&ex->sse, &n))) {
        forward_event(ex, event, n);
        free(event);
    }
    if (!ex->finished && ex->conn && ex->up &&
        sl_http_pending(ex->conn) > (size_t)ex->cfg->server.stream_buffer_bytes) {
        sl_upstream_pause(ex->up);
        sl_http_want_drain(ex->conn);
    }
    ex_unref(ex);
}

static void client_drained(void *arg)
{
    sl_exchange *ex = arg;
    if (ex->up)
        sl_upstream_resume(ex->up);
}

static char *upstream_error_message(sl_exchange *ex, const char *body, size_t len)
{
    json_t *o = json_loadb(body, len, 0, NULL);
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
    if (st >= 500) {
        char *msg = upstream_error_message(ex, body ? body : "", len);
        int out = st == 503 || st == 504 ? st : 502;
        respond_error(ex, out, "api_error", st == 504 ? "upstream_timeout" : "upstream_error", NULL,
                      msg ? msg : "upstream error");
        free(msg);
        return;
    }
    if (st == 429 && ex->retry_after[0] && ex->conn)
        sl_http_add_header(ex->conn, "Retry-After", ex->retry_after);
    bool is_json = strncasecmp(ctype, "application/json", 16) == 0;
    if (is_json && st >= 200 && st < 300) {
        note_usage(ex, body, len);
        if (ex->want_events) {
            sl_resp_event rev = {.json = json_loadb(body, len, 0, NULL), .stream = false, .status = st};
            sl_event_action act = run_event_hooks(ex, &rev);
            (void)act;
            char *s = rev.json ? json_dumps(rev.json, JSON_COMPACT) : NULL;
            json_decref(rev.json);
            if (s) {
                respond_raw(ex, st, ctype, s, strlen(s));
                free(s);
                return;
            }
        }
    }
    if (st >= 400)
        ex->error_code = "upstream_status";
    respond_raw(ex, st, ctype, body, len);
}

static void up_on_done(void *arg, sl_upstream_result result, const char *message)
{
    sl_exchange *ex = arg;
    ex->up = NULL;
    if (ex->finished)
        return;
    ex->upstream_ok = result == SL_UP_OK && ex->up_status >= 200 && ex->up_status < 300;
    if (ex->up_stream) {
        size_t n;
        char *rest = sl_sse_rest(&ex->sse, &n);
        if (rest) {
            forward_event(ex, rest, n);
            free(rest);
            if (ex->finished)
                return;
        }
        if (result != SL_UP_OK) {
            /* the client already has a 200: end the stream with an error event, never silently */
            bool timeout = sl_upstream_result_is_timeout(result);
            char msg[512];
            snprintf(msg, sizeof msg, "upstream %s failed mid-stream: %s", ex->target->upstream, message);
            size_t len;
            char *err = sl_openai_error_json("api_error", timeout ? "upstream_timeout" : "upstream_error", NULL, msg, &len);
            stream_write(ex, "data: ", 6);
            stream_write(ex, err, len);
            stream_write(ex, "\n\n", 2);
            free(err);
            ex->error_code = timeout ? "upstream_timeout" : "upstream_error";
            stream_write(ex, "data: [DONE]\n\n", 14);
        } else if (!ex->saw_done && (ex->ep == SL_EP_CHAT || ex->ep == SL_EP_COMPLETIONS)) {
            stream_write(ex, "data: [DONE]\n\n", 14);
        }
        end_stream(ex);
        ex_finish(ex);
        return;
    }
    if (result == SL_UP_OK) {
        finish_buffered(ex);
    } else {
        char msg[512];
        bool timeout = sl_upstream_result_is_timeout(result);
        snprintf(msg, sizeof msg, "upstream %s: %s", ex->target->upstream, message);
        respond_error(ex, timeout ? 504 : 502, "api_error", timeout ? "upstream_timeout" : "upstream_error", NULL, msg);
    }
    ex_finish(ex);
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

static void start_upstream(sl_exchange *ex)
{
    if (!ex->target) {
        respond_error(ex, 500, "api_error", "internal_error", NULL, "no route chose a target for this request");
        ex_finish(ex);
        return;
    }
    const sl_upstream_conf *uc = ex->target->up;
    if (uc->type != SL_UPSTREAM_OPENAI) {
        respond_error(ex, 503, "api_error", "upstream_error", NULL, "engine upstreams are not served by this build yet");
        ex_finish(ex);
        return;
    }
    char *body = json_dumps(ex->body, JSON_COMPACT);
    if (!body) {
        respond_error(ex, 500, "api_error", "internal_error", NULL, "could not serialise the request");
        ex_finish(ex);
        return;
    }
    ex->resp = evbuffer_new();
    sl_sse_init(&ex->sse);
    sl_upstream_target t = {.base_url = uc->base_url, .conf = uc};
    sl_upstream_cbs cbs = {.on_headers = up_on_headers, .on_data = up_on_data, .on_done = up_on_done};
    ex->up = sl_upstream_post(ex->w->upstream, &t, endpoint_path(ex->ep), body, strlen(body), &cbs, ex);
    free(body);
    if (!ex->up) {
        respond_error(ex, 500, "api_error", "internal_error", NULL, "could not start the upstream request");
        ex_finish(ex);
    }
}

/* ---- /v1/models ---- */

static bool consumer_may_use(const sl_consumer_conf *cc, const char *model)
{
    if (!cc || !cc->models)
        return true;
    for (size_t i = 0; i < cc->n_models; i++)
        if (strcmp(cc->models[i], model) == 0)
            return true;
    return false;
}

static void respond_models(sl_exchange *ex)
{
    json_t *data = json_array();
    const sl_consumer_conf *cc = sl_ex_consumer_conf(ex);
    long long created = (long long)time(NULL);
    for (size_t i = 0; i < ex->cfg->n_models; i++) {
        const char *name = ex->cfg->models[i].name;
        if (!consumer_may_use(cc, name))
            continue;
        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s}", "id", name, "object", "model", "created",
                                              (json_int_t)created, "owned_by", "sluice"));
    }
    sl_ex_respond_json(ex, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

/* ---- the chain ---- */

static void after_chain(sl_exchange *ex)
{
    if (ex->ep == SL_EP_MODELS)
        respond_models(ex);
    else
        start_upstream(ex);
}

static void run_chain(sl_exchange *ex)
{
    ex_ref(ex);
    while (!ex->finished && ex->chain_pos < ex->cfg->n_plugins) {
        const sl_plugin_conf *pc = &ex->cfg->plugins[ex->chain_pos];
        if (!pc->plugin->on_request) {
            ex->chain_pos++;
            continue;
        }
        ex->in_hook = true;
        sl_step step = pc->plugin->on_request(ex, pc->conf);
        ex->in_hook = false;
        if (step == SL_STEP_PENDING) {
            if (!ex->sync_resumed) {
                ex_ref(ex); /* held for the plugin until it resumes */
                ex_unref(ex);
                return;
            }
            ex->sync_resumed = false;
            step = ex->sync_step;
        }
        if (step == SL_STEP_RESPOND || ex->finished) {
            if (!ex->finished)
                ex_finish(ex); /* a plugin that said RESPOND but did not answer */
            ex_unref(ex);
            return;
        }
        ex->chain_pos++;
    }
    if (!ex->finished)
        after_chain(ex);
    ex_unref(ex);
}

void sl_ex_resume(sl_exchange *ex, sl_step step)
{
    if (ex->in_hook) {
        ex->sync_resumed = true;
        ex->sync_step = step;
        return;
    }
    if (!ex->finished) {
        if (step == SL_STEP_CONTINUE) {
            ex->chain_pos++;
            run_chain(ex);
        } else if (!ex->finished) {
            ex_finish(ex);
        }
    }
    ex_unref(ex); /* the plugin's hold */
}

/* ---- start ---- */

static sl_endpoint classify_path(const char *method, const char *path, bool *method_ok)
{
    static const struct {
        const char *path, *method;
        sl_endpoint ep;
    } routes[] = {
        {"/v1/chat/completions", "POST", SL_EP_CHAT},
        {"/v1/completions", "POST", SL_EP_COMPLETIONS},
        {"/v1/embeddings", "POST", SL_EP_EMBEDDINGS},
        {"/v1/models", "GET", SL_EP_MODELS},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path) == 0) {
            *method_ok = strcmp(method, routes[i].method) == 0;
            return routes[i].ep;
        }
    }
    *method_ok = true;
    return SL_EP_OTHER;
}

static int parse_body(sl_exchange *ex)
{
    json_error_t jerr;
    if (ex->req->body_len == 0) {
        respond_error(ex, 400, "invalid_request_error", "invalid_request", NULL,
                      "the request body is empty: send a JSON object");
        return -1;
    }
    ex->body = json_loadb(ex->req->body, ex->req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!ex->body) {
        char msg[512];
        snprintf(msg, sizeof msg, "could not parse the JSON body: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        respond_error(ex, 400, "invalid_request_error", "invalid_request", NULL, msg);
        return -1;
    }
    if (!json_is_object(ex->body)) {
        respond_error(ex, 400, "invalid_request_error", "invalid_request", NULL, "the JSON body must be an object");
        return -1;
    }
    json_t *model = json_object_get(ex->body, "model");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        respond_error(ex, 400, "invalid_request_error", "invalid_request", "model",
                      model ? "model must be a non-empty string" : "you must provide a model parameter");
        return -1;
    }
    ex->model_name = strdup(json_string_value(model));
    json_t *stream = json_object_get(ex->body, "stream");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
        respond_error(ex, 400, "invalid_request_error", "invalid_request", "stream", "stream must be a boolean");
        return -1;
    }
    ex->stream = json_is_true(stream);
    return 0;
}

void sl_exchange_start(sl_worker *w, sl_http_conn *conn, sl_http_request *req)
{
    sl_exchange *ex = calloc(1, sizeof *ex);
    if (!ex) {
        sl_http_respond_error(conn, 500, "api_error", "internal_error", NULL, "out of memory");
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &ex->t0);
    ex->w = w;
    ex->cfg = sl_config_ref(w->cfg);
    ex->conn = conn;
    ex->req = req;
    ex->refs = 1;
    ex->pstate = calloc(ex->cfg->n_plugins + 1, sizeof *ex->pstate);
    snprintf(ex->id, sizeof ex->id, "req_%08x%02x%010llx", w->id_prefix, w->index & 0xff,
             (unsigned long long)++w->next_request);
    snprintf(ex->method, sizeof ex->method, "%s", req->method);
    snprintf(ex->path, sizeof ex->path, "%s", req->path);
    snprintf(ex->client, sizeof ex->client, "%s", sl_http_peer(conn));
    sl_http_watch watch = {.on_drain = client_drained, .on_close = client_gone, .arg = ex};
    sl_http_set_watch(conn, &watch);
    for (size_t i = 0; i < ex->cfg->n_plugins; i++)
        if (ex->cfg->plugins[i].plugin->wants_events)
            ex->want_events = true;

    bool method_ok;
    ex->ep = classify_path(req->method, req->path, &method_ok);
    if (ex->ep == SL_EP_OTHER) {
        char msg[300];
        snprintf(msg, sizeof msg, "Unknown request URL: %s %.200s", req->method, req->path);
        respond_error(ex, 404, "invalid_request_error", "unknown_url", NULL, msg);
        ex_finish(ex);
        return;
    }
    if (!method_ok) {
        char msg[300];
        snprintf(msg, sizeof msg, "method %s is not allowed on %.200s", req->method, req->path);
        respond_error(ex, 405, "invalid_request_error", "method_not_allowed", NULL, msg);
        ex_finish(ex);
        return;
    }
    if (ex->ep != SL_EP_MODELS && parse_body(ex) < 0) {
        ex_finish(ex);
        return;
    }
    run_chain(ex);
}

/* ---- the plugin API ---- */

sl_endpoint sl_ex_endpoint(const sl_exchange *ex) { return ex->ep; }
const char *sl_ex_request_id(const sl_exchange *ex) { return ex->id; }
const struct sl_config *sl_ex_config(const sl_exchange *ex) { return ex->cfg; }
struct event_base *sl_ex_base(const sl_exchange *ex) { return ex->w->base; }
json_t *sl_ex_body(sl_exchange *ex) { return ex->body; }
bool sl_ex_stream(const sl_exchange *ex) { return ex->stream; }
const char *sl_ex_model(const sl_exchange *ex) { return ex->model ? ex->model->name : ex->model_name; }
const char *sl_ex_consumer(const sl_exchange *ex) { return ex->consumer; }

const char *sl_ex_header(const sl_exchange *ex, const char *name)
{
    if (!ex->req)
        return NULL;
    char lower[128];
    size_t i = 0;
    for (; name[i] && i < sizeof lower - 1; i++)
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    lower[i] = 0;
    return sl_http_header_get(ex->req, lower);
}

void sl_ex_set_consumer(sl_exchange *ex, const char *name)
{
    free(ex->consumer);
    ex->consumer = name ? strdup(name) : NULL;
}

const sl_consumer_conf *sl_ex_consumer_conf(const sl_exchange *ex)
{
    return ex->consumer ? sl_config_consumer(ex->cfg, ex->consumer) : NULL;
}

void sl_ex_add_response_header(sl_exchange *ex, const char *name, const char *value)
{
    if (ex->conn)
        sl_http_add_header(ex->conn, name, value);
}

static size_t plugin_index(const sl_exchange *ex, const sl_plugin *p)
{
    for (size_t i = 0; i < ex->cfg->n_plugins; i++)
        if (ex->cfg->plugins[i].plugin == p)
            return i;
    return ex->cfg->n_plugins; /* the spare slot */
}

void *sl_ex_plugin_state(const sl_exchange *ex, const sl_plugin *p) { return ex->pstate[plugin_index(ex, p)]; }

void sl_ex_set_plugin_state(sl_exchange *ex, const sl_plugin *p, void *state)
{
    ex->pstate[plugin_index(ex, p)] = state;
}

void sl_ex_log_field(sl_exchange *ex, const char *key, json_t *value)
{
    if (!ex->log)
        ex->log = json_object();
    json_object_set_new(ex->log, key, value);
}

void sl_ex_stream_begin(sl_exchange *ex)
{
    if (!ex->conn)
        return;
    ex->plugin_stream = true;
    ex->status = 200;
    add_common_headers(ex);
    sl_http_add_header(ex->conn, "Cache-Control", "no-cache");
    sl_http_stream_begin(ex->conn, 200, "text/event-stream; charset=utf-8");
}

void sl_ex_emit_event(sl_exchange *ex, const json_t *event)
{
    char *s = json_dumps(event, JSON_COMPACT);
    if (!s)
        return;
    stream_write(ex, "data: ", 6);
    stream_write(ex, s, strlen(s));
    stream_write(ex, "\n\n", 2);
    free(s);
}

void sl_ex_stream_end(sl_exchange *ex)
{
    stream_write(ex, "data: [DONE]\n\n", 14);
    end_stream(ex);
    ex_finish(ex);
}

int sl_ex_status(const sl_exchange *ex) { return ex->status; }
bool sl_ex_complete(const sl_exchange *ex) { return ex->upstream_ok && !ex->altered && ex->status >= 200 && ex->status < 300; }
void sl_ex_mark_altered(sl_exchange *ex) { ex->altered = true; }

void sl_ex_set_target(sl_exchange *ex, const sl_model_conf *model, const sl_target_conf *target)
{
    ex->model = model;
    ex->target = target;
}
