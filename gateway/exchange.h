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

/* Route's choice: where the request goes. target stays owned by the exchange's config. */
void sl_ex_set_target(sl_exchange *ex, const sl_model_conf *model, const sl_target_conf *target);
const sl_consumer_conf *sl_ex_consumer_conf(const sl_exchange *ex);

#endif
