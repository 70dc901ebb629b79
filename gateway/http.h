/* HTTP/1.1 server connections (plain TCP on the socket itself, TLS on bufferevent_openssl):
 * request parsing with strict limits, keep-alive, head/idle/body deadlines (a slow client
 * cannot pin a connection), full and streamed (chunked) responses with write backpressure. */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <openssl/ssl.h>

struct event_base;

typedef struct sl_http_header {
    char *name;     /* lower-cased */
    char *value;
} sl_http_header;

typedef struct sl_http_request {
    char method[16];
    char *target;           /* as sent: /v1/chat/completions?x=y */
    char *path;             /* target without the query */
    char *query;            /* after '?', or NULL */
    int minor;              /* HTTP/1.minor */
    sl_http_header *headers;
    size_t n_headers;
    char *body;             /* NUL-terminated for convenience */
    size_t body_len;
    bool keep_alive;
    struct timespec began;  /* CLOCK_MONOTONIC, when the first byte of its head was taken up */
} sl_http_request;

typedef struct sl_http_conn sl_http_conn;

typedef struct sl_http_limits {
    size_t max_body;
    long long header_timeout_ms;    /* from the first byte of a request to its blank line */
    long long idle_timeout_ms;      /* keep-alive connection waiting for the next request */
    long long body_timeout_ms;      /* from the head to the last byte of the body */
    size_t stream_low_water;        /* drain callback when output falls to this */
} sl_http_limits;

/* Called once a request is read completely. The handler must eventually answer with
 * sl_http_respond or sl_http_stream_*, possibly later from the same thread. The request
 * (its strings point into the connection's input buffer) lives until the response is
 * finished. */
typedef void (*sl_http_request_cb)(sl_http_conn *c, sl_http_request *req, void *arg);

typedef struct sl_http_server_ctx {
    struct event_base *base;
    const sl_http_limits *limits;
    sl_http_request_cb on_request;
    void *arg;
    int n_conns;                /* open connections of this context (this thread) */
    int n_busy;                 /* connections with a request being answered */
    bool draining;              /* shutting down: no keep-alive, close idle connections */
    sl_http_conn *conns;        /* list, for closing idle ones on shutdown */
    /* buffers of SL_HTTP_BLOCK bytes that connections gave back between requests (an idle
     * keep-alive connection holds none), for the next request to take */
    char *spare[32];
    int n_spare;
    bool released;              /* sl_http_server_ctx_release ran: buffers given back are freed */
} sl_http_server_ctx;

#define SL_HTTP_BLOCK 8192

/* Take over an accepted socket (ssl_ctx NULL for plain HTTP). */
void sl_http_conn_accept(sl_http_server_ctx *sctx, int fd, SSL_CTX *ssl_ctx);
/* Shutdown: close every connection that has no request in progress; the rest close
 * after their response. */
void sl_http_close_idle(sl_http_server_ctx *sctx);
/* The spare buffers, when the context goes. */
void sl_http_server_ctx_release(sl_http_server_ctx *sctx);

const char *sl_http_header_get(const sl_http_request *req, const char *lower_name);
const char *sl_http_peer(const sl_http_conn *c);

/* Response headers beyond Content-Type/Length/Connection/Date: add before responding. */
void sl_http_add_header(sl_http_conn *c, const char *name, const char *value);

/* A complete response. The connection then reads the next request or closes. */
void sl_http_respond(sl_http_conn *c, int status, const char *content_type,
                     const void *body, size_t len);
/* An OpenAI-shaped error response. */
void sl_http_respond_error(sl_http_conn *c, int status, const char *type, const char *code,
                           const char *param, const char *message);

/* A streamed response (chunked for HTTP/1.1, close-delimited for 1.0). */
void sl_http_stream_begin(sl_http_conn *c, int status, const char *content_type);
void sl_http_stream_write(sl_http_conn *c, const void *data, size_t len);
/* The pieces one after another, as one write (one chunk when chunked). */
typedef struct sl_http_piece {
    const void *data;
    size_t len;
} sl_http_piece;
void sl_http_stream_writev(sl_http_conn *c, const sl_http_piece *parts, size_t n);
void sl_http_stream_end(sl_http_conn *c);
/* Bytes written but not yet sent to the client. */
size_t sl_http_pending(const sl_http_conn *c);

/* The handler's watch on its connection while it answers: on_drain when output fell to
 * the low-water mark after sl_http_want_drain; on_close when the client went away
 * (the connection is gone after it returns; the handler must not touch c again). */
typedef struct sl_http_watch {
    void (*on_drain)(void *arg);
    void (*on_close)(void *arg);
    void *arg;
} sl_http_watch;
void sl_http_set_watch(sl_http_conn *c, const sl_http_watch *w);
void sl_http_want_drain(sl_http_conn *c);

#endif
