/* Inside an exchange: shared by exchange.c (lifecycle, chain, plugin API) and proxy.c
 * (upstream attempts, fallback, response forwarding); metrics_exchange.c reads it. */
#ifndef SL_EXCHANGE_INT_H
#define SL_EXCHANGE_INT_H

#include <time.h>

#include "exchange.h"
#include "log_fields.h"
#include "metrics.h"
#include "sse.h"

struct event;

struct sl_exchange {
    sl_worker *w;
    sl_config *cfg;                 /* the config this request started with (a reference) */
    sl_http_conn *conn;             /* NULL once answered or the client is gone */
    sl_http_request *req;           /* valid while conn is */
    char id[40];
    char method[16];
    char path[160];
    char client[64];
    sl_endpoint ep;
    /* The body as read: its text (a copy) through a view, while rq_viewed; the tree is made
     * only when someone asks for it (sl_ex_tree) */
    sl_req_text rq;
    bool rq_viewed;
    json_t *body;
    /* the body may have changed since: bumped when a plugin takes it (sl_ex_body) and when
     * a step that took it resumes (it may have changed it in between) */
    unsigned body_gen;
    size_t body_taken_at;           /* chain_pos + 1 of the last sl_ex_body, 0: none */
    struct {                        /* the last prompt estimate (sl_ex_prompt_estimate) */
        const struct sl_tokenizer *tok;
        unsigned gen;
        bool valid;
        int64_t tokens;
    } prompt_est;
    bool stream;
    char *model_name;               /* as the client asked */
    const sl_model_conf *model;     /* of the attempt in progress */
    const sl_target_conf *target;
    char *consumer;

    int refs;
    size_t chain_pos;
    bool in_hook;
    bool sync_resumed;
    sl_step sync_step;
    void **pstate;
    sl_log_fields log;              /* what plugins logged (sl_ex_log_field) */

    bool finished;
    bool altered;
    bool upstream_ok;
    int status;
    const char *error_code;

    /* the attempt plan (route) */
    sl_attempt *plan;
    size_t n_plan, cur;
    const sl_retry_policy *policy;
    int n_failed;                   /* targets that failed before the one serving */
    int n_started;                  /* attempts actually sent */
    bool attempt_reported;          /* its circuit breaker has the verdict */
    json_t *attempt_log;            /* ["up/model: outcome", ...] */
    struct event *backoff;
    long long retry_after_ms;       /* from the last failed attempt */
    int last_status;                /* the last failure, answered when the plan runs out */
    const char *last_code;
    char last_message[300];

    /* the attempt in progress */
    sl_upstream_req *up;
    struct sl_engine_proc *engine;  /* the engine process serving it, for type: engine */
    const struct sl_engine_proc *engine_refused; /* refused the connection: not picked again */
    int up_status;
    bool up_stream;                 /* the upstream answers with SSE */
    bool client_streaming;          /* the client has its 200 and stream head */
    bool saw_done;
    sl_sse sse;
    struct evbuffer *resp;
    char up_content_type[128];
    char retry_after[64];
    bool want_events;
    bool client_wants_usage;        /* stream_options.include_usage as the client sent it */
    json_t *usage;
    json_t *ev_spare;               /* the last streamed event's JSON, held by no one else: the
                                       next event of the same shape is read into it */
    char *out_spare;                /* the last edited event's buffer, for the next edit */
    size_t out_spare_cap;
    struct sl_event_memo *ev_memo;  /* the last streamed event's view, for the next to be read
                                       against; made at the first event hooks see */

    struct timespec t0;             /* when the request's head began to be read */
    double read_ms;                 /* when it was all read, after t0: the client's part */
    double ttfb_ms;
    bool up_open;                   /* an attempt is in flight since up_began_ms (after t0) */
    double up_began_ms;
    double upstream_ms;             /* the time all attempts took, in ms */
    double ttft_ms;                 /* the first streamed event written to the client */
    sl_metrics_itl itl;             /* gaps between the upstream's events sent on */
    size_t bytes_out;
};

double sl_ex_ms_since(const struct timespec *t0);
/* The request body's tree, made from the view at the first call (NULL: out of memory, or no
 * body); taking it this way does not count as a change (body_gen). */
json_t *sl_ex_tree(sl_exchange *ex);
void sl_ex_ref(sl_exchange *ex);
void sl_ex_unref(sl_exchange *ex);
/* Ends the exchange once: cancels what is in flight, runs on_complete, logs, drops the
 * base reference. */
void sl_ex_finish(sl_exchange *ex);
void sl_ex_add_common_headers(sl_exchange *ex);
/* Answers (if the client is still there) without finishing. */
void sl_ex_respond_raw(sl_exchange *ex, int status, const char *ctype, const char *body, size_t len);
void sl_ex_respond_error_now(sl_exchange *ex, int status, const char *type, const char *code, const char *param,
                             const char *message);
void sl_ex_stream_write(sl_exchange *ex, const char *data, size_t len);
/* "data: " json "\n\n" as one write. */
void sl_ex_stream_write_data(sl_exchange *ex, const char *json, size_t len);
/* Begin the client's SSE response (200) if not begun. */
void sl_ex_client_stream_begin(sl_exchange *ex);
void sl_ex_end_stream(sl_exchange *ex);

/* proxy.c */
void sl_proxy_start(sl_exchange *ex);
void sl_proxy_client_drained(void *arg);
void sl_proxy_stop(sl_exchange *ex);   /* cancel the upstream request and any backoff */

#endif
