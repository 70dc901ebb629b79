/* The upstream client's own HTTP/1.1, for plain-http upstreams at an IP address or
 * localhost and for engine unix sockets: one send() per request, one recv() per readiness,
 * keep-alive connections pooled per destination and watched while idle (a peer that closes
 * one is noticed at once, so reuse needs no liveness poll). Everything else (https, named
 * hosts) stays with libcurl in upstream.c. Timeouts, results and callbacks are the same
 * as libcurl's path: upstream.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/event.h>

#include "fmt_int.h"
#include "strbuf.h"
#include "upstream_int.h"

#define HEAD_MAX (64 * 1024)   /* status line and headers */
#define LINE_MAX_BYTES 4096    /* a chunk-size or trailer line */
#define READ_BYTES 16384
#define SPARE_XFERS 32         /* finished transfers kept for the next ones */
#define SPARE_BYTES (64 * 1024) /* ...when their request buffer is no bigger */

typedef struct h1_conn h1_conn;

typedef struct h1_pool {
    struct h1_pool *next;
    char key[320];                  /* "unix:PATH" or "HOST:PORT" */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    h1_conn *idle;                  /* most recently used first */
    int n_idle;
} h1_pool;

/* A target (base_url and unix socket) already parsed: its pool, and the length of its host
 * (which follows "http://"; the path prefix follows the host). The same target again needs
 * no parsing; several targets may share a pool (two base_urls on one host). */
typedef struct h1_target {
    struct h1_target *next;
    char *url, *unix_path;
    h1_pool *pool;
    size_t host_len;
} h1_target;

struct h1_conn {
    int fd;
    struct event *ev;
    short watching;                 /* the flags ev is added with: EV_READ (and EV_WRITE while
                                       a send waits); 0 while paused */
    h1_pool *pool;
    h1_conn *next;                  /* in pool->idle */
    sl_upstream_client *client;
    struct h1_xfer *x;              /* the transfer on it; NULL while idle */
};

typedef enum x_state {
    X_CONNECT, X_HEAD, X_LENGTH, X_CHUNK_SIZE, X_CHUNK_DATA, X_CHUNK_END, X_TRAILER, X_UNTIL_EOF, X_DONE
} x_state;

struct h1_xfer {
    sl_upstream_req *r;
    h1_pool *pool;
    h1_conn *conn;
    sl_strbuf msg;                  /* the whole request: head and body */
    size_t sent;
    bool reused, retried, got_bytes;
    int early_errno;                /* the connection was refused at once */
    int max_idle;
    long long connect_ms;
    struct event *early;            /* reports early_errno from the loop (made when needed) */
    x_state st;
    sl_strbuf buf;                  /* the head being read, or a chunk-size / trailer line */
    unsigned long long left;        /* body or chunk bytes still to come */
    bool keep_alive;
    char *pend;                     /* bytes read while paused, fed on resume */
    size_t pend_len;
    struct h1_xfer *next_spare;     /* in client->spare_x */
};

typedef enum feed_rc { FEED_MORE, FEED_DONE, FEED_PAUSED, FEED_CANCELLED, FEED_ERROR } feed_rc;

static void conn_cb(evutil_socket_t fd, short what, void *arg);

/* ---- destinations and connections ---- */

/* Where base_url points, when this client can carry it; false leaves it to libcurl. */
static bool parse_target(const sl_upstream_target *t, char *key, size_t key_cap, struct sockaddr_storage *addr,
                         socklen_t *addr_len, const char **host, size_t *host_len, const char **prefix)
{
    const char *u = t->base_url;
    if (strncasecmp(u, "http://", 7) != 0)
        return false;
    u += 7;
    const char *end = u + strcspn(u, "/?#");
    if (*end == '?' || *end == '#')
        return false;
    *host = u;
    *host_len = (size_t)(end - u);
    *prefix = end;
    memset(addr, 0, sizeof *addr);
    if (t->unix_socket) {
        struct sockaddr_un *sun = (struct sockaddr_un *)addr;
        size_t n = strlen(t->unix_socket);
        if (n >= sizeof sun->sun_path)
            return false;
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, t->unix_socket, n + 1);
        *addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return snprintf(key, key_cap, "unix:%s", t->unix_socket) < (int)key_cap;
    }
    char name[256];
    const char *port_s = NULL;
    size_t name_len;
    if (*u == '[') { /* [IPv6]:port */
        const char *close = memchr(u, ']', (size_t)(end - u));
        if (!close)
            return false;
        name_len = (size_t)(close - u - 1);
        if (name_len >= sizeof name)
            return false;
        memcpy(name, u + 1, name_len);
        if (close + 1 < end && close[1] == ':')
            port_s = close + 2;
        else if (close + 1 != end)
            return false;
    } else {
        const char *colon = memchr(u, ':', (size_t)(end - u));
        name_len = (size_t)((colon ? colon : end) - u);
        if (name_len >= sizeof name)
            return false;
        memcpy(name, u, name_len);
        port_s = colon ? colon + 1 : NULL;
    }
    name[name_len] = 0;
    long port = 80;
    if (port_s) {
        char *e;
        port = strtol(port_s, &e, 10);
        if (e != end || port <= 0 || port > 65535)
            return false;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)addr;
    if (strcasecmp(name, "localhost") == 0)
        snprintf(name, sizeof name, "127.0.0.1");
    if (inet_pton(AF_INET, name, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *addr_len = sizeof *sin;
    } else if (inet_pton(AF_INET6, name, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *addr_len = sizeof *sin6;
    } else {
        return false; /* a name to resolve: libcurl's (asynchronous) resolver does that */
    }
    return snprintf(key, key_cap, "%s:%ld", name, port) < (int)key_cap;
}

static h1_pool *pool_get(sl_upstream_client *c, const char *key, const struct sockaddr_storage *addr,
                         socklen_t addr_len)
{
    for (h1_pool *p = c->pools; p; p = p->next)
        if (strcmp(p->key, key) == 0)
            return p;
    h1_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->key, sizeof p->key, "%s", key);
    p->addr = *addr;
    p->addr_len = addr_len;
    p->next = c->pools;
    c->pools = p;
    return p;
}

static bool same_str(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

static const h1_target *target_known(const sl_upstream_client *c, const sl_upstream_target *t)
{
    for (const h1_target *k = c->targets; k; k = k->next)
        if (strcmp(k->url, t->base_url) == 0 && same_str(k->unix_path, t->unix_socket))
            return k;
    return NULL;
}

/* Kept for next time (out of memory: it is parsed again then). */
static void target_remember(sl_upstream_client *c, const sl_upstream_target *t, h1_pool *pool, size_t host_len)
{
    h1_target *k = calloc(1, sizeof *k);
    if (!k || !(k->url = strdup(t->base_url)) || (t->unix_socket && !(k->unix_path = strdup(t->unix_socket)))) {
        if (k)
            free(k->url);
        free(k);
        return;
    }
    k->pool = pool;
    k->host_len = host_len;
    k->next = c->targets;
    c->targets = k;
}

static void conn_close(h1_conn *k)
{
    if (!k)
        return;
    event_free(k->ev);
    close(k->fd);
    free(k);
}

static void pool_remove(h1_conn *k)
{
    for (h1_conn **pp = &k->pool->idle; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            k->pool->n_idle--;
            return;
        }
}

/* Watch k for reading (and writing): epoll is touched only when that changes. */
static void conn_watch(h1_conn *k, bool want_write)
{
    short flags = EV_READ | (want_write ? EV_WRITE : 0);
    if (k->watching == flags)
        return;
    if (k->watching)
        event_del(k->ev);
    event_assign(k->ev, event_get_base(k->ev), k->fd, flags | EV_PERSIST, conn_cb, k);
    event_add(k->ev, NULL);
    k->watching = flags;
}

static void conn_stop(h1_conn *k)
{
    if (k->watching)
        event_del(k->ev);
    k->watching = 0;
}

/* A new connection, connecting. NULL with errno set when the socket cannot even start. */
static h1_conn *conn_open(sl_upstream_client *c, h1_pool *p, bool *connected)
{
    int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (p->addr.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int rc = connect(fd, (const struct sockaddr *)&p->addr, p->addr_len);
    if (rc < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    h1_conn *k = calloc(1, sizeof *k);
    if (k)
        k->ev = event_new(c->base, fd, 0, conn_cb, k);
    if (!k || !k->ev) {
        free(k);
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    k->fd = fd;
    k->pool = p;
    k->client = c;
    conn_watch(k, true);
    *connected = rc == 0;
    return k;
}

/* ---- ending a transfer ---- */

static void fail(struct h1_xfer *x, sl_upstream_result res, const char *message)
{
    sl_up_finish(x->r, res, message); /* on_done, then sl_h1_free closes the connection */
}

static void fail_errno(struct h1_xfer *x, const char *what, int e)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
    /* nothing of an answer yet: the upstream never took the request (as libcurl counts it) */
    fail(x, x->st == X_CONNECT || !x->got_bytes ? SL_UP_CONNECT_FAILED : SL_UP_RESET, msg);
}

static void xfer_done(struct h1_xfer *x, bool extra_bytes)
{
    h1_conn *k = x->conn;
    x->conn = NULL;
    k->x = NULL;
    /* reused only when the exchange was whole both ways: an upstream that answered before
     * it had read all of the request leaves the rest of it on this connection */
    if (x->keep_alive && !extra_bytes && x->sent == x->msg.len && k->pool->n_idle < x->max_idle) {
        conn_watch(k, false);
        k->next = k->pool->idle;
        k->pool->idle = k;
        k->pool->n_idle++;
    } else {
        conn_close(k);
    }
    sl_up_finish(x->r, SL_UP_OK, "");
}

static void start_on(struct h1_xfer *x, h1_conn *k, bool connected);

/* A pooled connection the upstream had closed before it answered anything: the request
 * goes again, once, on a new connection (as libcurl does). */
static bool retry_fresh(struct h1_xfer *x)
{
    if (!x->reused || x->retried || x->got_bytes)
        return false;
    x->retried = true;
    x->reused = false;
    h1_conn *old = x->conn;
    x->conn = NULL;
    conn_close(old);
    bool connected = false;
    h1_conn *k = conn_open(x->r->client, x->pool, &connected);
    if (!k) {
        fail_errno(x, "connect to upstream", errno);
        return true;
    }
    start_on(x, k, connected);
    return true;
}

/* ---- the response parser ---- */

static bool buf_add(struct h1_xfer *x, const char *p, size_t n, size_t max)
{
    return x->buf.len + n <= max && sl_strbuf_add(&x->buf, p, n) == 0;
}

static bool token_in(const char *v, size_t vl, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= vl; i++)
        if ((i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') && strncasecmp(v + i, tok, tl) == 0 &&
            (i + tl == vl || v[i + tl] == ',' || v[i + tl] == ' ' || v[i + tl] == ';'))
            return true;
    return false;
}

/* The next CRLF in [p, end), or NULL. */
static char *find_crlf(char *p, const char *end)
{
    while ((p = memchr(p, '\r', (size_t)(end - p))) && p + 1 < end && p[1] != '\n')
        p++;
    return p && p + 1 < end ? p : NULL;
}

/* The head in x->buf (ending in an empty line). -1: malformed. 0: a 1xx, skip it. 1: final. */
static int parse_head(struct h1_xfer *x, bool *chunked, long long *length)
{
    sl_upstream_req *r = x->r;
    char *p = x->buf.s, *end = p + x->buf.len;
    if (memchr(p, 0, x->buf.len))
        return -1; /* no NUL in a head */
    char *eol = find_crlf(p, end);
    if (!eol || eol - p < 12 || strncmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        status = status * 10 + (p[i] - '0');
    }
    if (p[12] != ' ' && p + 12 != eol)
        return -1;
    bool http10 = p[7] == '0';
    x->keep_alive = !http10;
    *chunked = false;
    *length = -1;
    r->content_type[0] = r->retry_after[0] = 0;
    for (char *line = eol + 2; line < x->buf.s + x->buf.len; line = eol + 2) {
        eol = find_crlf(line, end);
        if (!eol)
            return -1;
        if (eol == line)
            break;
        char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon || colon == line)
            return -1;
        size_t nl = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vl = (size_t)(eol - v);
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        if (nl == 12 && strncasecmp(line, "content-type", 12) == 0) {
            size_t n = vl < sizeof r->content_type - 1 ? vl : sizeof r->content_type - 1;
            memcpy(r->content_type, v, n);
            r->content_type[n] = 0;
        } else if (nl == 11 && strncasecmp(line, "retry-after", 11) == 0) {
            size_t n = vl < sizeof r->retry_after - 1 ? vl : sizeof r->retry_after - 1;
            memcpy(r->retry_after, v, n);
            r->retry_after[n] = 0;
        } else if (nl == 14 && strncasecmp(line, "content-length", 14) == 0) {
            long long n = 0;
            if (!vl)
                return -1;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9' || n > (1LL << 50))
                    return -1;
                n = n * 10 + (v[i] - '0');
            }
            if (*length >= 0 && *length != n)
                return -1; /* two lengths that disagree: no way to know where it ends */
            *length = n;
        } else if (nl == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
            *chunked = token_in(v, vl, "chunked");
        } else if (nl == 10 && strncasecmp(line, "connection", 10) == 0) {
            if (token_in(v, vl, "close"))
                x->keep_alive = false;
            else if (http10 && token_in(v, vl, "keep-alive"))
                x->keep_alive = true;
        }
    }
    if (status < 200 && status != 101)
        return 0;
    if (status == 101)
        return -1; /* no upgrades here */
    r->status = status;
    return 1;
}

/* Hand body bytes to the exchange. */
static feed_rc deliver(struct h1_xfer *x, const char *p, size_t n)
{
    sl_upstream_req *r = x->r;
    if (!n)
        return FEED_MORE;
    sl_up_data(r, p, n);
    return r->cancelled ? FEED_CANCELLED : FEED_MORE;
}

/* A whole line (chunk size, chunk end, trailer) gathered in x->buf: 1 when it is there. */
static int take_line(struct h1_xfer *x, const char *p, size_t n, size_t *used)
{
    const char *nl = memchr(p, '\n', n);
    size_t k = nl ? (size_t)(nl - p) + 1 : n;
    *used = k;
    if (!buf_add(x, p, k, LINE_MAX_BYTES))
        return -1;
    return nl ? 1 : 0;
}

/* How much of q (n bytes) belongs to the head that b has begun: up to its blank line (*whole),
 * which may begin in b's last bytes; else all of it. Only the head is copied into b, not the
 * body that came in the same read. */
static const char *find_blank_line(const char *q, size_t n);

static size_t head_part(const sl_strbuf *b, const char *q, size_t n, bool *whole)
{
    static const char blank[] = "\r\n\r\n";
    *whole = true;
    for (size_t j = 3; j >= 1; j--) /* "\r\n\r" ... "\r" at b's end: the earliest end first */
        if (b->len >= j && n >= 4 - j && memcmp(b->s + b->len - j, blank, j) == 0 && memcmp(q, blank + j, 4 - j) == 0)
            return 4 - j;
    const char *e = find_blank_line(q, n);
    if (e)
        return (size_t)(e - q) + 4;
    *whole = false;
    return n;
}

/* The first "\r\n\r\n" in q: from line end to line end (memchr), not memmem's search at
 * every byte of a read that is mostly body. */
static const char *find_blank_line(const char *q, size_t n)
{
    const char *end = q + n;
    for (const char *p = q; (p = memchr(p, '\n', (size_t)(end - p))); p++)
        if (p > q && p[-1] == '\r' && end - p >= 3 && p[1] == '\r' && p[2] == '\n')
            return p - 1;
    return NULL;
}

static feed_rc feed(struct h1_xfer *x, const char *p, size_t n, size_t *consumed, const char **why)
{
    sl_upstream_req *r = x->r;
    size_t off = 0;
    *why = "malformed response from upstream";
    while (off < n || x->st == X_DONE) {
        if (x->st == X_DONE) {
            *consumed = off;
            return FEED_DONE;
        }
        const char *q = p + off;
        size_t avail = n - off, used = 0;
        switch (x->st) {
        case X_HEAD: {
            bool whole;
            size_t k = head_part(&x->buf, q, avail, &whole);
            if (!buf_add(x, q, k, HEAD_MAX)) {
                *why = "upstream response headers too large";
                return FEED_ERROR;
            }
            off += k;
            if (!whole)
                break;
            bool chunked;
            long long length;
            int h = parse_head(x, &chunked, &length);
            x->buf.len = 0;
            if (h < 0)
                return FEED_ERROR;
            if (h == 0)
                break; /* 100 Continue and friends: the real head follows */
            sl_up_headers(r);
            if (r->cancelled)
                return FEED_CANCELLED;
            if (r->status == 204 || r->status == 304) {
                x->st = X_DONE;
            } else if (chunked) {
                x->st = X_CHUNK_SIZE;
            } else if (length >= 0) {
                x->left = (unsigned long long)length;
                x->st = length ? X_LENGTH : X_DONE;
            } else {
                x->st = X_UNTIL_EOF;
                x->keep_alive = false;
            }
            break;
        }
        case X_LENGTH:
        case X_CHUNK_DATA:
        case X_UNTIL_EOF: {
            if (r->want_pause) {
                *consumed = off;
                return FEED_PAUSED;
            }
            size_t k = x->st == X_UNTIL_EOF || avail < x->left ? avail : (size_t)x->left;
            off += k;
            if (x->st != X_UNTIL_EOF)
                x->left -= k;
            feed_rc rc = deliver(x, q, k);
            if (rc != FEED_MORE)
                return rc;
            if (x->st != X_UNTIL_EOF && x->left == 0)
                x->st = x->st == X_LENGTH ? X_DONE : X_CHUNK_END;
            break;
        }
        case X_CHUNK_SIZE:
        case X_CHUNK_END:
        case X_TRAILER: {
            int got = take_line(x, q, avail, &used);
            off += used;
            if (got < 0)
                return FEED_ERROR;
            if (!got)
                break;
            size_t len = x->buf.len;
            while (len && (x->buf.s[len - 1] == '\n' || x->buf.s[len - 1] == '\r'))
                len--;
            x->buf.s[len] = 0;
            x->buf.len = 0;
            if (x->st == X_CHUNK_END) {
                if (len)
                    return FEED_ERROR;
                x->st = X_CHUNK_SIZE;
            } else if (x->st == X_TRAILER) {
                if (!len)
                    x->st = X_DONE;
            } else {
                char *e;
                if (!len || !strchr("0123456789abcdefABCDEF", x->buf.s[0]))
                    return FEED_ERROR;
                unsigned long long size = strtoull(x->buf.s, &e, 16);
                if (*e && *e != ';' && *e != ' ' && *e != '\t')
                    return FEED_ERROR;
                x->left = size;
                x->st = size ? X_CHUNK_DATA : X_TRAILER;
            }
            break;
        }
        default:
            return FEED_ERROR;
        }
    }
    *consumed = off;
    return x->st == X_DONE ? FEED_DONE : FEED_MORE;
}

/* Bytes from the socket (or held while paused): feed them and act on the outcome. False
 * when the transfer is over (x is gone). */
static bool take(struct h1_xfer *x, const char *p, size_t n)
{
    size_t used = 0;
    const char *why;
    feed_rc rc = feed(x, p, n, &used, &why);
    switch (rc) {
    case FEED_MORE:
        return true;
    case FEED_DONE:
        xfer_done(x, used < n);
        return false;
    case FEED_PAUSED: {
        char *keep = malloc(n - used);
        if (!keep) {
            fail(x, SL_UP_FAILED, "out of memory");
            return false;
        }
        memcpy(keep, p + used, n - used);
        free(x->pend);
        x->pend = keep;
        x->pend_len = n - used;
        x->r->paused = true;
        conn_stop(x->conn); /* read nothing more until the client has taken this */
        return true;
    }
    case FEED_CANCELLED:
        sl_up_finish(x->r, SL_UP_FAILED, "cancelled"); /* no callback: it is cancelled */
        return false;
    case FEED_ERROR:
        fail(x, SL_UP_FAILED, why);
        return false;
    }
    return false;
}

/* ---- socket events ---- */

/* Send what the socket takes: 0 (all sent, or waiting to write more) or the errno. */
static int send_some(struct h1_xfer *x)
{
    h1_conn *k = x->conn;
    while (x->sent < x->msg.len) {
        ssize_t w = send(k->fd, x->msg.s + x->sent, x->msg.len - x->sent, MSG_NOSIGNAL);
        if (w > 0) {
            x->sent += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_watch(k, true);
            return 0;
        } else {
            return w < 0 ? errno : EPIPE;
        }
    }
    conn_watch(k, false);
    return 0;
}

static void on_eof(struct h1_xfer *x)
{
    if (x->st == X_UNTIL_EOF) {
        x->st = X_DONE;
        x->keep_alive = false;
        xfer_done(x, false);
    } else if (!x->got_bytes) {
        if (!retry_fresh(x))
            fail(x, SL_UP_CONNECT_FAILED, "upstream closed the connection without answering");
    } else {
        fail(x, SL_UP_RESET, "upstream closed the connection before the response was complete");
    }
}

static void do_read(struct h1_xfer *x)
{
    char buf[READ_BYTES];
    sl_upstream_req *r = x->r;
    for (;;) {
        ssize_t n = recv(x->conn->fd, buf, sizeof buf, 0);
        if (n > 0) {
            if (!x->got_bytes) {
                x->got_bytes = r->got_bytes = true;
                r->first_byte_at = 0;
            }
            if (!take(x, buf, (size_t)n) || r->paused || (size_t)n < sizeof buf)
                return;
        } else if (n == 0) {
            on_eof(x);
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            int e = errno;
            if (!retry_fresh(x))
                fail_errno(x, "receive from upstream", e);
            return;
        }
    }
}

static void conn_cb(evutil_socket_t fd, short what, void *arg)
{
    h1_conn *k = arg;
    struct h1_xfer *x = k->x;
    if (!x) { /* idle in the pool: the upstream closed it (or spoke out of turn) */
        pool_remove(k);
        conn_close(k);
        return;
    }
    if (x->st == X_CONNECT) {
        if (!(what & EV_WRITE))
            return;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            fail_errno(x, "connect to upstream", err);
            return;
        }
        x->r->connect_at = 0;
        x->st = X_HEAD;
    }
    if (x->sent < x->msg.len && (what & EV_WRITE)) {
        int e = send_some(x);
        if (e) {
            if (!retry_fresh(x))
                fail_errno(x, "send to upstream", e);
            return;
        }
    }
    if (what & EV_READ)
        do_read(x);
}

static void early_cb(evutil_socket_t fd, short what, void *arg)
{
    struct h1_xfer *x = arg;
    if (!retry_fresh(x))
        fail_errno(x, x->st == X_CONNECT ? "connect to upstream" : "send to upstream", x->early_errno);
}

/* A failure found while starting (x->early_errno), reported from the loop. */
static void report_early(struct h1_xfer *x)
{
    if (!x->early && !(x->early = event_new(x->r->client->base, -1, 0, early_cb, x))) {
        x->early_errno = 0; /* no event to report it: the deadlines will */
        return;
    }
    event_active(x->early, EV_TIMEOUT, 0);
}

/* Begin (or begin again) on connection k. A failure is reported from the event loop,
 * never to whoever called in. */
static void start_on(struct h1_xfer *x, h1_conn *k, bool connected)
{
    x->conn = k;
    k->x = x;
    x->sent = 0;
    x->buf.len = 0;
    x->early_errno = 0;
    if (!connected) {
        x->st = X_CONNECT;
        if (x->connect_ms > 0)
            sl_up_deadline(x->r, &x->r->connect_at, x->connect_ms);
        return;
    }
    x->st = X_HEAD;
    if ((x->early_errno = send_some(x)))
        report_early(x);
}

/* ---- the API (through upstream.c) ---- */

/* A transfer, zeroed: a spare one keeps its buffers' room (no allocation a request). */
static struct h1_xfer *xfer_new(sl_upstream_client *c)
{
    struct h1_xfer *x = c->spare_x;
    if (!x)
        return calloc(1, sizeof *x);
    c->spare_x = x->next_spare;
    c->n_spare_x--;
    sl_strbuf msg = x->msg, buf = x->buf;
    memset(x, 0, sizeof *x);
    x->msg = msg;
    x->buf = buf;
    x->msg.len = x->buf.len = 0;
    return x;
}

/* "Name: PREFIXvalue\r\n"; 0, or -1 out of memory. */
static int add_header(sl_strbuf *b, const char *name, const char *prefix, const char *value)
{
    return sl_strbuf_add(b, name, strlen(name)) | sl_strbuf_add(b, ": ", 2) | sl_strbuf_add(b, prefix, strlen(prefix)) |
           sl_strbuf_add(b, value, strlen(value)) | sl_strbuf_add(b, "\r\n", 2);
}

int sl_h1_start(sl_upstream_req *r, const sl_upstream_target *t, const char *path, const sl_upstream_part *body,
                int n, size_t len)
{
    sl_upstream_client *c = r->client;
    const sl_upstream_conf *uc = t->conf;
    const char *host, *prefix;
    size_t host_len;
    h1_pool *pool;
    const h1_target *known = target_known(c, t);
    if (known) {
        pool = known->pool;
        host = t->base_url + 7; /* as parse_target finds them */
        host_len = known->host_len;
        prefix = host + host_len;
    } else {
        char key[320];
        struct sockaddr_storage addr;
        socklen_t addr_len = 0;
        if (!parse_target(t, key, sizeof key, &addr, &addr_len, &host, &host_len, &prefix))
            return -1;
        if ((pool = pool_get(c, key, &addr, addr_len)))
            target_remember(c, t, pool, host_len);
    }
    struct h1_xfer *x = pool ? xfer_new(c) : NULL;
    if (!x)
        return -1;
    x->r = r;
    x->pool = pool;
    x->max_idle = uc && uc->pool_size > 0 ? uc->pool_size : 64;
    x->connect_ms = uc ? uc->connect_timeout_ms : 10000;

    /* the request, head and body, in one buffer for one send() */
    char clen[SL_FMT_INT_MAX];
    sl_fmt_int(clen, (long long)len);
    const char *parts[] = {"POST ", prefix, path, " HTTP/1.1\r\nHost: ", NULL /* host */,
                           "\r\nUser-Agent: sluice/0.1\r\nAccept: */*\r\nContent-Type: application/json\r\n"
                           "Content-Length: ", clen, "\r\n"};
    int bad = sl_strbuf_reserve(&x->msg, len + 512); /* one allocation for most requests */
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        bad |= parts[i] ? sl_strbuf_add(&x->msg, parts[i], strlen(parts[i])) : sl_strbuf_add(&x->msg, host, host_len);
    if (uc && uc->api_key)
        bad |= add_header(&x->msg, "Authorization", "Bearer ", uc->api_key);
    for (size_t i = 0; uc && i < uc->n_headers; i++)
        bad |= add_header(&x->msg, uc->headers[i].name, "", uc->headers[i].value);
    bad |= sl_strbuf_add(&x->msg, "\r\n", 2);
    for (int i = 0; i < n; i++)
        bad |= sl_strbuf_add(&x->msg, body[i].s, body[i].len);
    if (bad) {
        r->h1 = x;
        sl_h1_free(r);
        r->h1 = NULL;
        return -1;
    }
    r->h1 = x;
    long long total_ms = uc ? uc->total_timeout_ms : 600000;
    if (total_ms > 0)
        sl_up_deadline(r, &r->total_at, total_ms);

    h1_conn *k = pool->idle;
    bool connected = true;
    if (k) {
        pool->idle = k->next;
        pool->n_idle--;
        x->reused = true;
    } else if (!(k = conn_open(c, pool, &connected))) {
        /* refused at once (a unix socket nobody listens on, say): reported from the loop,
         * as a connect failure, never inside the caller */
        x->st = X_CONNECT;
        x->early_errno = errno ? errno : ECONNREFUSED;
        report_early(x);
        return 0;
    }
    start_on(x, k, connected);
    return 0;
}

void sl_h1_free(sl_upstream_req *r)
{
    struct h1_xfer *x = r->h1;
    if (!x)
        return;
    if (x->conn) { /* mid-transfer: the connection cannot be reused */
        x->conn->x = NULL;
        conn_close(x->conn);
    }
    if (x->early)
        event_free(x->early);
    free(x->pend);
    r->h1 = NULL;
    sl_upstream_client *c = r->client;
    if (c->n_spare_x < SPARE_XFERS && x->msg.cap <= SPARE_BYTES && x->buf.cap <= SPARE_BYTES) {
        x->next_spare = c->spare_x;
        c->spare_x = x;
        c->n_spare_x++;
        return;
    }
    free(x->msg.s);
    free(x->buf.s);
    free(x);
}

void sl_h1_resume(sl_upstream_req *r)
{
    struct h1_xfer *x = r->h1;
    r->want_pause = false;
    if (!r->paused || r->in_callback || !x->conn)
        return;
    r->paused = false;
    if (r->idle_ms > 0)
        sl_up_deadline(r, &r->idle_at, r->idle_ms);
    conn_watch(x->conn, x->sent < x->msg.len);
    if (x->pend) { /* what was read before the pause goes first */
        char *p = x->pend;
        size_t n = x->pend_len;
        x->pend = NULL;
        take(x, p, n);
        free(p);
    }
}

void sl_h1_client_free(sl_upstream_client *c)
{
    for (h1_pool *p = c->pools, *next; p; p = next) {
        next = p->next;
        for (h1_conn *k = p->idle, *kn; k; k = kn) {
            kn = k->next;
            conn_close(k);
        }
        free(p);
    }
    c->pools = NULL;
    for (h1_target *k = c->targets, *kn; k; k = kn) {
        kn = k->next;
        free(k->url);
        free(k->unix_path);
        free(k);
    }
    c->targets = NULL;
    for (struct h1_xfer *x = c->spare_x, *next; x; x = next) {
        next = x->next_spare;
        free(x->msg.s);
        free(x->buf.s);
        free(x);
    }
    c->spare_x = NULL;
    c->n_spare_x = 0;
}
