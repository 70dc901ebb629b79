/* A gateway worker thread: its own event loop, listening sockets (SO_REUSEPORT), HTTP
 * connections, upstream client and access-log writer. Nothing here is shared with other
 * workers except the read-only config. */
#ifndef SL_WORKER_H
#define SL_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "access_log.h"
#include "config.h"
#include "http.h"
#include "json_view.h"
#include "plugin.h"
#include "upstream.h"

struct evconnlistener;
struct sl_server;

#define SL_MEMO_SPARES 16
#define SL_REQ_SPARES 16

/* A request's text, copied out of the connection's buffer (which the next request reuses),
 * and its view: how an exchange reads its body without a tree (exchange.c). */
typedef struct sl_req_text {
    sl_strbuf text;
    sl_jview view;
} sl_req_text;

typedef struct sl_worker {
    int index;
    pthread_t thread;
    struct sl_server *server;
    struct event_base *base;
    sl_config *cfg;                   /* the config new requests start with (a reference) */
    sl_http_limits limits;
    sl_http_server_ctx http;
    struct evconnlistener **listeners;
    size_t n_listeners;
    sl_upstream_client *upstream;
    struct sl_store_conn *store;      /* this thread's handle on the store */
    struct sl_pool *pool;             /* engine processes (shared; see pool.h) */
    sl_access_log_writer *alog;
    /* The main thread's only way in (a reload, SIGTERM): an eventfd the worker watches, so
     * nothing on the worker's base is touched from another thread and the base needs no
     * lock (EVENT_BASE_FLAG_NOLOCK). */
    int wake_fd;
    struct event *wake_ev;
    atomic_bool drain_asked;          /* SIGTERM: set by the main thread */
    bool draining;                    /* the worker has begun to drain */
    pthread_mutex_t pending_mu;
    sl_config *pending_cfg;           /* handed over by the main thread, taken on the wake */
    struct event *drain_timer;
    long long drain_deadline_ms;
    uint64_t next_request;
    uint32_t id_prefix;
    struct json_t *answer_spare;      /* the last non-streamed answer's tree, held by no one else:
                                         the next answer of its shape is read into it (proxy.c) */
    sl_jview ev_view;                 /* where response events are viewed (resp_event.c) */
    sl_resp_summary ev_summary;       /* and summed up */
    struct sl_event_memo *memo_spare[SL_MEMO_SPARES]; /* finished streams' memos, for the next */
    int n_memo_spare;
    sl_req_text req_spare[SL_REQ_SPARES]; /* finished exchanges' request buffers, for the next */
    int n_req_spare;
    sl_strbuf edit_buf;               /* the new bytes of a request's text edits (text_edits.h) */
} sl_worker;

#endif
