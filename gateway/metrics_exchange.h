/* The one call sl_ex_finish makes into the metrics. */
#ifndef SL_METRICS_EXCHANGE_H
#define SL_METRICS_EXCHANGE_H

#include "exchange.h"

/* Worker thread, once per exchange, when it ends duration_ms after it began. */
void sl_metrics_exchange(const sl_exchange *ex, double duration_ms);

#endif
