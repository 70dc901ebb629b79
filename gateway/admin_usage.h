/* Admin API route for token usage (SPEC: Admin API). */
#ifndef SL_ADMIN_USAGE_H
#define SL_ADMIN_USAGE_H

#include "admin.h"

void sl_admin_usage_install(sl_admin *a);

#endif
