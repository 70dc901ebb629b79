#include "exchange_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <event2/buffer.h>

#include "event_memo.h"
#include "json_line.h"
#include "log.h"
#include "metrics_exchange.h"
#include "str_copy.h"
#include "openai_error.h"
#include "circuit.h"
#include "fmt_int.h"
#include "json_dump.h"
#include "json_parse.h"
#include "json_plain.h"
#include "text_edits.h"
#include "token_count.h"
#include <event2/event.h>




double sl_ex_ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

void sl_ex_ref(sl_exchange *ex) { ex->refs++; }

/* Buffers kept only while small: one odd large request does not stay in every worker. */
#define REQ_SPARE_TEXT (64 * 1024)
#define REQ_SPARE_TOKENS 4096

static void take_request_text(sl_exchange *ex)
{
    sl_worker *w = ex->w;
    if (w->n_req_spare)
        ex->rq = w->req_spare[--w->n_req_spare];
}

static void give_request_text(sl_exchange *ex)
{
    sl_worker *w = ex->w;
    sl_req_text *r = &ex->rq;
    if (w->n_req_spare < SL_REQ_SPARES && r->text.cap <= REQ_SPARE_TEXT && r->view.cap <= REQ_SPARE_TOKENS &&
        r->view.dec.cap <= REQ_SPARE_TEXT) {
        w->req_spare[w->n_req_spare++] = *r;
    } else {
        free(r->text.s);
        sl_jview_free(&r->view);
    }
    *r = (sl_req_text){0};
}

void sl_ex_unref(sl_exchange *ex)
{
    if (--ex->refs > 0)
        return;
    json_decref(ex->body);
    give_request_text(ex);
    sl_log_fields_free(&ex->log);
    json_decref(ex->usage);
    json_decref(ex->ev_spare);
    free(ex->out_spare);
    sl_event_memo_give(ex->ev_memo, ex->w->memo_spare, &ex->w->n_memo_spare, SL_MEMO_SPARES);
    json_decref(ex->attempt_log);
    free(ex->plan);
    if (ex->backoff)
        event_free(ex->backoff);
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


/* "req_" + 8 hex of the process prefix + 2 of the worker + 10 of the worker's counter */
static void make_id(char *out, unsigned prefix, unsigned worker, unsigned long long n)
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "req_", 4);
    char *p = out + 4;
    for (int i = 7; i >= 0; i--)
        *p++ = hex[(prefix >> (i * 4)) & 15];
    *p++ = hex[(worker >> 4) & 15];
    *p++ = hex[worker & 15];
    if (n >> 40) { /* past 10 digits: as printf would, the whole number */
        snprintf(p, 24, "%llx", n);
        return;
    }
    for (int i = 9; i >= 0; i--)
        *p++ = hex[(n >> (i * 4)) & 15];
    *p = 0;
}

void sl_ex_add_common_headers(sl_exchange *ex)
{
    sl_http_add_header(ex->conn, "x-sluice-request-id", ex->id);
    if (ex->target) {
        char v[512];
        size_t a = strlen(ex->target->upstream), b = strlen(ex->target->model);
        if (a + b + 2 <= sizeof v) {
            memcpy(v, ex->target->upstream, a);
            v[a] = '/';
            memcpy(v + a + 1, ex->target->model, b + 1);
        } else {
            snprintf(v, sizeof v, "%s/%s", ex->target->upstream, ex->target->model);
        }
        sl_http_add_header(ex->conn, "x-sluice-upstream", v);
    }
    if (ex->n_failed) {
        char n[SL_FMT_INT_MAX];
        sl_fmt_int(n, ex->n_failed);
        sl_http_add_header(ex->conn, "x-sluice-fallback", n);
    }
}

void sl_ex_respond_raw(sl_exchange *ex, int status, const char *ctype, const char *body, size_t len)
{
    if (!ex->conn)
        return;
    sl_ex_add_common_headers(ex);
    ex->status = status;
    ex->bytes_out += len;
    sl_http_conn *c = ex->conn;
    ex->conn = NULL;
    ex->req = NULL;
    sl_http_respond(c, status, ctype, body, len);
}

void sl_ex_respond_error_now(sl_exchange *ex, int status, const char *type, const char *code, const char *param,
                          const char *message)
{
    size_t len;
    char *body = sl_openai_error_json(type, code, param, message, &len);
    ex->error_code = code;
    sl_ex_respond_raw(ex, status, "application/json", body, len);
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
    sl_ex_respond_error_now(ex, status, type, code, param, msg);
    sl_ex_finish(ex);
}

void sl_ex_respond_json(sl_exchange *ex, int status, json_t *body)
{
    size_t n;
    char *s = sl_json_dumps(body, &n);
    json_decref(body);
    if (!s) {
        sl_ex_respond_error_now(ex, 500, "api_error", "internal_error", NULL, "could not serialise the response");
    } else {
        sl_ex_respond_raw(ex, status, "application/json", s, n);
        free(s);
    }
    sl_ex_finish(ex);
}

/* ---- the end of an exchange ---- */

/* The access log line, written straight into the log's buffer. */
static void log_line(sl_exchange *ex, double duration_ms)
{
    sl_strbuf *b = sl_access_log_begin(ex->w->alog);
    if (!b)
        return;
    sl_jline j;
    sl_jline_open(&j, b, &ex->log); /* what plugins logged wins over these */
    sl_access_log_head(&j, ex->client, ex->method, ex->path, ex->status, duration_ms, ex->bytes_out);
    sl_jline_str(&j, "request_id", ex->id);
    sl_jline_str(&j, "consumer", ex->consumer);
    sl_jline_str(&j, "model", ex->model_name);
    if (ex->target) {
        sl_jline_str(&j, "upstream", ex->target->upstream);
        sl_jline_str(&j, "upstream_model", ex->target->model);
    }
    if (ex->ep == SL_EP_CHAT || ex->ep == SL_EP_COMPLETIONS)
        sl_jline_bool(&j, "stream", ex->stream);
    if (ex->ttfb_ms > 0)
        sl_jline_ms(&j, "ttfb_ms", ex->ttfb_ms);
    if (ex->n_started)
        sl_jline_ms(&j, "upstream_ms", ex->upstream_ms);
    if (ex->up_status)
        sl_jline_int(&j, "upstream_status", ex->up_status);
    json_t *pt = ex->usage ? json_object_get(ex->usage, "prompt_tokens") : NULL;
    json_t *ct = ex->usage ? json_object_get(ex->usage, "completion_tokens") : NULL;
    if (json_is_integer(pt))
        sl_jline_value(&j, "prompt_tokens", pt);
    if (json_is_integer(ct))
        sl_jline_value(&j, "completion_tokens", ct);
    sl_jline_str(&j, "error", ex->error_code);
    if (ex->n_failed) {
        sl_jline_int(&j, "fallback", ex->n_failed);
        sl_jline_value(&j, "attempts", ex->attempt_log);
    }
    sl_jline_fields(&j, &ex->log);
    sl_jline_close(&j);
    sl_access_log_end(ex->w->alog, !j.failed);
}

static void client_gone(void *arg);

void sl_ex_finish(sl_exchange *ex)
{
    if (ex->finished)
        return;
    ex->finished = true;
    sl_proxy_stop(ex);
    if (ex->conn) { /* nobody answered: should not happen, but never leave a client hanging */
        sl_ex_respond_error_now(ex, 500, "api_error", "internal_error", NULL, "the request ended without a response");
    }
    for (size_t i = 0; i < ex->cfg->n_plugins; i++) {
        const sl_plugin *p = ex->cfg->plugins[i].plugin;
        if (p->on_complete)
            p->on_complete(ex, ex->cfg->plugins[i].conf);
    }
    double duration_ms = sl_ex_ms_since(&ex->t0);
    sl_metrics_exchange(ex, duration_ms);
    log_line(ex, duration_ms);
    sl_ex_unref(ex);
}

static void client_gone(void *arg)
{
    sl_exchange *ex = arg;
    ex->conn = NULL;
    ex->req = NULL;
    if (!ex->status)
        ex->status = 499;
    ex->error_code = ex->error_code ? ex->error_code : "client_closed";
    sl_ex_finish(ex);
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
        sl_proxy_start(ex);
}

static void run_chain(sl_exchange *ex)
{
    sl_ex_ref(ex);
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
                sl_ex_ref(ex); /* held for the plugin until it resumes */
                sl_ex_unref(ex);
                return;
            }
            ex->sync_resumed = false;
            step = ex->sync_step;
        }
        if (step == SL_STEP_RESPOND || ex->finished) {
            if (!ex->finished)
                sl_ex_finish(ex); /* a plugin that said RESPOND but did not answer */
            sl_ex_unref(ex);
            return;
        }
        ex->chain_pos++;
    }
    if (!ex->finished)
        after_chain(ex);
    sl_ex_unref(ex);
}

void sl_ex_resume(sl_exchange *ex, sl_step step)
{
    if (ex->body_taken_at == ex->chain_pos + 1)
        ex->body_gen++; /* the step that took the body may have changed it while it waited */
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
            sl_ex_finish(ex);
        }
    }
    sl_ex_unref(ex); /* the plugin's hold */
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
            *method_ok = strcmp(method, routes[i].method) == 0 ||
                         (strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0);
            return routes[i].ep;
        }
    }
    *method_ok = true;
    return SL_EP_OTHER;
}

/* The body read through a view: its text copied (the connection's buffer serves the next
 * request while this one is still in flight), a JSON object without a duplicate key. False
 * when the view cannot say so: jansson then reads it, or says what is wrong. */
static bool view_body(sl_exchange *ex)
{
    take_request_text(ex);
    sl_req_text *r = &ex->rq;
    r->text.len = 0;
    if (sl_strbuf_add(&r->text, ex->req->body, ex->req->body_len) < 0)
        return false;
    return sl_jview_read(&r->view, r->text.s, r->text.len) == 0 && r->view.tok[0].type == SL_JV_OBJECT &&
           sl_jview_keys_unique(&r->view);
}

/* What the exchange takes from the body: the model, stream and the client's stream_options. */
static int read_body_fields(sl_exchange *ex)
{
    const char *model = NULL;
    size_t model_len = 0;
    int stream, include_usage;
    bool model_present;
    if (ex->rq_viewed) {
        const sl_jview *v = &ex->rq.view;
        int m = sl_jview_get(v, 0, "model");
        model_present = m >= 0;
        model = sl_jview_str(v, m, &model_len);
        stream = sl_jview_type(v, sl_jview_get(v, 0, "stream"));
        include_usage = sl_jview_type(v, sl_jview_get(v, sl_jview_get(v, 0, "stream_options"), "include_usage"));
        stream = stream < 0 ? -1 : stream == SL_JV_TRUE ? 1 : stream == SL_JV_FALSE || stream == SL_JV_NULL ? 0 : 2;
        include_usage = include_usage == SL_JV_TRUE;
    } else {
        json_t *jm = json_object_get(ex->body, "model"), *js = json_object_get(ex->body, "stream");
        model_present = jm != NULL;
        if (json_is_string(jm)) {
            model = json_string_value(jm);
            model_len = json_string_length(jm);
        }
        stream = !js ? -1 : json_is_true(js) ? 1 : json_is_false(js) || json_is_null(js) ? 0 : 2;
        include_usage = json_is_true(json_object_get(json_object_get(ex->body, "stream_options"), "include_usage"));
    }
    if (!model || model_len == 0) {
        sl_ex_respond_error_now(ex, 400, "invalid_request_error", "invalid_request", "model",
                                model_present ? "model must be a non-empty string" : "you must provide a model parameter");
        return -1;
    }
    ex->model_name = strndup(model, model_len);
    if (stream == 2) {
        sl_ex_respond_error_now(ex, 400, "invalid_request_error", "invalid_request", "stream", "stream must be a boolean");
        return -1;
    }
    ex->stream = stream == 1;
    ex->client_wants_usage = include_usage; /* proxy.c sets it again */
    return 0;
}

static int parse_body(sl_exchange *ex)
{
    json_error_t jerr;
    if (ex->req->body_len == 0) {
        sl_ex_respond_error_now(ex, 400, "invalid_request_error", "invalid_request", NULL,
                      "the request body is empty: send a JSON object");
        return -1;
    }
    if ((ex->rq_viewed = view_body(ex)))
        return read_body_fields(ex);
    ex->body = sl_json_loadb(ex->req->body, ex->req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!ex->body) {
        char msg[512];
        snprintf(msg, sizeof msg, "could not parse the JSON body: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        sl_ex_respond_error_now(ex, 400, "invalid_request_error", "invalid_request", NULL, msg);
        return -1;
    }
    if (!json_is_object(ex->body)) {
        sl_ex_respond_error_now(ex, 400, "invalid_request_error", "invalid_request", NULL, "the JSON body must be an object");
        return -1;
    }
    return read_body_fields(ex);
}

void sl_exchange_start(sl_worker *w, sl_http_conn *conn, sl_http_request *req)
{
    sl_exchange *ex = calloc(1, sizeof *ex);
    if (!ex) {
        sl_http_respond_error(conn, 500, "api_error", "internal_error", NULL, "out of memory");
        return;
    }
    ex->t0 = req->began; /* durations count from the request's head, its reading included */
    ex->read_ms = sl_ex_ms_since(&ex->t0);
    sl_metrics_itl_init(&ex->itl);
    ex->w = w;
    ex->cfg = sl_config_ref(w->cfg);
    ex->conn = conn;
    ex->req = req;
    ex->refs = 1;
    sl_log_fields_init(&ex->log);
    ex->pstate = calloc(ex->cfg->n_plugins + 1, sizeof *ex->pstate);
    make_id(ex->id, w->id_prefix, (unsigned)w->index & 0xff, ++w->next_request);
    sl_str_put(ex->method, sizeof ex->method, 0, req->method);
    sl_str_put(ex->path, sizeof ex->path, 0, req->path);
    sl_str_put(ex->client, sizeof ex->client, 0, sl_http_peer(conn));
    sl_http_watch watch = {.on_drain = sl_proxy_client_drained, .on_close = client_gone, .arg = ex};
    sl_http_set_watch(conn, &watch);
    for (size_t i = 0; i < ex->cfg->n_plugins; i++)
        if (ex->cfg->plugins[i].plugin->wants_events)
            ex->want_events = true;

    bool method_ok;
    ex->ep = classify_path(req->method, req->path, &method_ok);
    if (ex->ep == SL_EP_OTHER) {
        char msg[300];
        snprintf(msg, sizeof msg, "Unknown request URL: %s %.200s", req->method, req->path);
        sl_ex_respond_error_now(ex, 404, "invalid_request_error", "unknown_url", NULL, msg);
        sl_ex_finish(ex);
        return;
    }
    if (!method_ok) {
        char msg[300];
        snprintf(msg, sizeof msg, "method %s is not allowed on %.200s", req->method, req->path);
        sl_ex_respond_error_now(ex, 405, "invalid_request_error", "method_not_allowed", NULL, msg);
        sl_ex_finish(ex);
        return;
    }
    if (ex->ep != SL_EP_MODELS && parse_body(ex) < 0) {
        sl_ex_finish(ex);
        return;
    }
    run_chain(ex);
}

/* ---- the plugin API ---- */

sl_endpoint sl_ex_endpoint(const sl_exchange *ex) { return ex->ep; }
const char *sl_ex_request_id(const sl_exchange *ex) { return ex->id; }
const struct sl_config *sl_ex_config(const sl_exchange *ex) { return ex->cfg; }
struct event_base *sl_ex_base(const sl_exchange *ex) { return ex->w->base; }
struct sl_store_conn *sl_ex_store(const sl_exchange *ex) { return ex->w->store; }
json_t *sl_ex_tree(sl_exchange *ex)
{
    if (!ex->body && ex->rq_viewed)
        ex->body = sl_jview_json(&ex->rq.view, 0);
    return ex->body;
}

json_t *sl_ex_body(sl_exchange *ex)
{
    ex->body_gen++; /* whoever holds it may change it */
    ex->body_taken_at = ex->chain_pos + 1;
    return sl_ex_tree(ex);
}

const json_t *sl_ex_body_view(sl_exchange *ex) { return sl_ex_tree(ex); }

/* The viewed text with top-level member key's value replaced by val (or the member added last;
 * val NULL: the member taken out), read again: -1 where it cannot be (a key that needs
 * escaping, out of memory). */
static int view_set_member(sl_req_text *r, const char *key, const char *val, size_t vn, sl_strbuf *scratch)
{
    size_t kl = strlen(key);
    if (sl_json_plain_run(key, kl, false) != kl)
        return -1;
    sl_text_edits t;
    sl_upstream_part parts[3];
    sl_text_edits_init(&t, &r->view, scratch);
    if (val)
        sl_text_edit_member(&t, key, val, vn);
    else
        sl_text_edit_member_delete(&t, 0, key);
    int n = sl_text_edits_parts(&t, parts, 3), rc = n > 0 ? 0 : -1;
    sl_strbuf out = {0};
    for (int i = 0; i < n; i++)
        rc |= sl_strbuf_add(&out, parts[i].s, parts[i].len);
    if (rc < 0 || sl_jview_read(&r->view, out.s, out.len) < 0) {
        /* back to the old text, which read before and so reads again (its room is there) */
        free(out.s);
        (void)sl_jview_read(&r->view, r->text.s, r->text.len);
        return -1;
    }
    free(r->text.s);
    r->text = out;
    return 0;
}

int sl_ex_body_set(sl_exchange *ex, const char *key, json_t *value)
{
    if (!value)
        return -1;
    if (ex->rq_viewed && ex->body_gen == 0) {
        size_t vn;
        char *val = sl_json_dumps(value, &vn);
        int rc = val ? view_set_member(&ex->rq, key, val, vn, &ex->w->edit_buf) : -1;
        free(val);
        if (rc == 0) {
            json_decref(value);
            json_decref(ex->body); /* made from the old text: made again at the next ask */
            ex->body = NULL;
            ex->prompt_est.valid = false;
            return 0;
        }
    }
    json_t *body = sl_ex_body(ex);
    if (!body) {
        json_decref(value);
        return -1;
    }
    return json_object_set_new(body, key, value);
}

int sl_ex_body_del(sl_exchange *ex, const char *key)
{
    if (ex->rq_viewed && ex->body_gen == 0) {
        if (sl_jview_get(&ex->rq.view, 0, key) < 0)
            return 0;
        if (view_set_member(&ex->rq, key, NULL, 0, &ex->w->edit_buf) == 0) {
            json_decref(ex->body);
            ex->body = NULL;
            ex->prompt_est.valid = false;
            return 0;
        }
    }
    json_t *body = sl_ex_body(ex);
    if (!body)
        return -1;
    json_object_del(body, key);
    return 0;
}

const sl_jview *sl_ex_request_view(const sl_exchange *ex)
{
    return ex->rq_viewed && ex->body_gen == 0 ? &ex->rq.view : NULL;
}

int64_t sl_ex_prompt_estimate(sl_exchange *ex, const struct sl_tokenizer *tok)
{
    if (!ex->prompt_est.valid || ex->prompt_est.tok != tok || ex->prompt_est.gen != ex->body_gen) {
        const sl_jview *v = sl_ex_request_view(ex);
        ex->prompt_est.tokens = v ? sl_token_estimate_prompt_view(tok, ex->ep, v)
                                  : sl_token_estimate_prompt(tok, ex->ep, sl_ex_tree(ex));
        ex->prompt_est.tok = tok;
        ex->prompt_est.gen = ex->body_gen;
        ex->prompt_est.valid = true;
    }
    return ex->prompt_est.tokens;
}
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
    sl_log_fields_set(&ex->log, key, value);
}

const json_t *sl_ex_log_get(const sl_exchange *ex, const char *key) { return sl_log_fields_get(&ex->log, key); }
const json_t *sl_ex_usage(const sl_exchange *ex) { return ex->usage; }
bool sl_ex_client_wants_usage(const sl_exchange *ex) { return ex->client_wants_usage; }

void sl_ex_stream_begin(sl_exchange *ex) { sl_ex_client_stream_begin(ex); }

void sl_ex_emit_event(sl_exchange *ex, const json_t *event)
{
    size_t n;
    char *s = sl_json_dumps(event, &n);
    if (!s)
        return;
    sl_ex_stream_write_data(ex, s, n);
    free(s);
}

void sl_ex_stream_end(sl_exchange *ex)
{
    sl_ex_stream_write(ex, "data: [DONE]\n\n", 14);
    sl_ex_end_stream(ex);
    sl_ex_finish(ex);
}

int sl_ex_status(const sl_exchange *ex) { return ex->status; }
bool sl_ex_complete(const sl_exchange *ex) { return ex->upstream_ok && !ex->altered && ex->status >= 200 && ex->status < 300; }
void sl_ex_mark_altered(sl_exchange *ex) { ex->altered = true; }

void sl_ex_set_plan(sl_exchange *ex, const sl_attempt *attempts, size_t n, const sl_retry_policy *policy)
{
    free(ex->plan);
    ex->plan = malloc(n * sizeof *attempts);
    ex->n_plan = ex->plan ? n : 0;
    if (ex->plan)
        memcpy(ex->plan, attempts, n * sizeof *attempts);
    ex->cur = 0;
    ex->policy = policy;
    if (n) {
        ex->model = attempts[0].model;
        ex->target = attempts[0].target;
    }
}
