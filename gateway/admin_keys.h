/* Admin API routes for API keys (SPEC: Admin API). */
#ifndef SL_ADMIN_KEYS_H
#define SL_ADMIN_KEYS_H

#include "admin.h"

void sl_admin_keys_install(sl_admin *a);

#endif
