/* The admin API's GET /metrics (Prometheus text format; needs the admin token). */
#ifndef SL_METRICS_ADMIN_H
#define SL_METRICS_ADMIN_H

#include "admin.h"

void sl_metrics_admin_install(sl_admin *a);

#endif
