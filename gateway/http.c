/* HTTP/1.1 server connections (http.h). Plain TCP runs on one event per socket: recv()
 * into the connection's own buffer, the request parsed in place there, answers written
 * straight to the socket (head and body in one sendmsg); EV_WRITE is watched only while
 * bytes wait. TLS runs on bufferevent_openssl: its input is moved into the same buffer,
 * its output handed over from the same queue, so one parser and one state machine serve
 * both. Deadlines (head, body, idle, closing) share one timer a connection, moved only
 * when a deadline comes earlier than the one it is set for. */
#include "http.h"
#include "coarse_clock.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "fmt_int.h"
#include "openai_error.h"
#include "strbuf.h"

#define MAX_LINE 8192
/* A line is refused once MAX_LINE of it waits with no end: whether a longer one got through
 * depended on where reads ended (libevent's 4 KiB reads: never past this); a complete line
 * past it is refused too, however the reads fell. */
#define MAX_LINE_EVER (MAX_LINE + 4096)
#define MAX_HEAD 65536
#define MAX_HEADERS 128
#define READ_ROOM 4096           /* the least room a read is given while a request is read */
#define BUSY_ROOM 1024           /* room left after a request being answered: reading goes on
                                    there, so a client that leaves is noticed */
#define BODY_RESERVE (64 * 1024) /* the most set aside at once for a announced body */

enum conn_state { ST_IDLE, ST_HEAD, ST_BODY, ST_BUSY, ST_CLOSING };

struct sl_http_conn {
    sl_http_server_ctx *sctx;
    int fd;
    struct bufferevent *bev; /* TLS: the bufferevent reads and writes the socket; NULL for plain */
    struct event *io;        /* plain: the socket */
    short watching;          /* plain: io's flags now (EV_READ, EV_WRITE; 0: not added) */
    bool reading;            /* input is wanted */
    struct event *timer;
    long long deadline;      /* CLOCK_MONOTONIC ms of the current deadline; 0: none */
    long long armed;         /* when the timer will fire; 0: not pending */
    struct event *resume;
    struct event *flush;     /* streamed writes leave together, after the callback queuing them */
    bool flush_pending;
    char peer[64];
    enum conn_state state;
    sl_http_request req;     /* its strings point into in[] */
    /* input: in[0, in_len) read, parsed up to pos. The request being read or answered lies
     * before pos (head parsed in place, body gathered at in[body_start, body_end), always
     * short of pos); bytes after it (pipelined) from pos on. Never moved while answered. */
    char *in;
    size_t in_cap, in_len, pos;
    size_t head_bytes;
    size_t headers_cap;
    /* body framing */
    bool chunked;
    size_t body_left;        /* content-length: bytes still to read; chunked: of this chunk */
    int chunk_phase;         /* 0 size line, 1 data, 2 CRLF after data, 3 trailers */
    size_t body_start, body_end;
    /* output: out[out_off, out_len) not yet written (TLS: not yet handed to the bufferevent) */
    char *out;
    size_t out_cap, out_off, out_len;
    sl_strbuf extra_headers;
    bool stream_chunked;
    bool close_after;
    sl_http_watch watch;
    bool want_drain;
    bool linger;             /* answered before the request was read: drain it before closing */
    sl_http_conn *prev, *next;
};

static void conn_free(sl_http_conn *c);
static void close_written(sl_http_conn *c);
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

/* ---- the deadline ---- */

static void timer_arm(sl_http_conn *c, long long ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    c->armed = c->deadline;
}

/* The deadline ms from now (-1: none). The timer moves only when this one comes earlier
 * than the one it is set for; set later, it finds the new deadline when it fires and
 * waits again. A keep-alive request thus usually costs no timer change at all. */
static void deadline_in(sl_http_conn *c, long long ms)
{
    if (ms < 0) {
        c->deadline = 0;
        return;
    }
    c->deadline = sl_coarse_ms() + ms;
    if (!c->armed || c->armed > c->deadline)
        timer_arm(c, ms);
}

/* ---- the socket ---- */

static size_t out_queued(const sl_http_conn *c) { return c->out_len - c->out_off; }

size_t sl_http_pending(const sl_http_conn *c)
{
    return out_queued(c) + (c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0);
}

static void io_cb(evutil_socket_t fd, short what, void *arg);

/* Plain: the socket watched for what is wanted now; epoll is touched only when that changes. */
static void io_update(sl_http_conn *c)
{
    short want = (short)((c->reading ? EV_READ : 0) | (out_queued(c) ? EV_WRITE : 0));
    if (c->bev || want == c->watching)
        return;
    if (c->watching)
        event_del(c->io);
    if (want) {
        event_assign(c->io, c->sctx->base, c->fd, want | EV_PERSIST, io_cb, c);
        event_add(c->io, NULL);
    }
    c->watching = want;
}

static void set_reading(sl_http_conn *c, bool on)
{
    if (c->reading != on && c->bev) {
        if (on)
            bufferevent_enable(c->bev, EV_READ);
        else
            bufferevent_disable(c->bev, EV_READ);
    }
    c->reading = on;
    io_update(c);
}

/* A buffer of SL_HTTP_BLOCK bytes: one a connection gave back, or a new one. */
static char *block_take(sl_http_server_ctx *s)
{
    return s->n_spare ? s->spare[--s->n_spare] : malloc(SL_HTTP_BLOCK);
}

/* A connection's buffer between requests: kept for the next request of any connection
 * when it is a block and the list has room, else freed. */
static void block_give(sl_http_server_ctx *s, char *p, size_t cap)
{
    if (p && cap == SL_HTTP_BLOCK && !s->released && s->n_spare < (int)(sizeof s->spare / sizeof s->spare[0]))
        s->spare[s->n_spare++] = p;
    else
        free(p);
}

void sl_http_server_ctx_release(sl_http_server_ctx *sctx)
{
    sctx->released = true;
    while (sctx->n_spare)
        free(sctx->spare[--sctx->n_spare]);
}

/* Room for n more bytes at the end of the output queue: 0, or -1 out of memory. */
static int out_reserve(sl_http_conn *c, size_t n)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_cap - c->out_len >= n)
        return 0;
    if (c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_cap - c->out_len >= n)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : SL_HTTP_BLOCK;
    while (cap - c->out_len < n)
        cap *= 4; /* a stream's read of events is ~16 KB from the upstream: one copy, not two */
    char *p = c->out_cap == 0 && cap == SL_HTTP_BLOCK ? block_take(c->sctx) : realloc(c->out, cap);
    if (!p)
        return -1;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static void out_add(sl_http_conn *c, const void *p, size_t n)
{
    if (n && out_reserve(c, n) == 0) {
        memcpy(c->out + c->out_len, p, n);
        c->out_len += n;
    }
}

/* Write the queue, then tail (copied into the queue only when it cannot all leave now).
 * Never reports anything to anyone: a broken socket stays watched for writing, and the
 * write event finds the error (out_write_ready). 0, or the errno of a failed write. */
static int out_send(sl_http_conn *c, const void *tail, size_t tail_len)
{
    if (c->bev) {
        if (out_queued(c))
            bufferevent_write(c->bev, c->out + c->out_off, out_queued(c));
        if (tail_len)
            bufferevent_write(c->bev, tail, tail_len);
        c->out_off = c->out_len = 0;
        return 0;
    }
    struct iovec iov[2] = {{c->out ? c->out + c->out_off : NULL, out_queued(c)}, {(void *)tail, tail_len}};
    int i = iov[0].iov_len ? 0 : 1, err = 0;
    while (i < 2 && iov[i].iov_len) {
        struct msghdr m = {.msg_iov = iov + i, .msg_iovlen = (size_t)(2 - i)};
        ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                err = errno;
            break;
        }
        size_t left = (size_t)w;
        while (i < 2 && left >= iov[i].iov_len) {
            left -= iov[i].iov_len;
            iov[i++].iov_len = 0;
        }
        if (i < 2) {
            iov[i].iov_base = (char *)iov[i].iov_base + left;
            iov[i].iov_len -= left;
        }
    }
    if (iov[0].iov_len)
        c->out_off = (size_t)((char *)iov[0].iov_base - c->out);
    else
        c->out_off = c->out_len = 0;
    out_add(c, iov[1].iov_base, iov[1].iov_len);
    io_update(c);
    return err;
}

/* The exchange waiting for room is told once the output is below the low-water mark. */
static void notify_drain(sl_http_conn *c)
{
    if (c->want_drain && c->watch.on_drain && sl_http_pending(c) <= c->sctx->limits->stream_low_water) {
        c->want_drain = false;
        c->watch.on_drain(c->watch.arg);
    }
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_http_conn *c = arg;
    c->flush_pending = false;
    size_t waiting = sl_http_pending(c);
    out_send(c, NULL, 0);
    /* all of it may have left at once: then no write event follows to do what it would */
    if (c->state != ST_CLOSING)
        notify_drain(c);
    else if (waiting && sl_http_pending(c) == 0) /* the last response was still waiting */
        close_written(c);
}

/* ---- the input buffer ---- */

/* The request's strings follow the buffer when it moves (only while it is being read). */
static void rebase(sl_http_conn *c, char *to)
{
    sl_http_request *r = &c->req;
#define MOVE(p) ((p) = (p) ? to + ((p) - c->in) : NULL)
    MOVE(r->target);
    MOVE(r->path);
    MOVE(r->query);
    for (size_t i = 0; i < r->n_headers; i++) {
        MOVE(r->headers[i].name);
        MOVE(r->headers[i].value);
    }
#undef MOVE
}

static int in_grow(sl_http_conn *c, size_t room)
{
    size_t cap = c->in_cap ? c->in_cap : SL_HTTP_BLOCK;
    while (cap - c->in_len < room)
        cap *= 2;
    char *p = cap == SL_HTTP_BLOCK ? block_take(c->sctx) : malloc(cap);
    if (!p)
        return -1;
    if (c->in_len)
        memcpy(p, c->in, c->in_len);
    rebase(c, p);
    block_give(c->sctx, c->in, c->in_cap);
    c->in = p;
    c->in_cap = cap;
    return 0;
}

/* Room to read into: while a request is read the buffer grows (its limits bound it);
 * while one is answered it cannot move, and what is left of it is all there is. */
static size_t in_room(sl_http_conn *c)
{
    size_t room = c->in_cap - c->in_len;
    if (c->state == ST_BUSY)
        return room;
    size_t want = READ_ROOM;
    if (c->state == ST_BODY && !c->chunked && c->body_left > want)
        want = c->body_left < BODY_RESERVE ? c->body_left : BODY_RESERVE;
    if (room >= want)
        return room;
    return in_grow(c, want) == 0 ? c->in_cap - c->in_len : 0;
}

/* ---- requests ---- */

static void reset_for_next(sl_http_conn *c)
{
    sl_http_header *h = c->req.headers;
    memset(&c->req, 0, sizeof c->req);
    c->req.headers = h; /* the array is kept for the next request */
    c->head_bytes = 0;
    c->chunked = false;
    c->body_left = 0;
    c->chunk_phase = 0;
    c->body_start = c->body_end = 0;
    c->extra_headers.len = 0;
    c->stream_chunked = false;
    memset(&c->watch, 0, sizeof c->watch);
    c->want_drain = false;
    /* what followed the request moves to the front; an empty buffer goes back to the
     * worker's spares: a keep-alive connection waiting for its next request holds none (ten
     * thousand idle clients would otherwise keep 120 MB) */
    size_t rest = c->in_len - c->pos;
    if (rest && c->pos)
        memmove(c->in, c->in + c->pos, rest);
    c->in_len = rest;
    c->pos = 0;
    if (!rest) {
        block_give(c->sctx, c->in, c->in_cap);
        c->in = NULL;
        c->in_cap = 0;
    }
    if (!out_queued(c)) {
        block_give(c->sctx, c->out, c->out_cap);
        c->out = NULL;
        c->out_cap = c->out_off = c->out_len = 0;
    }
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
    if (!c->linger || c->bev) {
        conn_free(c);
        return;
    }
    c->linger = false;
    shutdown(c->fd, SHUT_WR);
    set_reading(c, true);
    deadline_in(c, 2000);
}

static void begin_closing(sl_http_conn *c)
{
    c->state = ST_CLOSING;
    if (!c->linger)
        set_reading(c, false);
    out_send(c, NULL, 0);
    if (sl_http_pending(c) == 0) {
        close_written(c);
        return;
    }
    if (c->bev)
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    deadline_in(c, 10000); /* a client that never reads its last response */
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
    deadline_in(c, c->sctx->limits->idle_timeout_ms);
    set_reading(c, true);
    if (c->in_len > 0 || (c->bev && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0))
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
        if (*p >= 'A' && *p <= 'Z') /* tolower in the C locale, without a call a byte */
            *p = (char)(*p + ('a' - 'A'));
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
    c->req.headers[c->req.n_headers].name = line;
    c->req.headers[c->req.n_headers].value = v;
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
    c->req.target = sp1 + 1;
    return 0;
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
        out_add(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        out_send(c, NULL, 0);
    }
    /* the body is gathered from the blank line's last byte on: it stays one byte short of
     * what is read next, so there is always room for its NUL */
    c->body_start = c->body_end = c->pos - 1;
    c->state = ST_BODY;
    deadline_in(c, c->sctx->limits->body_timeout_ms);
    return 0;
}

static void dispatch(sl_http_conn *c)
{
    if (c->in_cap - c->in_len < BUSY_ROOM && in_grow(c, BUSY_ROOM) < 0) {
        fail_request(c, 500, "out of memory");
        return;
    }
    c->in[c->body_end] = 0;
    c->req.body = c->in + c->body_start;
    c->req.body_len = c->body_end - c->body_start;
    c->deadline = 0;
    c->state = ST_BUSY;
    c->sctx->n_busy++;
    c->sctx->on_request(c, &c->req, c->sctx->arg);
}

static bool body_over_limit(sl_http_conn *c, size_t more)
{
    if (c->body_end - c->body_start + more <= c->sctx->limits->max_body)
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

/* Up to body_left bytes of body data from pos to the body's end. */
static void take_body(sl_http_conn *c, size_t take)
{
    memmove(c->in + c->body_end, c->in + c->pos, take);
    c->body_end += take;
    c->pos += take;
    c->body_left -= take;
}

/* The next line from pos, NUL-ended in place (CRLF or LF), or NULL when none is complete. */
static char *next_line(sl_http_conn *c, size_t *len)
{
    char *line = c->in + c->pos;
    char *nl = memchr(line, '\n', c->in_len - c->pos);
    if (!nl)
        return NULL;
    size_t n = (size_t)(nl - line);
    c->pos += n + 1;
    if (n && line[n - 1] == '\r')
        n--;
    line[n] = 0;
    *len = n;
    return line;
}

/* 1 = need more input, 0 = body complete, -1 = answered with an error. */
static int read_body(sl_http_conn *c)
{
    if (!c->chunked) {
        size_t take = c->in_len - c->pos;
        take_body(c, take < c->body_left ? take : c->body_left);
        return c->body_left ? 1 : 0;
    }
    for (;;) {
        if (c->chunk_phase == 1) {
            size_t take = c->in_len - c->pos;
            if (take > c->body_left)
                take = c->body_left;
            if (body_over_limit(c, take))
                return -1;
            take_body(c, take);
            if (c->body_left)
                return 1;
            c->chunk_phase = 2;
            continue;
        }
        size_t n;
        char *line = next_line(c, &n);
        if (!line || n > MAX_LINE_EVER) {
            if (line || c->in_len - c->pos > MAX_LINE) {
                fail_request(c, 400, "chunk line too long");
                return -1;
            }
            return 1;
        }
        if (c->chunk_phase == 0) {
            char *end;
            unsigned long long sz = strtoull(line, &end, 16);
            if (end == line || (*end && *end != ';')) {
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
            if (n != 0) {
                fail_request(c, 400, "missing CRLF after chunk data");
                return -1;
            }
            c->chunk_phase = 0;
        } else if (n == 0) { /* trailers until the empty line */
            return 0;
        }
    }
}

static void process_input(sl_http_conn *c)
{
    for (;;) {
        switch (c->state) {
        case ST_IDLE:
            if (c->pos == c->in_len)
                return;
            if (c->sctx->draining) {
                begin_closing(c);
                return;
            }
            c->state = ST_HEAD;
            clock_gettime(CLOCK_MONOTONIC, &c->req.began);
            deadline_in(c, c->sctx->limits->header_timeout_ms);
            break;
        case ST_HEAD: {
            size_t n;
            char *line = next_line(c, &n);
            if (!line) {
                size_t part = c->in_len - c->pos;
                if (part > MAX_LINE || c->head_bytes + part > MAX_HEAD)
                    fail_request(c, 431, "request head too large");
                return;
            }
            c->head_bytes += n + 2;
            if (n > MAX_LINE_EVER || c->head_bytes > MAX_HEAD) {
                fail_request(c, 431, "request head too large");
                return;
            }
            int rc;
            if (!c->req.target) {
                if (n == 0) /* tolerate empty lines before a request (RFC 9112 2.2) */
                    continue;
                if (parse_request_line(c, line) < 0) {
                    fail_request(c, 400, "malformed request line");
                    return;
                }
            } else if (n == 0) {
                if (finish_head(c) < 0)
                    return;
            } else if ((rc = add_header(c, line)) < 0) {
                fail_request(c, rc == -2 ? 431 : 400, rc == -2 ? "too many headers" : "malformed header");
                return;
            }
            break;
        }
        case ST_BODY:
            if (read_body(c) == 0)
                dispatch(c);
            return;
        case ST_BUSY:
            return; /* what follows waits for the answer */
        case ST_CLOSING:
            c->pos = c->in_len;
            return;
        }
    }
}

/* ---- events ---- */

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

/* Plain: the socket took (some of) what waits, or failed. */
static void on_writable(sl_http_conn *c)
{
    if (out_send(c, NULL, 0)) {
        client_gone(c);
        return;
    }
    if (c->state == ST_CLOSING) {
        if (!out_queued(c))
            close_written(c);
        return;
    }
    notify_drain(c);
}

/* Plain: one recv() into the buffer (no FIONREAD: the room there is what is asked for). */
static void on_readable(sl_http_conn *c)
{
    if (c->state == ST_CLOSING) { /* lingering: read and drop until the client closes */
        char buf[4096];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            conn_free(c);
        return;
    }
    size_t room = in_room(c);
    if (!room) {
        if (c->state == ST_BUSY) /* the request's own buffer is full: the rest waits for the answer */
            set_reading(c, false);
        else
            client_gone(c); /* out of memory */
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
    if (n > 0) {
        c->in_len += (size_t)n;
        process_input(c);
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        client_gone(c);
    }
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    /* one at a time: either may end the connection; the other is reported again */
    if (what & EV_WRITE)
        on_writable(arg);
    else
        on_readable(arg);
}

/* TLS: what the bufferevent read moves into the buffer (while a request is answered,
 * only what fits; the rest stays there, and reading stops). */
static void tls_pull(sl_http_conn *c)
{
    struct evbuffer *src = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(src);
    if (c->state == ST_CLOSING) {
        evbuffer_drain(src, n);
        return;
    }
    if (c->state != ST_BUSY && c->in_cap - c->in_len < n && in_grow(c, n) < 0)
        n = 0;
    if (n > c->in_cap - c->in_len)
        n = c->in_cap - c->in_len;
    if (n)
        c->in_len += (size_t)evbuffer_remove(src, c->in + c->in_len, n);
    if (evbuffer_get_length(src) && c->state == ST_BUSY)
        set_reading(c, false);
}

static void tls_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    sl_http_conn *c = arg;
    tls_pull(c);
    process_input(c);
}

static void tls_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    sl_http_conn *c = arg;
    if (c->state == ST_CLOSING) {
        if (sl_http_pending(c) == 0)
            close_written(c);
        return;
    }
    notify_drain(c); /* write_cb runs at the low-water mark (bufferevent watermark) */
}

static void tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        client_gone(arg);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_http_conn *c = arg;
    if (c->bev)
        tls_pull(c);
    process_input(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_http_conn *c = arg;
    c->armed = 0;
    if (!c->deadline)
        return;
    long long left = c->deadline - sl_coarse_ms();
    if (left > 0) { /* set later since the timer was: wait for the rest */
        timer_arm(c, left);
        return;
    }
    c->deadline = 0;
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
        bufferevent_free(c->bev); /* closes the socket */
    } else {
        if (c->io)
            event_free(c->io);
        if (c->fd >= 0)
            close(c->fd);
    }
    if (c->timer)
        event_free(c->timer);
    if (c->resume)
        event_free(c->resume);
    if (c->flush)
        event_free(c->flush);
    free(c->req.headers);
    block_give(c->sctx, c->in, c->in_cap);
    block_give(c->sctx, c->out, c->out_cap);
    free(c->extra_headers.s);
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
    c->fd = fd;
    c->next = sctx->conns;
    if (sctx->conns)
        sctx->conns->prev = c;
    sctx->conns = c;
    sctx->n_conns++;
    bool ok;
    if (ssl_ctx) {
        SSL *ssl = SSL_new(ssl_ctx);
        c->bev = ssl ? bufferevent_openssl_socket_new(sctx->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                      BEV_OPT_CLOSE_ON_FREE)
                     : NULL;
        ok = c->bev != NULL;
        if (!ok)
            c->fd = -1, evutil_closesocket(fd);
    } else {
        c->io = event_new(sctx->base, fd, 0, io_cb, c);
        ok = c->io != NULL;
    }
    c->timer = evtimer_new(sctx->base, timer_cb, c);
    c->resume = event_new(sctx->base, -1, 0, resume_cb, c);
    c->flush = event_new(sctx->base, -1, 0, flush_cb, c);
    if (!ok || !c->timer || !c->resume || !c->flush) {
        conn_free(c);
        return;
    }
    if (c->bev) {
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        bufferevent_setcb(c->bev, tls_read_cb, tls_write_cb, tls_event_cb, c);
        bufferevent_setwatermark(c->bev, EV_WRITE, sctx->limits->stream_low_water, 0);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    }
    c->state = ST_IDLE;
    c->reading = true;
    io_update(c);
    deadline_in(c, sctx->limits->idle_timeout_ms);
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
        if (req->headers[i].name[0] == lower_name[0] && strcmp(req->headers[i].name, lower_name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *sl_http_peer(const sl_http_conn *c) { return c->peer; }

/* ---- responses ---- */

void sl_http_add_header(sl_http_conn *c, const char *name, const char *value)
{
    /* refuse CR/LF in values: no response splitting through upstream data */
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return;
    size_t n = strlen(name), m = strlen(value);
    sl_strbuf *b = &c->extra_headers;
    if (sl_strbuf_reserve(b, n + m + 4) < 0)
        return;
    char *p = b->s + b->len;
    memcpy(p, name, n);
    memcpy(p + n, ": ", 2);
    memcpy(p + n + 2, value, m);
    memcpy(p + n + 2 + m, "\r\n", 2);
    b->len += n + m + 4;
}

static void write_head(sl_http_conn *c, int status, const char *content_type, long long length)
{
    bool keep = c->req.keep_alive && !c->close_after && !c->sctx->draining;
    if (length < 0 && c->req.minor == 0)
        keep = false;
    if (!keep)
        c->close_after = true;
    /* the fixed part at once: status line, Server, Date, Content-Type, framing, Connection */
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
    out_add(c, head, n);
    if (content_type && !ct) {
        out_add(c, "Content-Type: ", 14);
        out_add(c, content_type, strlen(content_type));
        out_add(c, "\r\n", 2);
    }
    out_add(c, c->extra_headers.s, c->extra_headers.len);
    out_add(c, "\r\n", 2);
}

void sl_http_respond(sl_http_conn *c, int status, const char *content_type, const void *body, size_t len)
{
    write_head(c, status, content_type, (long long)len);
    if (strcmp(c->req.method, "HEAD") == 0) /* HEAD: the head GET would get, no body */
        len = 0;
    out_send(c, body, len); /* head and body in one write */
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
    if (!c->flush_pending) {
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
    if (!len || out_reserve(c, len + 24) < 0)
        return;
    char *q = c->out + c->out_len;
    if (c->stream_chunked) { /* size line, data, CRLF */
        char hex[20], *p = hex + sizeof hex;
        size_t v = len;
        do
            *--p = "0123456789abcdef"[v & 15];
        while ((v >>= 4));
        size_t hl = (size_t)(hex + sizeof hex - p);
        memcpy(q, p, hl);
        q += hl;
        *q++ = '\r';
        *q++ = '\n';
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(q, parts[i].data, parts[i].len);
        q += parts[i].len;
    }
    if (c->stream_chunked) {
        *q++ = '\r';
        *q++ = '\n';
    }
    c->out_len = (size_t)(q - c->out);
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
        out_add(c, "0\r\n\r\n", 5);
    out_send(c, NULL, 0);
    response_done(c);
}

void sl_http_set_watch(sl_http_conn *c, const sl_http_watch *w) { c->watch = *w; }

void sl_http_want_drain(sl_http_conn *c) { c->want_drain = true; }
