#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "fmt_int.h"
#include "openai_error.h"

#define MAX_LINE 8192
#define MAX_HEAD 65536
#define MAX_HEADERS 128
#define MAX_PIPELINED (1u << 20)

enum conn_state { ST_IDLE, ST_HEAD, ST_BODY, ST_BUSY, ST_CLOSING };

struct sl_http_conn {
    sl_http_server_ctx *sctx;
    struct bufferevent *bev;
    struct event *timer;
    struct event *resume;
    struct event *flush;     /* streamed writes leave together, after the callback queuing them */
    bool flush_pending;
    char peer[64];
    enum conn_state state;
    sl_http_request req;
    size_t head_bytes;
    size_t headers_cap;
    /* body framing */
    bool chunked;
    size_t body_left;        /* content-length: bytes still to read; chunked: of this chunk */
    int chunk_phase;         /* 0 size line, 1 data, 2 CRLF after data, 3 trailers */
    struct evbuffer *body;
    /* response */
    struct evbuffer *extra_headers;
    bool stream_chunked;
    bool close_after;
    sl_http_watch watch;
    bool want_drain;
    bool linger;             /* answered before the request was read: drain it before closing */
    int fd_direct;           /* plain TCP: we write ourselves first (-1 for TLS) */
    sl_http_conn *prev, *next;
};

static void conn_free(sl_http_conn *c);
static void process_input(sl_http_conn *c);

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 400 ? "OK" : "Error";
    }
}

static const char *http_date(void)
{
    static __thread char buf[40];
    static __thread time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

static void timer_arm(sl_http_conn *c, long long ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* Write what is queued straight to a plain socket, and ask the loop to watch for
 * writability only when some is left: most answers leave in one write with no epoll
 * change at all. TLS connections leave it to the bufferevent. */
static void flush_out(sl_http_conn *c)
{
    if (c->fd_direct < 0)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    /* a socket bufferevent freezes the start of its output so that only it drains it */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0 && evbuffer_write(out, c->fd_direct) > 0)
        ;
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(c->bev, EV_WRITE);
    else
        bufferevent_disable(c->bev, EV_WRITE);
}

/* The exchange waiting for room is told once the output is below the low-water mark. */
static void notify_drain(sl_http_conn *c)
{
    if (c->want_drain && c->watch.on_drain &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) <= c->sctx->limits->stream_low_water) {
        c->want_drain = false;
        c->watch.on_drain(c->watch.arg);
    }
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    sl_http_conn *c = arg;
    c->flush_pending = false;
    flush_out(c);
    /* all of it may have left at once: then the bufferevent calls no write_cb */
    if (c->state != ST_CLOSING)
        notify_drain(c);
}

static void request_clear(sl_http_request *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->target);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static void reset_for_next(sl_http_conn *c)
{
    request_clear(&c->req);
    c->headers_cap = 0;
    c->head_bytes = 0;
    c->chunked = false;
    c->body_left = 0;
    c->chunk_phase = 0;
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
    evbuffer_drain(c->extra_headers, evbuffer_get_length(c->extra_headers));
    c->stream_chunked = false;
    memset(&c->watch, 0, sizeof c->watch);
    c->want_drain = false;
}

/* Errors found while reading a request: answer and close. */
static void fail_request(sl_http_conn *c, int status, const char *message)
{
    c->req.keep_alive = false;
    c->linger = true;
    if (c->state != ST_BUSY)
        c->sctx->n_busy++;
    c->state = ST_BUSY;
    sl_http_respond_error(c, status, "invalid_request_error", "invalid_request", NULL, message);
}

/* The last response is out. A client still sending a request we refused (413, 431, ...)
 * must get to read that answer: closing with its bytes unread would send a reset that can
 * destroy the answer in flight. So stop writing, read and drop what comes for up to 2 s
 * or until the client closes (nginx's lingering close), then close. */
static void close_written(sl_http_conn *c)
{
    if (!c->linger || c->fd_direct < 0) {
        conn_free(c);
        return;
    }
    c->linger = false;
    shutdown(c->fd_direct, SHUT_WR);
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);
    evtimer_del(c->timer);
    timer_arm(c, 2000);
}

static void begin_closing(sl_http_conn *c)
{
    c->state = ST_CLOSING;
    evtimer_del(c->timer);
    if (!c->linger)
        bufferevent_disable(c->bev, EV_READ);
    flush_out(c);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        close_written(c);
        return;
    }
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bufferevent_enable(c->bev, EV_WRITE);
    timer_arm(c, 10000); /* a client that never reads its last response */
}

static void response_done(sl_http_conn *c)
{
    c->sctx->n_busy--;
    bool close_it = c->close_after || !c->req.keep_alive || c->sctx->draining;
    reset_for_next(c);
    if (close_it) {
        begin_closing(c);
        return;
    }
    c->state = ST_IDLE;
    timer_arm(c, c->sctx->limits->idle_timeout_ms);
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        event_active(c->resume, 0, 0);
}

static int add_header(sl_http_conn *c, char *line)
{
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
        return -1;
    for (char *p = line; p < colon; p++) {
        if (*p == ' ' || *p == '\t')
            return -1; /* no whitespace before the colon (RFC 9112 5.1) */
        *p = (char)tolower((unsigned char)*p);
    }
    *colon = 0;
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vl = strlen(v);
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        v[--vl] = 0;
    if (c->req.n_headers == MAX_HEADERS)
        return -2;
    if (c->req.n_headers == c->headers_cap) {
        size_t cap = c->headers_cap ? c->headers_cap * 2 : 16;
        sl_http_header *h = realloc(c->req.headers, cap * sizeof *h);
        if (!h)
            return -1;
        c->req.headers = h;
        c->headers_cap = cap;
    }
    c->req.headers[c->req.n_headers].name = strdup(line);
    c->req.headers[c->req.n_headers].value = strdup(v);
    c->req.n_headers++;
    return 0;
}

static int parse_request_line(sl_http_conn *c, char *line)
{
    char *sp1 = strchr(line, ' ');
    if (!sp1 || sp1 - line >= (long)sizeof c->req.method || sp1 == line)
        return -1;
    char *sp2 = strchr(sp1 + 1, ' ');
    if (!sp2 || sp2 == sp1 + 1)
        return -1;
    memcpy(c->req.method, line, (size_t)(sp1 - line));
    c->req.method[sp1 - line] = 0;
    *sp2 = 0;
    if (strcmp(sp2 + 1, "HTTP/1.1") == 0)
        c->req.minor = 1;
    else if (strcmp(sp2 + 1, "HTTP/1.0") == 0)
        c->req.minor = 0;
    else
        return -1;
    if (sp1[1] != '/')
        return -1;
    c->req.target = strdup(sp1 + 1);
    return c->req.target ? 0 : -1;
}

/* The blank line ended the head: decide the body framing. 0 ok, -1 answered with an error. */
static int finish_head(sl_http_conn *c)
{
    sl_http_request *r = &c->req;
    const char *conn_hdr = sl_http_header_get(r, "connection");
    if (r->minor == 1)
        r->keep_alive = !(conn_hdr && strcasestr(conn_hdr, "close"));
    else
        r->keep_alive = conn_hdr && strcasestr(conn_hdr, "keep-alive");

    char *path_end = strchr(r->target, '?');
    r->path = r->target;
    if (path_end) {
        r->query = path_end + 1;
        *path_end = 0; /* target now reads as the path; query follows the NUL */
    }

    const char *te = sl_http_header_get(r, "transfer-encoding");
    const char *cl = sl_http_header_get(r, "content-length");
    if (te) {
        if (cl || strcasecmp(te, "chunked") != 0) {
            fail_request(c, 400, "unsupported Transfer-Encoding (only chunked, without Content-Length)");
            return -1;
        }
        c->chunked = true;
        c->chunk_phase = 0;
    } else if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || end == cl || !isdigit((unsigned char)cl[0])) {
            fail_request(c, 400, "invalid Content-Length");
            return -1;
        }
        if (n > c->sctx->limits->max_body) {
            char msg[128];
            snprintf(msg, sizeof msg, "request body of %llu bytes is over the limit of %zu bytes", n,
                     c->sctx->limits->max_body);
            c->state = ST_BUSY;
            c->sctx->n_busy++;
            c->req.keep_alive = false;
            c->linger = true;
            sl_http_respond_error(c, 413, "invalid_request_error", "invalid_request", NULL, msg);
            return -1;
        }
        c->body_left = (size_t)n;
    }
    const char *expect = sl_http_header_get(r, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && r->minor == 1 && (c->chunked || c->body_left))
    {
        bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        flush_out(c);
    }
    c->state = ST_BODY;
    evtimer_del(c->timer);
    timer_arm(c, c->sctx->limits->body_timeout_ms);
    return 0;
}

static void dispatch(sl_http_conn *c)
{
    size_t n = evbuffer_get_length(c->body);
    c->req.body = malloc(n + 1);
    if (!c->req.body) {
        fail_request(c, 500, "out of memory");
        return;
    }
    evbuffer_remove(c->body, c->req.body, n);
    c->req.body[n] = 0;
    c->req.body_len = n;
    evtimer_del(c->timer);
    c->state = ST_BUSY;
    c->sctx->n_busy++;
    c->sctx->on_request(c, &c->req, c->sctx->arg);
}

static bool body_over_limit(sl_http_conn *c, size_t more)
{
    if (evbuffer_get_length(c->body) + more <= c->sctx->limits->max_body)
        return false;
    c->req.keep_alive = false;
    c->state = ST_BUSY;
    c->sctx->n_busy++;
    char msg[96];
    snprintf(msg, sizeof msg, "request body is over the limit of %zu bytes", c->sctx->limits->max_body);
    c->linger = true;
    sl_http_respond_error(c, 413, "invalid_request_error", "invalid_request", NULL, msg);
    return true;
}

/* 1 = need more input, 0 = body complete, -1 = answered with an error. */
static int read_body(sl_http_conn *c, struct evbuffer *in)
{
    if (!c->chunked) {
        size_t take = evbuffer_get_length(in);
        if (take > c->body_left)
            take = c->body_left;
        evbuffer_remove_buffer(in, c->body, take);
        c->body_left -= take;
        return c->body_left ? 1 : 0;
    }
    for (;;) {
        if (c->chunk_phase == 1) {
            size_t take = evbuffer_get_length(in);
            if (take > c->body_left)
                take = c->body_left;
            if (body_over_limit(c, take))
                return -1;
            evbuffer_remove_buffer(in, c->body, take);
            c->body_left -= take;
            if (c->body_left)
                return 1;
            c->chunk_phase = 2;
            continue;
        }
        size_t n;
        if (evbuffer_get_length(in) > MAX_LINE && !evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF).pos) {
            fail_request(c, 400, "chunk line too long");
            return -1;
        }
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (!line)
            return 1;
        if (c->chunk_phase == 0) {
            char *end;
            unsigned long long sz = strtoull(line, &end, 16);
            bool bad = end == line || (*end && *end != ';');
            free(line);
            if (bad) {
                fail_request(c, 400, "invalid chunk size");
                return -1;
            }
            if (sz == 0) {
                c->chunk_phase = 3;
                continue;
            }
            if (body_over_limit(c, (size_t)sz))
                return -1;
            c->body_left = (size_t)sz;
            c->chunk_phase = 1;
        } else if (c->chunk_phase == 2) {
            bool bad = n != 0;
            free(line);
            if (bad) {
                fail_request(c, 400, "missing CRLF after chunk data");
                return -1;
            }
            c->chunk_phase = 0;
        } else { /* trailers until the empty line */
            free(line);
            if (n == 0)
                return 0;
        }
    }
}

static void process_input(sl_http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        switch (c->state) {
        case ST_IDLE:
            if (evbuffer_get_length(in) == 0)
                return;
            if (c->sctx->draining) {
                begin_closing(c);
                return;
            }
            c->state = ST_HEAD;
            evtimer_del(c->timer);
            timer_arm(c, c->sctx->limits->header_timeout_ms);
            break;
        case ST_HEAD: {
            size_t n;
            char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
            if (!line) {
                if (evbuffer_get_length(in) > MAX_LINE || c->head_bytes + evbuffer_get_length(in) > MAX_HEAD)
                    fail_request(c, 431, "request head too large");
                return;
            }
            c->head_bytes += n + 2;
            if (c->head_bytes > MAX_HEAD) {
                free(line);
                fail_request(c, 431, "request head too large");
                return;
            }
            int rc;
            if (!c->req.target) {
                if (n == 0) { /* tolerate empty lines before a request (RFC 9112 2.2) */
                    free(line);
                    continue;
                }
                rc = parse_request_line(c, line);
                free(line);
                if (rc < 0) {
                    fail_request(c, 400, "malformed request line");
                    return;
                }
            } else if (n == 0) {
                free(line);
                if (finish_head(c) < 0)
                    return;
            } else {
                rc = add_header(c, line);
                free(line);
                if (rc < 0) {
                    fail_request(c, rc == -2 ? 431 : 400, rc == -2 ? "too many headers" : "malformed header");
                    return;
                }
            }
            break;
        }
        case ST_BODY: {
            int rc = read_body(c, in);
            if (rc != 0)
                return;
            dispatch(c);
            return;
        }
        case ST_BUSY:
            if (evbuffer_get_length(in) > MAX_PIPELINED)
                bufferevent_disable(c->bev, EV_READ);
            return;
        case ST_CLOSING:
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process_input(arg);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    process_input(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    sl_http_conn *c = arg;
    if (c->state == ST_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            close_written(c);
        return;
    }
    notify_drain(c); /* write_cb runs at the low-water mark (bufferevent watermark) */
    if (c->fd_direct >= 0 && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
}

static void client_gone(sl_http_conn *c)
{
    if (c->state == ST_BUSY) {
        c->sctx->n_busy--;
        if (c->watch.on_close) {
            sl_http_watch w = c->watch;
            memset(&c->watch, 0, sizeof c->watch);
            w.on_close(w.arg);
        }
    }
    conn_free(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    sl_http_conn *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        client_gone(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_http_conn *c = arg;
    switch (c->state) {
    case ST_IDLE:
    case ST_CLOSING:
        conn_free(c);
        return;
    case ST_HEAD:
    case ST_BODY:
        fail_request(c, 408, c->state == ST_HEAD ? "request head not received in time"
                                                 : "request body not received in time");
        return;
    case ST_BUSY:
        return;
    }
}

static void conn_free(sl_http_conn *c)
{
    sl_http_server_ctx *s = c->sctx;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    if (c->bev) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        if (ssl)
            SSL_set_shutdown(ssl, SSL_RECEIVED_SHUTDOWN);
        bufferevent_free(c->bev);
    }
    event_free(c->timer);
    event_free(c->resume);
    if (c->flush)
        event_free(c->flush);
    request_clear(&c->req);
    evbuffer_free(c->body);
    evbuffer_free(c->extra_headers);
    free(c);
}

void sl_http_conn_accept(sl_http_server_ctx *sctx, int fd, SSL_CTX *ssl_ctx)
{
    sl_http_conn *c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_make_socket_nonblocking(fd);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        char host[INET6_ADDRSTRLEN] = "";
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
        else
            snprintf(host, sizeof host, "unix");
        snprintf(c->peer, sizeof c->peer, "%s", host);
    }
    c->sctx = sctx;
    c->fd_direct = ssl_ctx ? -1 : fd;
    if (ssl_ctx) {
        SSL *ssl = SSL_new(ssl_ctx);
        c->bev = ssl ? bufferevent_openssl_socket_new(sctx->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                      BEV_OPT_CLOSE_ON_FREE)
                     : NULL;
        if (c->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(sctx->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    c->timer = evtimer_new(sctx->base, timer_cb, c);
    c->resume = event_new(sctx->base, -1, 0, resume_cb, c);
    c->flush = event_new(sctx->base, -1, 0, flush_cb, c);
    c->body = evbuffer_new();
    c->extra_headers = evbuffer_new();
    c->next = sctx->conns;
    if (sctx->conns)
        sctx->conns->prev = c;
    sctx->conns = c;
    sctx->n_conns++;
    if (!c->bev || !c->timer || !c->resume || !c->flush || !c->body || !c->extra_headers) {
        if (!c->bev)
            evutil_closesocket(fd);
        conn_free(c);
        return;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, sctx->limits->stream_low_water, 0);
    if (c->fd_direct >= 0) {
        bufferevent_disable(c->bev, EV_WRITE); /* on by default; flush_out turns it on when needed */
        bufferevent_enable(c->bev, EV_READ);
    } else {
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    }
    c->state = ST_IDLE;
    timer_arm(c, sctx->limits->idle_timeout_ms);
}

void sl_http_close_idle(sl_http_server_ctx *sctx)
{
    sl_http_conn *c = sctx->conns;
    while (c) {
        sl_http_conn *next = c->next;
        if (c->state == ST_IDLE)
            conn_free(c);
        c = next;
    }
}

const char *sl_http_header_get(const sl_http_request *req, const char *lower_name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcmp(req->headers[i].name, lower_name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *sl_http_peer(const sl_http_conn *c) { return c->peer; }

void sl_http_add_header(sl_http_conn *c, const char *name, const char *value)
{
    /* refuse CR/LF in values: no response splitting through upstream data */
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return;
    size_t n = strlen(name), m = strlen(value);
    char line[512];
    if (n + m + 4 > sizeof line) {
        evbuffer_add_printf(c->extra_headers, "%s: %s\r\n", name, value);
        return;
    }
    memcpy(line, name, n);
    memcpy(line + n, ": ", 2);
    memcpy(line + n + 2, value, m);
    memcpy(line + n + 2 + m, "\r\n", 2);
    evbuffer_add(c->extra_headers, line, n + m + 4);
}

static void write_head(sl_http_conn *c, int status, const char *content_type, long long length)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    bool keep = c->req.keep_alive && !c->close_after && !c->sctx->draining;
    if (length < 0 && c->req.minor == 0)
        keep = false;
    if (!keep)
        c->close_after = true;
    /* one add for the fixed part: status line, Server, Date, Content-Type, framing, Connection */
    char head[512];
    size_t n = 0, ct = content_type ? strlen(content_type) : 0;
    const char *why = reason(status), *date = http_date();
    size_t wl = strlen(why), dl = strlen(date);
    if (ct > 256)
        ct = 0; /* written apart below */
#define PUT(p, len) (memcpy(head + n, (p), (len)), n += (len))
    PUT("HTTP/1.1 ", 9);
    head[n++] = (char)('0' + status / 100 % 10);
    head[n++] = (char)('0' + status / 10 % 10);
    head[n++] = (char)('0' + status % 10);
    head[n++] = ' ';
    PUT(why, wl);
    PUT("\r\nServer: sluice\r\nDate: ", 24);
    PUT(date, dl);
    PUT("\r\n", 2);
    if (ct) {
        PUT("Content-Type: ", 14);
        PUT(content_type, ct);
        PUT("\r\n", 2);
    }
    if (length >= 0) {
        if (status != 304) { /* a 304 has no body; a length there would be the full one's */
            PUT("Content-Length: ", 16);
            n += sl_fmt_int(head + n, length);
            PUT("\r\n", 2);
        }
    } else if (c->stream_chunked) {
        PUT("Transfer-Encoding: chunked\r\n", 28);
    }
    if (!keep)
        PUT("Connection: close\r\n", 19);
    else if (c->req.minor == 0)
        PUT("Connection: keep-alive\r\n", 24);
#undef PUT
    evbuffer_add(out, head, n);
    if (content_type && !ct)
        evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type);
    evbuffer_add_buffer(out, c->extra_headers);
    evbuffer_add(out, "\r\n", 2);
}

void sl_http_respond(sl_http_conn *c, int status, const char *content_type, const void *body, size_t len)
{
    write_head(c, status, content_type, (long long)len);
    if (len && strcmp(c->req.method, "HEAD") != 0) /* HEAD: the head GET would get, no body */
        bufferevent_write(c->bev, body, len);
    flush_out(c);
    response_done(c);
}

void sl_http_respond_error(sl_http_conn *c, int status, const char *type, const char *code,
                           const char *param, const char *message)
{
    size_t len;
    char *body = sl_openai_error_json(type, code, param, message, &len);
    sl_http_respond(c, status, "application/json", body, len);
    free(body);
}

/* What was queued leaves once this callback is over (an active event: no epoll change, no
 * wait), together with whatever else this callback queues: the head with the first events,
 * every event of one upstream read, and the end of a stream that ended in the same read. */
static void flush_soon(sl_http_conn *c)
{
    if (c->fd_direct >= 0 && !c->flush_pending) { /* TLS: the bufferevent writes by itself */
        c->flush_pending = true;
        event_active(c->flush, EV_TIMEOUT, 0);
    }
}

void sl_http_stream_begin(sl_http_conn *c, int status, const char *content_type)
{
    c->stream_chunked = c->req.minor == 1;
    write_head(c, status, content_type, -1);
    flush_soon(c);
}

void sl_http_stream_writev(sl_http_conn *c, const sl_http_piece *parts, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += parts[i].len;
    if (!len)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    /* the chunk (size line, data, CRLF) put together here and added at once when it is
     * small: one evbuffer_add (a lock, a callback check) instead of one a piece */
    char buf[2048];
    char *p = buf + 20, *q = p; /* the size line is written backwards from p */
    if (c->stream_chunked) {
        *q++ = '\r';
        *q++ = '\n';
        size_t v = len;
        do
            *--p = "0123456789abcdef"[v & 15];
        while ((v >>= 4));
    }
    if (len <= sizeof buf - 24) {
        for (size_t i = 0; i < n; i++) {
            memcpy(q, parts[i].data, parts[i].len);
            q += parts[i].len;
        }
        if (c->stream_chunked) {
            *q++ = '\r';
            *q++ = '\n';
        }
        evbuffer_add(out, p, (size_t)(q - p));
    } else {
        evbuffer_add(out, p, (size_t)(q - p));
        for (size_t i = 0; i < n; i++)
            evbuffer_add(out, parts[i].data, parts[i].len);
        if (c->stream_chunked)
            evbuffer_add(out, "\r\n", 2);
    }
    flush_soon(c);
}

void sl_http_stream_write(sl_http_conn *c, const void *data, size_t len)
{
    sl_http_piece one = {data, len};
    sl_http_stream_writev(c, &one, 1);
}

void sl_http_stream_end(sl_http_conn *c)
{
    if (c->stream_chunked)
        evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
    flush_out(c);
    response_done(c);
}

size_t sl_http_pending(const sl_http_conn *c) { return evbuffer_get_length(bufferevent_get_output(c->bev)); }

void sl_http_set_watch(sl_http_conn *c, const sl_http_watch *w) { c->watch = *w; }

void sl_http_want_drain(sl_http_conn *c) { c->want_drain = true; }
