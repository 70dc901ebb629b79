#include "server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "request.h"
#include "resp.h"

#define MAX_BODY (32u << 20)

typedef struct exchange exchange;

typedef struct sl_server {
    const sl_server_cfg *cfg;
    struct event_base *base;
    struct evhttp *http;
    bool reasoning;                 /* the template thinks in <think>...</think> */
    bool r1;                        /* DeepSeek-R1: the prompt opens <think>, output starts inside it */
    long long started;
    exchange *waiting;              /* non-stream requests in flight, watched for hang-ups */
    struct event *watch;
} sl_server;

/* One generation request in flight, owned by the HTTP thread. */
struct exchange {
    sl_server *srv;
    exchange *prev, *next;          /* in srv->waiting (non-stream only) */
    bool cancel_sent;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    sl_seq *seq;
    sl_resp_meta meta;
    bool stream, include_usage;
    bool closed;                    /* the client went away */
    enum { TEXT_UNDECIDED, TEXT_PLAIN, TEXT_SPLIT } mode;
    char lead[8];                   /* TEXT_UNDECIDED: the output's first bytes */
    size_t n_lead;
    sl_reasoning_split split;
    char *content, *reasoning;      /* non-stream: the whole text */
    size_t n_content, n_reasoning, cap_content, cap_reasoning;
    int n_prompt;
};

static void send_json(struct evhttp_request *req, int status, const char *body)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evbuffer_add(buf, body, strlen(body));
    evbuffer_add(buf, "\n", 1);
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", buf);
    evbuffer_free(buf);
}

static void send_error(struct evhttp_request *req, const sl_api_error *e)
{
    char *body = sl_api_error_json(e);
    if (!body) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    send_json(req, e->status, body);
    free(body);
}

static void watch(exchange *ex)
{
    ex->next = ex->srv->waiting;
    if (ex->next)
        ex->next->prev = ex;
    ex->srv->waiting = ex;
}

static void unwatch(exchange *ex)
{
    if (ex->prev)
        ex->prev->next = ex->next;
    else if (ex->srv->waiting == ex)
        ex->srv->waiting = ex->next;
    if (ex->next)
        ex->next->prev = ex->prev;
    ex->prev = ex->next = NULL;
}

static void exchange_free(exchange *ex)
{
    unwatch(ex);
    sl_seq_free(ex->seq);
    free(ex->content);
    free(ex->reasoning);
    free(ex);
}

static int append(char **buf, size_t *n, size_t *cap, const char *s, size_t len)
{
    if (*n + len + 1 > *cap) {
        size_t c = (*n + len + 1) * 2;
        char *p = realloc(*buf, c);
        if (!p)
            return -1;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *n, s, len);
    *n += len;
    (*buf)[*n] = '\0';
    return 0;
}

static void send_chunk(exchange *ex, char *sse)
{
    if (!sse)
        return;
    struct evbuffer *buf = evbuffer_new();
    if (buf) {
        evbuffer_add(buf, sse, strlen(sse));
        evhttp_send_reply_chunk(ex->req, buf);
        evbuffer_free(buf);
    }
    free(sse);
}

/* The connection closed under a request still generating: stop it; the request object
 * stays ours (libevent detached it) until the scheduler says done. */
static void on_client_close(struct evhttp_connection *conn, void *arg)
{
    exchange *ex = arg;
    ex->closed = true;
    ex->conn = NULL;   /* freed by libevent after this call: on_watch must not peek at it */
    sl_sched_cancel(ex->srv->cfg->sched, ex->seq);
}

static void forget_conn(exchange *ex)
{
    if (ex->conn && !ex->closed)
        evhttp_connection_set_closecb(ex->conn, NULL, NULL);
}

/* Text from the scheduler, split into reasoning and content. R1 output starts inside the
 * reasoning (vLLM's deepseek_r1 parser); other thinking templates (Qwen3) reason only when
 * the output opens with <think>, so their first bytes wait until that is known. */
static void split_text(exchange *ex, const sl_news *news, char *r, size_t *nr, char *c, size_t *nc)
{
    static const char open_tag[] = "<think>";
    /* a step that made no text (a token held back as part of a character or a stop string)
     * posts none: NULL, which memcpy must not see even for 0 bytes */
    const char *text = news->text ? news->text : "";
    size_t len = news->len;
    *nr = *nc = 0;
    if (ex->mode == TEXT_UNDECIDED) {
        size_t take = sizeof open_tag - 1 - ex->n_lead;
        take = take < len ? take : len;
        memcpy(ex->lead + ex->n_lead, text, take);
        ex->n_lead += take;
        text += take;
        len -= take;
        bool prefix = memcmp(ex->lead, open_tag, ex->n_lead) == 0;
        if (prefix && ex->n_lead < sizeof open_tag - 1 && !news->done)
            return;
        ex->mode = prefix && ex->n_lead == sizeof open_tag - 1 ? TEXT_SPLIT : TEXT_PLAIN;
        if (ex->mode == TEXT_SPLIT) {
            sl_reasoning_split_push(&ex->split, ex->lead, ex->n_lead, r, nr, c, nc);
        } else {
            memcpy(c, ex->lead, ex->n_lead);
            *nc = ex->n_lead;
        }
    }
    if (ex->mode == TEXT_SPLIT) {
        size_t r1 = 0, c1 = 0;
        sl_reasoning_split_push(&ex->split, text, len, r + *nr, &r1, c + *nc, &c1);
        *nr += r1;
        *nc += c1;
        if (news->done) {
            sl_reasoning_split_finish(&ex->split, r + *nr, &r1, c + *nc, &c1);
            *nr += r1;
            *nc += c1;
        }
    } else if (len) {
        memcpy(c + *nc, text, len);
        *nc += len;
    }
}

static void finish_stream(exchange *ex, const sl_news *news)
{
    sl_usage usage = { ex->n_prompt, news->n_gen, news->n_cached };
    if (!strcmp(news->finish, "error")) {
        sl_api_error e;
        sl_api_error_set(&e, 500, "api_error", "engine_error", NULL,
                         "the engine failed while generating; see its log");
        send_chunk(ex, sl_resp_error_chunk(&e));
    } else {
        send_chunk(ex, sl_resp_chunk(&ex->meta, false, (sl_text){0}, (sl_text){0}, news->finish));
    }
    if (ex->include_usage)
        send_chunk(ex, sl_resp_usage_chunk(&ex->meta, usage));
    send_chunk(ex, strdup(SL_SSE_DONE));
    forget_conn(ex);
    evhttp_send_reply_end(ex->req);
}

static void finish_whole(exchange *ex, const sl_news *news)
{
    forget_conn(ex);
    if (!strcmp(news->finish, "cancelled")) {
        /* the client hung up; this reply fails to send and libevent frees the request */
        evhttp_send_error(ex->req, 499, "Client Closed Request");
        return;
    }
    if (!strcmp(news->finish, "error")) {
        sl_api_error e;
        sl_api_error_set(&e, 500, "api_error", "engine_error", NULL,
                         "the engine failed while generating; see its log");
        send_error(ex->req, &e);
        return;
    }
    sl_usage usage = { ex->n_prompt, news->n_gen, news->n_cached };
    sl_text content = { ex->content ? ex->content : "", ex->n_content };
    sl_text reasoning = { ex->mode == TEXT_SPLIT ? (ex->reasoning ? ex->reasoning : "") : NULL,
                          ex->n_reasoning };
    char *body = sl_resp_full(&ex->meta, content, reasoning, news->finish, usage);
    if (!body) {
        evhttp_send_error(ex->req, 500, "out of memory");
        return;
    }
    send_json(ex->req, 200, body);
    free(body);
}

static void on_news(sl_seq *seq, const sl_news *news, void *arg)
{
    exchange *ex = seq->user;
    if (ex->closed) {
        if (news->done) {
            evhttp_send_reply_end(ex->req);   /* frees the detached request */
            exchange_free(ex);
        }
        return;
    }
    char *r = malloc(news->len + 64), *c = malloc(news->len + 64);   /* + held tag bytes */
    size_t nr = 0, nc = 0;
    if (!r || !c) {
        free(r);
        free(c);
        return;
    }
    split_text(ex, news, r, &nr, c, &nc);
    if (ex->stream) {
        if (nr || nc)
            send_chunk(ex, sl_resp_chunk(&ex->meta, false, (sl_text){c, nc}, (sl_text){r, nr}, NULL));
        if (news->done)
            finish_stream(ex, news);
    } else {
        if (append(&ex->content, &ex->n_content, &ex->cap_content, c, nc) < 0 ||
            append(&ex->reasoning, &ex->n_reasoning, &ex->cap_reasoning, r, nr) < 0)
            fprintf(stderr, "sluice-engine: out of memory collecting a response\n");
        if (news->done)
            finish_whole(ex, news);
    }
    free(r);
    free(c);
    if (news->done)
        exchange_free(ex);
}

/* libevent does not read a connection while its request is being answered, so a client
 * that hangs up during a non-streamed generation is found by peeking at its socket. */
static void on_watch(evutil_socket_t fd_unused, short what, void *arg)
{
    sl_server *srv = arg;
    for (exchange *ex = srv->waiting; ex; ex = ex->next) {
        if (ex->cancel_sent || !ex->conn)
            continue;
        struct bufferevent *bev = evhttp_connection_get_bufferevent(ex->conn);
        evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
        char c;
        if (fd >= 0 && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
            ex->cancel_sent = true;
            sl_sched_cancel(srv->cfg->sched, ex->seq);
        }
    }
}

static void on_sched_ready(evutil_socket_t fd, short what, void *arg)
{
    sl_server *srv = arg;
    sl_sched_drain(srv->cfg->sched, on_news, srv);
}

static bool is_method(struct evhttp_request *req, enum evhttp_cmd_type want)
{
    if (evhttp_request_get_command(req) == want)
        return true;
    sl_api_error e;
    sl_api_error_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                     "use %s for %s", want == EVHTTP_REQ_GET ? "GET" : "POST",
                     evhttp_request_get_uri(req));
    send_error(req, &e);
    return false;
}

/* The prompt's token ids: the chat template rendered, or the completion prompt. */
static int tokenize_prompt(sl_server *srv, const sl_request *r, int32_t **ids, size_t *n,
                           sl_api_error *e)
{
    char *text = NULL;
    const char *p = r->prompt;
    size_t len = r->prompt_len;
    if (r->kind == SL_REQ_CHAT) {
        sl_err err = {0};
        if (sl_chat_template_render(srv->cfg->tmpl, r->messages, true, &text, &err) < 0) {
            sl_api_error_bad(e, "messages", "%s", err.msg);
            return -1;
        }
        p = text;
        len = strlen(text);
    }
    int rc = sl_tokenizer_encode(srv->cfg->tok, p, len, true, ids, n);
    free(text);
    int32_t bos = srv->cfg->completion_bos;
    if (rc == 0 && r->kind == SL_REQ_COMPLETION && bos >= 0 && (*n == 0 || (*ids)[0] != bos)) {
        int32_t *with = realloc(*ids, (*n + 1) * sizeof *with);
        if (!with) {
            free(*ids);
            *ids = NULL;
            sl_api_error_set(e, 500, "api_error", "out_of_memory", NULL, "the engine is out of memory");
            return -1;
        }
        memmove(with + 1, with, *n * sizeof *with);
        with[0] = bos;
        *ids = with;
        (*n)++;
    }
    if (rc < 0)
        sl_api_error_bad(e, r->kind == SL_REQ_CHAT ? "messages" : "prompt",
                         "the prompt could not be tokenized (invalid UTF-8?)");
    return rc;
}

static void start_stream(exchange *ex)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(ex->req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_send_reply_start(ex->req, 200, "OK");
    send_chunk(ex, sl_resp_chunk(&ex->meta, true, (sl_text){"", 0}, (sl_text){0}, NULL));
}

static void handle_generate(struct evhttp_request *req, sl_server *srv, sl_req_kind kind)
{
    if (!is_method(req, EVHTTP_REQ_POST))
        return;
    sl_api_error e = {0};
    sl_request r;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    exchange *ex = NULL;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    if (sl_request_parse(kind, body ? body : "", len, &r, &e) < 0) {
        send_error(req, &e);
        return;
    }
    const sl_server_cfg *cfg = srv->cfg;
    if (r.model && strcmp(r.model, cfg->served_name) != 0) {
        sl_api_error_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                         "The model `%s` does not exist. This engine serves `%s`.", r.model,
                         cfg->served_name);
        goto fail;
    }
    if (tokenize_prompt(srv, &r, &ids, &n_ids, &e) < 0)
        goto fail;
    if (n_ids == 0) {
        sl_api_error_bad(&e, kind == SL_REQ_CHAT ? "messages" : "prompt", "the prompt is empty");
        goto fail;
    }
    if (n_ids >= (size_t)cfg->max_model_len) {
        sl_api_error_set(&e, 400, "invalid_request_error", "context_length_exceeded",
                         kind == SL_REQ_CHAT ? "messages" : "prompt",
                         "This model's maximum context length is %d tokens, but the prompt has "
                         "%zu tokens; shorten the prompt.", cfg->max_model_len, n_ids);
        goto fail;
    }
    int room = cfg->max_model_len - (int)n_ids;
    int max_tokens = r.max_tokens > 0 && r.max_tokens < room ? r.max_tokens : room;

    ex = calloc(1, sizeof *ex);
    if (!ex)
        goto oom;
    ex->srv = srv;
    ex->req = req;
    ex->stream = r.stream;
    ex->include_usage = r.include_usage;
    ex->n_prompt = (int)n_ids;
    sl_reasoning_split_init(&ex->split);
    ex->mode = !srv->reasoning ? TEXT_PLAIN : srv->r1 ? TEXT_SPLIT : TEXT_UNDECIDED;
    sl_resp_meta_init(&ex->meta, kind, cfg->served_name);
    ex->seq = sl_seq_new(ids, (int)n_ids, max_tokens, &r.sampling, r.stop, r.n_stop, ex);
    if (!ex->seq)
        goto oom;
    ids = NULL;
    sl_request_clear(&r);

    ex->conn = evhttp_request_get_connection(req);
    if (ex->conn)
        evhttp_connection_set_closecb(ex->conn, on_client_close, ex);
    if (ex->stream)
        start_stream(ex);
    else
        watch(ex);
    sl_sched_submit(cfg->sched, ex->seq);
    return;
oom:
    sl_api_error_set(&e, 500, "api_error", "out_of_memory", NULL, "the engine is out of memory");
fail:
    if (ex)
        exchange_free(ex);
    free(ids);
    sl_request_clear(&r);
    send_error(req, &e);
}

static void on_chat(struct evhttp_request *req, void *arg)
{
    handle_generate(req, arg, SL_REQ_CHAT);
}

static void on_completions(struct evhttp_request *req, void *arg)
{
    handle_generate(req, arg, SL_REQ_COMPLETION);
}

static void on_models(struct evhttp_request *req, void *arg)
{
    sl_server *srv = arg;
    if (!is_method(req, EVHTTP_REQ_GET))
        return;
    char *body = sl_resp_models(srv->cfg->served_name, srv->started, srv->cfg->max_model_len);
    if (!body) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    send_json(req, 200, body);
    free(body);
}

static void on_health(struct evhttp_request *req, void *arg)
{
    send_json(req, 200, "{\"status\":\"ok\"}");
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    sl_server *srv = arg;
    sl_sched_stats st;
    sl_sched_stats_get(srv->cfg->sched, &st);
    struct evbuffer *buf = evbuffer_new();
    if (!buf) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    const char *m = srv->cfg->served_name;
    evbuffer_add_printf(buf,
        "# HELP sluice_engine_queue_length Requests waiting for a batch slot.\n"
        "# TYPE sluice_engine_queue_length gauge\n"
        "sluice_engine_queue_length{model=\"%s\"} %d\n"
        "# HELP sluice_engine_running_sequences Sequences in the running batch.\n"
        "# TYPE sluice_engine_running_sequences gauge\n"
        "sluice_engine_running_sequences{model=\"%s\"} %d\n"
        "# HELP sluice_engine_max_batch Most sequences run at once (--max-batch).\n"
        "# TYPE sluice_engine_max_batch gauge\n"
        "sluice_engine_max_batch{model=\"%s\"} %d\n"
        "# HELP sluice_engine_prompt_tokens_total Prompt tokens admitted.\n"
        "# TYPE sluice_engine_prompt_tokens_total counter\n"
        "sluice_engine_prompt_tokens_total{model=\"%s\"} %llu\n"
        "# HELP sluice_engine_prompt_tokens_cached_total Prompt tokens whose KV cache was reused from an earlier sequence (prefix reuse), not computed.\n"
        "# TYPE sluice_engine_prompt_tokens_cached_total counter\n"
        "sluice_engine_prompt_tokens_cached_total{model=\"%s\"} %llu\n"
        "# HELP sluice_engine_generation_tokens_total Tokens generated.\n"
        "# TYPE sluice_engine_generation_tokens_total counter\n"
        "sluice_engine_generation_tokens_total{model=\"%s\"} %llu\n"
        "# HELP sluice_engine_requests_finished_total Generations finished (any reason).\n"
        "# TYPE sluice_engine_requests_finished_total counter\n"
        "sluice_engine_requests_finished_total{model=\"%s\"} %llu\n"
        "# HELP sluice_engine_tokens_per_second Generated tokens per second, last second.\n"
        "# TYPE sluice_engine_tokens_per_second gauge\n"
        "sluice_engine_tokens_per_second{model=\"%s\"} %.3f\n"
        "# HELP sluice_engine_kv_cache_usage_ratio Share of the KV cache in use (0..1).\n"
        "# TYPE sluice_engine_kv_cache_usage_ratio gauge\n"
        "sluice_engine_kv_cache_usage_ratio{model=\"%s\"} %.6f\n",
        m, st.queued, m, st.running, m, st.max_batch,
        m, (unsigned long long)st.prompt_tokens, m, (unsigned long long)st.prompt_tokens_cached,
        m, (unsigned long long)st.generated_tokens,
        m, (unsigned long long)st.requests_done, m, st.tokens_per_s,
        m, st.kv_capacity ? (double)st.kv_tokens / (double)st.kv_capacity : 0.0);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", buf);
    evbuffer_free(buf);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    sl_api_error e;
    sl_api_error_set(&e, 404, "invalid_request_error", "not_found", NULL,
                     "no such endpoint: %s", evhttp_request_get_uri(req));
    send_error(req, &e);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static int listen_unix(sl_server *srv, const char *path, sl_err *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path) {
        sl_err_set(err, "--listen unix:%s: path too long (at most %zu bytes)", path,
                   sizeof sa.sun_path - 1);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sl_err_set(err, "socket: %s", strerror(errno));
        return -1;
    }
    struct stat stt;
    if (lstat(path, &stt) == 0 && S_ISSOCK(stt.st_mode))
        unlink(path);   /* a stale socket from an earlier run */
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
        sl_err_set(err, "cannot listen on unix:%s: %s", path, strerror(errno));
        goto fail;
    }
    evutil_make_socket_nonblocking(fd);
    if (evhttp_accept_socket(srv->http, fd) < 0) {
        sl_err_set(err, "cannot serve on unix:%s", path);
        goto fail;
    }
    fprintf(stderr, "sluice-engine: listening on unix:%s\n", path);
    return 0;
fail:
    close(fd);
    return -1;
}

static int listen_tcp(sl_server *srv, const char *addr, sl_err *err)
{
    char host[256];
    int port;
    if (sl_cli_split_hostport(addr, host, sizeof host, &port, err) < 0)
        return -1;
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(srv->http, host, (ev_uint16_t)port);
    if (!bs) {
        sl_err_set(err, "cannot listen on %s: %s", addr, strerror(errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int real_port = port;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
        real_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "sluice-engine: listening on http://%s%s%s:%d\n", v6 ? "[" : "", host,
            v6 ? "]" : "", real_port);
    return 0;
}

int sl_server_run(const sl_server_cfg *cfg, sl_err *err)
{
    int rc = -1;
    sl_server srv = { .cfg = cfg, .reasoning = sl_chat_template_is_reasoning(cfg->tmpl),
                      .r1 = sl_chat_template_kind(cfg->tmpl) == SL_TEMPLATE_DEEPSEEK_R1,
                      .started = (long long)time(NULL) };
    struct event *ready = NULL, *sigint = NULL, *sigterm = NULL;
    bool is_unix = strncmp(cfg->listen, "unix:", 5) == 0;
    signal(SIGPIPE, SIG_IGN);
    srv.base = event_base_new();
    srv.http = srv.base ? evhttp_new(srv.base) : NULL;
    if (!srv.http) {
        sl_err_set(err, "cannot create the HTTP server");
        goto fail;
    }
    evhttp_set_max_body_size(srv.http, MAX_BODY);
    evhttp_set_timeout(srv.http, 3600);
    evhttp_set_allowed_methods(srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_cb(srv.http, "/v1/chat/completions", on_chat, &srv);
    evhttp_set_cb(srv.http, "/v1/completions", on_completions, &srv);
    evhttp_set_cb(srv.http, "/v1/models", on_models, &srv);
    evhttp_set_cb(srv.http, "/health", on_health, &srv);
    evhttp_set_cb(srv.http, "/metrics", on_metrics, &srv);
    evhttp_set_gencb(srv.http, on_other, &srv);

    if ((is_unix ? listen_unix(&srv, cfg->listen + 5, err) : listen_tcp(&srv, cfg->listen, err)) < 0)
        goto fail;

    ready = event_new(srv.base, sl_sched_fd(cfg->sched), EV_READ | EV_PERSIST, on_sched_ready, &srv);
    srv.watch = event_new(srv.base, -1, EV_PERSIST, on_watch, &srv);
    struct timeval every = { 0, 200 * 1000 };
    if (!srv.watch || event_add(srv.watch, &every)) {
        sl_err_set(err, "cannot set up the event loop");
        goto fail;
    }
    sigint = evsignal_new(srv.base, SIGINT, on_signal, srv.base);
    sigterm = evsignal_new(srv.base, SIGTERM, on_signal, srv.base);
    if (!ready || !sigint || !sigterm || event_add(ready, NULL) || event_add(sigint, NULL) ||
        event_add(sigterm, NULL)) {
        sl_err_set(err, "cannot set up the event loop");
        goto fail;
    }
    event_base_dispatch(srv.base);
    fprintf(stderr, "sluice-engine: shutting down\n");
    rc = 0;
fail:
    if (is_unix && rc == 0)
        unlink(cfg->listen + 5);
    if (ready)
        event_free(ready);
    if (srv.watch)
        event_free(srv.watch);
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    if (srv.http)
        evhttp_free(srv.http);
    if (srv.base)
        event_base_free(srv.base);
    return rc;
}
