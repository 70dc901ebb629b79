/* The upstream HTTP client, one per worker thread, driven by that thread's event loop.
 * Plain-http upstreams at an IP address or localhost, and engine workers' unix sockets, go
 * through its own HTTP/1.1 (upstream_h1.c); https and named hosts through a libcurl multi
 * handle (curl_multi_socket_action). Connections are reused across requests (pool_size
 * idle ones kept per destination); connect / first-byte / total / stream-idle timeouts. */
#ifndef SL_UPSTREAM_H
#define SL_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;

typedef struct sl_upstream_client sl_upstream_client;
typedef struct sl_upstream_req sl_upstream_req;

typedef enum sl_upstream_result {
    SL_UP_OK,
    SL_UP_CONNECT_FAILED,      /* refused, unreachable, DNS, TLS handshake */
    SL_UP_CONNECT_TIMEOUT,
    SL_UP_FIRST_BYTE_TIMEOUT,
    SL_UP_TOTAL_TIMEOUT,
    SL_UP_IDLE_TIMEOUT,        /* a stream stalled */
    SL_UP_RESET,               /* the connection broke after it was established */
    SL_UP_FAILED,              /* anything else */
} sl_upstream_result;

const char *sl_upstream_result_name(sl_upstream_result r);
bool sl_upstream_result_is_timeout(sl_upstream_result r);

typedef struct sl_upstream_cbs {
    /* The status line and headers arrived. retry_after: the header's value or NULL. */
    void (*on_headers)(void *arg, int status, const char *content_type, const char *retry_after);
    /* Body bytes, as they come. */
    void (*on_data)(void *arg, const char *data, size_t len);
    /* The transfer ended (after on_headers, if any). Not called after sl_upstream_cancel. */
    void (*on_done)(void *arg, sl_upstream_result result, const char *message);
} sl_upstream_cbs;

/* One client per worker thread. */
sl_upstream_client *sl_upstream_client_new(struct event_base *base);
void sl_upstream_client_free(sl_upstream_client *c);
int sl_upstream_client_active(const sl_upstream_client *c);

/* Connection target for an engine worker (unix socket); NULL for a URL upstream. */
typedef struct sl_upstream_target {
    const char *base_url;       /* http(s)://host:port/v1 or http://localhost/v1 with unix_socket */
    const char *unix_socket;
    const sl_upstream_conf *conf;
} sl_upstream_target;

/* A piece of a request body: the body is its pieces in order, copied once, into the request
 * as it goes out (a body made of the client's text around an edit needs no copy of its own). */
typedef struct sl_upstream_part {
    const char *s;
    size_t len;
} sl_upstream_part;

/* POST the body (its n parts, copied) to base_url + path. Returns NULL on allocation failure.
 * The request is freed after on_done returns, or by sl_upstream_cancel. */
sl_upstream_req *sl_upstream_post(sl_upstream_client *c, const sl_upstream_target *t, const char *path,
                                  const sl_upstream_part *parts, int n, const sl_upstream_cbs *cbs, void *arg);
/* Stop reading from upstream (backpressure) / start again. */
void sl_upstream_pause(sl_upstream_req *r);
void sl_upstream_resume(sl_upstream_req *r);
/* Abort the transfer; no more callbacks. Safe to call from inside a callback. */
void sl_upstream_cancel(sl_upstream_req *r);

#endif
