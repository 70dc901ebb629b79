/* Audit events: one JSON line per event that changes who may do what, or that refused
 * someone: {"ts", "audit": EVENT, ...fields}. Events: key_issued, key_revoked,
 * config_reloaded, config_refused, guard_block. Never a key, a token or a request's text.
 * Lines go to log.audit_log ("-" = stdout, "off", or a file appended to), one write(2)
 * each, so lines from different threads never interleave. */
#ifndef SL_AUDIT_H
#define SL_AUDIT_H

#include <jansson.h>

#include "err.h"

/* Main thread, at start: where the events go. Before it, and with "off", none are written. */
int sl_audit_open(const char *target, sl_err *err);
/* SIGUSR1: open the file's path again (logrotate moved it); the old file is closed. */
int sl_audit_reopen(sl_err *err);
void sl_audit_close(void);

/* Any thread. Takes ownership of fields (a JSON object, or NULL). */
void sl_audit(const char *event, json_t *fields);

#endif
