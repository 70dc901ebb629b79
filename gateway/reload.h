/* Config reload: on SIGHUP, on POST /admin/v1/reload, or when the file changes (inotify on
 * its folder, so editors that write a new file and rename it are seen too), the file is
 * loaded and validated as a whole; a good one is handed to apply(), which swaps it in (new
 * requests start on it; requests in flight finish on the config they started with); a bad
 * one is refused with its errors logged, and the running config keeps serving. */
#ifndef SL_RELOAD_H
#define SL_RELOAD_H

#include <jansson.h>

#include "config.h"

struct event_base;
typedef struct sl_reloader sl_reloader;

/* apply takes its own references on cfg. Main thread. */
typedef void (*sl_reload_apply)(void *arg, sl_config *cfg);

sl_reloader *sl_reloader_new(struct event_base *base, const char *path, sl_reload_apply apply, void *arg);
void sl_reloader_free(sl_reloader *r);

/* Reload now. 0 when swapped in; -1 when refused, with *errors (if given) a new array of
 * "FILE:LINE:COL: message" strings. */
int sl_reloader_reload(sl_reloader *r, const char *why, json_t **errors);

#endif
