#include "admin.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/crypto.h>

#include "access_log.h"
#include "admin_keys.h"
#include "admin_usage.h"
#include "circuit.h"
#include "log.h"
#include "metrics_admin.h"
#include "pool.h"
#include "static_files.h"

#define MAX_ROUTES 32

typedef struct admin_route {
    const char *method, *path;
    bool prefix;
    sl_admin_handler h;
    void *arg;
} admin_route;

struct sl_admin {
    struct event_base *base;
    sl_config *cfg;
    sl_http_limits limits;
    sl_http_server_ctx http;
    struct evconnlistener *listener;
    admin_route routes[MAX_ROUTES];
    size_t n_routes;
    bool ready;
    struct sl_store_conn *store;
    sl_pool *pool;
    int (*reload)(void *arg, json_t **errors);
    void *reload_arg;
    sl_access_log_writer *alog;     /* console files get lines there; not owned */
};

void sl_admin_json(sl_http_conn *c, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(body);
    if (!s) {
        sl_http_respond_error(c, 500, "api_error", "internal_error", NULL, "could not serialise the response");
        return;
    }
    sl_http_respond(c, status, "application/json", s, strlen(s));
    free(s);
}

static bool authorised(sl_admin *a, const sl_http_request *req)
{
    const char *token = a->cfg->admin.token;
    const char *h = sl_http_header_get(req, "authorization");
    if (!token || !token[0] || !h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *given = h + 7;
    size_t gl = strlen(given), tl = strlen(token);
    /* constant time in the token's length */
    return gl == tl && CRYPTO_memcmp(given, token, tl) == 0;
}

static void on_request(sl_http_conn *c, sl_http_request *req, void *arg)
{
    sl_admin *a = arg;
    if (strcmp(req->path, "/healthz") == 0) {
        sl_admin_json(c, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    if (strcmp(req->path, "/readyz") == 0) {
        sl_admin_json(c, a->ready ? 200 : 503, json_pack("{s:s}", "status", a->ready ? "ready" : "starting"));
        return;
    }
    /* the page itself holds no secret: it asks the user for the admin token */
    if (sl_static_serve(a->cfg->console.files, SL_STATIC_ADMIN, c, req, a->alog))
        return;
    if (!authorised(a, req)) {
        sl_http_add_header(c, "WWW-Authenticate", "Bearer");
        sl_http_respond_error(c, 401, "invalid_request_error", "invalid_admin_token", NULL,
                              "admin calls need Authorization: Bearer <admin token>");
        return;
    }
    bool path_known = false;
    for (size_t i = 0; i < a->n_routes; i++) {
        admin_route *r = &a->routes[i];
        size_t pl = strlen(r->path);
        const char *tail = NULL;
        if (strcmp(req->path, r->path) == 0)
            tail = "";
        else if (r->prefix && strncmp(req->path, r->path, pl) == 0 && req->path[pl] == '/')
            tail = req->path + pl + 1;
        if (!tail)
            continue;
        path_known = true;
        if (strcmp(req->method, r->method) != 0 &&
            !(strcmp(req->method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) /* HEAD: GET's head */
            continue;
        r->h(a, c, req, tail, r->arg);
        return;
    }
    if (path_known)
        sl_http_respond_error(c, 405, "invalid_request_error", "method_not_allowed", NULL, "method not allowed here");
    else
        sl_http_respond_error(c, 404, "invalid_request_error", "unknown_url", NULL, "unknown admin URL");
}

static void upstreams_handler(sl_admin *a, sl_http_conn *c, sl_http_request *req, const char *tail, void *arg)
{
    (void)req;
    (void)tail;
    (void)arg;
    json_t *list = json_array();
    for (size_t i = 0; i < a->cfg->n_upstreams; i++) {
        const sl_upstream_conf *u = &a->cfg->upstreams[i];
        json_t *o = json_pack("{s:s, s:s}", "name", u->name, "type", u->type == SL_UPSTREAM_OPENAI ? "openai" : "engine");
        if (u->base_url)
            json_object_set_new(o, "base_url", json_string(u->base_url));
        if (u->type == SL_UPSTREAM_ENGINE) {
            json_object_set_new(o, "model", json_string(u->model_dir));
            json_object_set_new(o, "workers", sl_pool_json(a->pool, u->name));
        }
        sl_circuit *cb = sl_circuit_get(u->name);
        if (cb) {
            json_t *cj = sl_circuit_json(cb);
            json_object_del(cj, "name");
            json_object_update(o, cj);
            json_decref(cj);
        }
        json_array_append_new(list, o);
    }
    sl_admin_json(c, 200, json_pack("{s:o}", "upstreams", list));
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    sl_admin *a = arg;
    sl_http_conn_accept(&a->http, fd, NULL);
}

struct sl_store_conn *sl_admin_store(sl_admin *a) { return a->store; }
void sl_admin_set_pool(sl_admin *a, sl_pool *pool) { a->pool = pool; }
sl_pool *sl_admin_pool(sl_admin *a) { return a->pool; }
struct event_base *sl_admin_base(sl_admin *a) { return a->base; }

void sl_admin_set_reload(sl_admin *a, int (*fn)(void *arg, json_t **errors), void *arg)
{
    a->reload = fn;
    a->reload_arg = arg;
}

static void reload_handler(sl_admin *a, sl_http_conn *c, sl_http_request *req, const char *tail, void *arg)
{
    (void)req;
    (void)tail;
    (void)arg;
    json_t *errors = NULL;
    if (!a->reload) {
        sl_http_respond_error(c, 501, "api_error", "reload_unavailable", NULL, "this gateway was started without a config file");
        return;
    }
    if (a->reload(a->reload_arg, &errors) == 0) {
        sl_admin_json(c, 200, json_pack("{s:s}", "status", "reloaded"));
        return;
    }
    sl_admin_json(c, 400, json_pack("{s:{s:s, s:s, s:n, s:s}, s:o}", "error", "message",
                                    "the new config has errors; the running config keeps serving", "type",
                                    "invalid_request_error", "param", "code", "invalid_config", "errors",
                                    errors ? errors : json_array()));
}

sl_admin *sl_admin_new(struct event_base *base, sl_config *cfg, struct sl_store_conn *store, sl_err *err)
{
    if (!cfg->admin.token || !cfg->admin.token[0]) {
        sl_err_set(err, "admin.listen is set but the admin token is empty: set the environment variable %s",
                   cfg->admin.token_env ? cfg->admin.token_env : "SLUICE_ADMIN_TOKEN");
        return NULL;
    }
    sl_admin *a = calloc(1, sizeof *a);
    if (!a) {
        sl_err_set(err, "out of memory");
        return NULL;
    }
    a->base = base;
    a->cfg = sl_config_ref(cfg);
    a->store = store;
    a->limits = (sl_http_limits){.max_body = 1 << 20, .header_timeout_ms = 10000, .idle_timeout_ms = 60000,
                                 .body_timeout_ms = 10000, .stream_low_water = 1 << 16};
    a->http = (sl_http_server_ctx){.base = base, .limits = &a->limits, .on_request = on_request, .arg = a};
    sl_admin_route(a, "GET", "/admin/v1/upstreams", false, upstreams_handler, NULL);
    sl_admin_keys_install(a);
    sl_admin_usage_install(a);
    sl_admin_route(a, "POST", "/admin/v1/reload", false, reload_handler, NULL);
    sl_metrics_admin_install(a);
    return a;
}

void sl_admin_route(sl_admin *a, const char *method, const char *path, bool prefix_match, sl_admin_handler h,
                    void *arg)
{
    if (a->n_routes < MAX_ROUTES)
        a->routes[a->n_routes++] = (admin_route){method, path, prefix_match, h, arg};
}

int sl_admin_listen(sl_admin *a, int fd)
{
    a->listener = evconnlistener_new(a->base, accept_cb, a, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    return a->listener ? 0 : -1;
}

void sl_admin_set_ready(sl_admin *a, bool ready) { a->ready = ready; }

void sl_admin_set_config(sl_admin *a, sl_config *cfg)
{
    sl_config *old = a->cfg;
    a->cfg = sl_config_ref(cfg);
    sl_config_unref(old);
}

sl_config *sl_admin_config(sl_admin *a) { return a->cfg; }

void sl_admin_stop(sl_admin *a)
{
    if (a->listener) {
        evconnlistener_free(a->listener);
        a->listener = NULL;
    }
    a->http.draining = true;
    sl_http_close_idle(&a->http);
}

void sl_admin_set_access_log(sl_admin *a, sl_access_log_writer *log) { a->alog = log; }

void sl_admin_free(sl_admin *a)
{
    if (!a)
        return;
    sl_admin_stop(a);
    sl_http_server_ctx_release(&a->http);
    sl_config_unref(a->cfg);
    free(a);
}
