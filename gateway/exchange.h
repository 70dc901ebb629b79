/* An exchange: one client request from its parsed head to its last response byte — the
 * plugin chain, the upstream attempt, the response events, the access-log line. The
 * plugin-facing part of its API is declared in plugins/plugin.h; this header adds what the
 * core and the built-in route plugin use. */
#ifndef SL_EXCHANGE_H
#define SL_EXCHANGE_H

#include "config.h"
#include "http.h"
#include "plugin.h"
#include "worker.h"

/* Start handling a request read on conn by worker w (the http layer's request callback). */
void sl_exchange_start(sl_worker *w, sl_http_conn *conn, sl_http_request *req);

struct sl_circuit;

/* One entry of the attempt plan: a target of a model (the asked one, then fallbacks). */
typedef struct sl_attempt {
    const sl_model_conf *model;
    const sl_target_conf *target;
    struct sl_circuit *circuit;     /* the upstream's breaker, or NULL */
} sl_attempt;

/* Which failures move on to the next attempt (never other 4xx). */
enum { SL_FAIL_CONNECT = 1, SL_FAIL_TIMEOUT = 2, SL_FAIL_429 = 4, SL_FAIL_5XX = 8 };

typedef struct sl_retry_policy {
    unsigned fail_on;               /* SL_FAIL_* bits */
    int max_attempts;               /* attempts sent at most, the first included */
    long long backoff_base_ms;      /* before attempt k>1: base * 2^(k-2), jittered 50-100% */
    long long backoff_max_ms;
    long long max_retry_after_ms;   /* Retry-After honoured up to this */
    long long budget_ms;            /* no new attempt once the request is this old */
} sl_retry_policy;

/* Route's plan, tried in order, each target once (copied). policy lives as long as the
 * exchange's config. */
void sl_ex_set_plan(sl_exchange *ex, const sl_attempt *attempts, size_t n, const sl_retry_policy *policy);
const sl_consumer_conf *sl_ex_consumer_conf(const sl_exchange *ex);

#endif
