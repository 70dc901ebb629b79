/* Inside the upstream client: shared by upstream.c (the API, and libcurl for https and
 * named hosts) and upstream_h1.c (its own HTTP/1.1 for plain-http upstreams at an IP
 * address or localhost, and engine unix sockets: no libcurl on the hot path). */
#ifndef SL_UPSTREAM_INT_H
#define SL_UPSTREAM_INT_H

#include <curl/curl.h>

#include "upstream.h"

struct event;
struct h1_pool;
struct h1_xfer;

typedef struct sock_ctx sock_ctx;

struct sl_upstream_client {
    struct h1_pool *pools;     /* upstream_h1.c: idle connections by destination */
    struct h1_target *targets; /* upstream_h1.c: base_urls already parsed, each with its pool */
    struct h1_xfer *spare_x;   /* upstream_h1.c: finished transfers, kept with their buffers */
    int n_spare_x;
    struct event_base *base;
    CURLM *multi;
    CURL *spare[32];   /* finished easy handles, reset and reused */
    int n_spare;
    sock_ctx **by_fd;  /* socket contexts by descriptor */
    size_t n_by_fd;
    struct event *timer;
    int active;
};

/* One per upstream socket, kept while the connection lives (not just while curl waits on
 * it): an idle pooled connection stays watched for reading, so the next request on it
 * needs no epoll_ctl at all. Freed when curl closes the socket. */
struct sock_ctx {
    struct event *ev;
    short what;               /* the flags registered now (0: none) */
    bool idle;                /* curl is not waiting on it (CURL_POLL_REMOVE) */
    curl_socket_t fd;
    sl_upstream_client *client;
};

struct sl_upstream_req {
    sl_upstream_client *client;
    struct h1_xfer *h1;        /* set: upstream_h1.c carries it (easy stays NULL) */
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    sl_upstream_cbs cbs;
    void *arg;
    /* One timer for every deadline (CLOCK_MONOTONIC_COARSE ms, coarse_clock.h; 0: none): it fires at the earliest
     * of them or before, and a deadline moved later costs no timer change (upstream.c) */
    struct event *timer;
    long long armed;                   /* when the timer fires; 0: not pending */
    long long first_byte_at, idle_at;
    long long connect_at, total_at;    /* upstream_h1.c's (libcurl keeps its own) */
    long long idle_ms;
    sl_upstream_result timeout_kind;   /* set when one of our timers fired */
    int status;
    char content_type[128];
    char retry_after[64];
    bool headers_done;
    bool got_bytes;
    bool want_pause, paused;
    bool cancelled;
    int in_callback;
};




/* upstream_h1.c */
/* The target, when the own HTTP/1.1 client can carry it (http:// to an IP or localhost, or a
 * unix socket): starts r and returns 0; -1 leaves r to libcurl. */
int sl_h1_start(sl_upstream_req *r, const sl_upstream_target *t, const char *path, const sl_upstream_part *parts,
                int n, size_t len);
void sl_h1_free(sl_upstream_req *r);     /* closes its connection unless it went back to the pool */
void sl_h1_resume(sl_upstream_req *r);
void sl_h1_client_free(sl_upstream_client *c);
/* The callbacks, as both clients make them (in_callback held, stream-idle timer re-armed). */
void sl_up_headers(sl_upstream_req *r);  /* r->status, content_type, retry_after are set */
void sl_up_data(sl_upstream_req *r, const char *data, size_t len);
void sl_up_finish(sl_upstream_req *r, sl_upstream_result res, const char *message); /* on_done, then free */
/* *at (one of r's deadlines) ms from now; clear one by setting it to 0. */
void sl_up_deadline(sl_upstream_req *r, long long *at, long long ms);

#endif
