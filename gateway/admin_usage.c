/* GET /admin/v1/usage?consumer=: per consumer, the tokens used, reserved and left in the
 * current quota window, and the requests settled in it. */
#include "admin_usage.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"

typedef struct usage_walk {
    sl_admin *a;
    sl_config *cfg;
    sl_http_conn *conn;         /* NULL once the client left */
    json_t *data;
    size_t next;                /* consumer index */
    char *only;
} usage_walk;

static void walk_gone(void *arg) { ((usage_walk *)arg)->conn = NULL; }

static void walk_next(usage_walk *w);

static void walk_end(usage_walk *w, int status, json_t *body)
{
    if (w->conn) {
        sl_http_watch none = {0};
        sl_http_set_watch(w->conn, &none);
        sl_admin_json(w->conn, status, body);
    } else {
        json_decref(body);
    }
    json_decref(w->data);
    sl_config_unref(w->cfg);
    free(w->only);
    free(w);
}

static void got_usage(void *arg, sl_store_status st, const sl_quota_resv *r, const sl_quota_usage *u, const sl_err *err)
{
    (void)r;
    usage_walk *w = arg;
    const sl_consumer_conf *cc = &w->cfg->consumers[w->next];
    if (st != SL_STORE_OK || !u) {
        walk_end(w, 503, json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message",
                                   err && err->msg[0] ? err->msg : sl_store_status_name(st), "type", "api_error",
                                   "param", "code", "store_unavailable"));
        return;
    }
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "consumer", cc->name, "window",
                          sl_window_name(cc->quota_window), "limit", (json_int_t)u->limit, "used", (json_int_t)u->used,
                          "reserved", (json_int_t)u->reserved, "remaining", (json_int_t)u->remaining, "requests",
                          (json_int_t)u->requests);
    json_object_set_new(o, "resets_at", u->resets_at ? json_integer(u->resets_at) : json_null());
    json_array_append_new(w->data, o);
    w->next++;
    walk_next(w);
}

static void walk_next(usage_walk *w)
{
    for (; w->next < w->cfg->n_consumers; w->next++) {
        const sl_consumer_conf *cc = &w->cfg->consumers[w->next];
        if (w->only && strcmp(w->only, cc->name) != 0)
            continue;
        if (cc->quota_tokens <= 0) {
            json_array_append_new(w->data, json_pack("{s:s, s:n}", "consumer", cc->name, "quota"));
            continue;
        }
        sl_store_quota_usage(sl_admin_store(w->a), cc->name, cc->quota_window, cc->quota_tokens, got_usage, w);
        return;
    }
    if (w->only && json_array_size(w->data) == 0) {
        walk_end(w, 404, json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", "no such consumer in the config",
                                   "type", "invalid_request_error", "param", "code", "consumer_not_found"));
        return;
    }
    json_t *data = w->data;
    w->data = NULL;
    walk_end(w, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static void usage_handler(sl_admin *a, sl_http_conn *c, sl_http_request *req, const char *tail, void *arg)
{
    (void)tail;
    (void)arg;
    usage_walk *w = calloc(1, sizeof *w);
    if (!w) {
        sl_http_respond_error(c, 500, "api_error", "internal_error", NULL, "out of memory");
        return;
    }
    w->a = a;
    w->cfg = sl_config_ref(sl_admin_config(a));
    w->conn = c;
    w->data = json_array();
    w->only = sl_admin_query_param(req->query, "consumer");
    if (w->only && !w->only[0]) {
        free(w->only);
        w->only = NULL;
    }
    sl_http_watch watch = {.on_close = walk_gone, .arg = w};
    sl_http_set_watch(c, &watch);
    walk_next(w);
}

void sl_admin_usage_install(sl_admin *a) { sl_admin_route(a, "GET", "/admin/v1/usage", false, usage_handler, NULL); }
