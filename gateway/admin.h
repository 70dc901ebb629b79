/* The admin listener (admin.listen): the control plane, served by the main thread.
 * Every call but /healthz and /readyz needs `Authorization: Bearer <admin token>`.
 * Handlers register by method and path; later subsystems (keys, usage, reload, metrics)
 * add theirs with sl_admin_route. */
#ifndef SL_ADMIN_H
#define SL_ADMIN_H

#include <stdbool.h>
#include <jansson.h>

#include "config.h"
#include "err.h"
#include "http.h"

struct event_base;
typedef struct sl_admin sl_admin;

/* A handler answers on c (sl_http_respond*, possibly later). tail: the path after the
 * route's prefix (for /admin/v1/keys/{id}). */
typedef void (*sl_admin_handler)(sl_admin *a, sl_http_conn *c, sl_http_request *req, const char *tail, void *arg);

struct sl_store_conn;
sl_admin *sl_admin_new(struct event_base *base, sl_config *cfg, struct sl_store_conn *store, sl_err *err);
struct sl_store_conn *sl_admin_store(sl_admin *a);
struct sl_pool;
void sl_admin_set_pool(sl_admin *a, struct sl_pool *pool);
struct sl_access_log_writer;
/* The console's files served here get access-log lines in log (a writer on the admin's
 * loop, kept by the caller until sl_admin_free). */
void sl_admin_set_access_log(sl_admin *a, struct sl_access_log_writer *log);
/* POST /admin/v1/reload calls fn: 0 when the new config is in use, -1 with *errors. */
void sl_admin_set_reload(sl_admin *a, int (*fn)(void *arg, json_t **errors), void *arg);
struct sl_pool *sl_admin_pool(sl_admin *a);   /* NULL before the pool starts */
struct event_base *sl_admin_base(sl_admin *a);   /* the main thread's loop */
/* prefix_match: route matches path == path, or path starting with path + "/". */
void sl_admin_route(sl_admin *a, const char *method, const char *path, bool prefix_match, sl_admin_handler h,
                    void *arg);
int sl_admin_listen(sl_admin *a, int fd);   /* takes an already bound socket */
void sl_admin_set_ready(sl_admin *a, bool ready);
void sl_admin_set_config(sl_admin *a, sl_config *cfg);   /* takes a reference */
sl_config *sl_admin_config(sl_admin *a);
void sl_admin_stop(sl_admin *a);   /* stop accepting; close idle connections */
void sl_admin_free(sl_admin *a);

/* The value of name=... in a query string, URL-decoded, or NULL. Caller frees. */
char *sl_admin_query_param(const char *query, const char *name);

/* Answer with JSON (takes ownership of body). */
void sl_admin_json(sl_http_conn *c, int status, json_t *body);

#endif
