/* Admin API for keys: POST /admin/v1/keys, GET /admin/v1/keys?consumer=,
 * DELETE /admin/v1/keys/{id}. The key itself is shown once, in the answer to POST. */
#include "admin_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "store.h"
#include "yaml_tree.h"

/* One admin request waiting on the store; the client may leave meanwhile. */
typedef struct pending {
    sl_http_conn *conn;
    char client[64];    /* who asked, for the audit event */
} pending;

static void pending_gone(void *arg) { ((pending *)arg)->conn = NULL; }

static pending *pending_new(sl_http_conn *c)
{
    pending *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->conn = c;
    snprintf(p->client, sizeof p->client, "%s", sl_http_peer(c));
    sl_http_watch w = {.on_close = pending_gone, .arg = p};
    sl_http_set_watch(c, &w);
    return p;
}

static void pending_answer(pending *p, int status, json_t *body)
{
    if (p->conn) {
        sl_http_watch none = {0};
        sl_http_set_watch(p->conn, &none);
        sl_admin_json(p->conn, status, body);
    } else {
        json_decref(body);
    }
    free(p);
}

static json_t *key_json(const sl_key_info *k)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", k->id, "consumer", k->consumer, "name", k->name,
                          "prefix", k->prefix, "created", (json_int_t)k->created);
    json_object_set_new(o, "expires", k->expires ? json_integer(k->expires) : json_null());
    json_object_set_new(o, "revoked", json_boolean(k->revoked != 0));
    if (k->revoked)
        json_object_set_new(o, "revoked_at", json_integer(k->revoked));
    return o;
}

static json_t *error_json(const char *type, const char *code, const char *msg)
{
    return json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", msg, "type", type, "param", "code", code);
}

static void store_failed(pending *p, sl_store_status st, const sl_err *err)
{
    pending_answer(p, st == SL_STORE_UNAVAILABLE ? 503 : 500,
                   error_json("api_error", "store_error", err && err->msg[0] ? err->msg : sl_store_status_name(st)));
}

static void issued(void *arg, sl_store_status st, const sl_key_info *k, const char *plaintext, const sl_err *err)
{
    if (st != SL_STORE_OK) {
        store_failed(arg, st, err);
        return;
    }
    json_t *o = key_json(k);
    sl_audit("key_issued", json_pack("{s:s, s:s, s:s, s:s, s:O, s:s}", "key_id", k->id, "consumer", k->consumer,
                                     "name", k->name, "prefix", k->prefix, "expires", json_object_get(o, "expires"),
                                     "admin_client", ((pending *)arg)->client));
    json_object_set_new(o, "key", json_string(plaintext));
    pending_answer(arg, 201, o);
}

static void issue_handler(sl_admin *a, sl_http_conn *c, sl_http_request *req, const char *tail, void *arg)
{
    (void)tail;
    (void)arg;
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    const char *consumer = json_string_value(json_object_get(body, "consumer"));
    json_t *name = json_object_get(body, "name");
    json_t *exp = json_object_get(body, "expires_in");
    const char *problem = NULL;
    long long exp_ms = 0;
    if (!json_is_object(body))
        problem = "send a JSON object {consumer, name?, expires_in?}";
    else if (!consumer)
        problem = "consumer is required";
    else if (!sl_config_consumer(sl_admin_config(a), consumer))
        problem = "no such consumer in the config";
    else if (name && !json_is_string(name) && !json_is_null(name))
        problem = "name must be a string";
    else if (json_is_integer(exp))
        exp_ms = json_integer_value(exp) * 1000;
    else if (json_is_string(exp) && sl_parse_duration_ms(json_string_value(exp), &exp_ms) < 0)
        problem = "expires_in: a duration like 30d or 12h, or seconds";
    else if (exp && !json_is_null(exp) && !json_is_string(exp))
        problem = "expires_in: a duration like 30d or 12h, or seconds";
    if (!problem && exp_ms < 0)
        problem = "expires_in must be positive";
    if (problem) {
        json_decref(body);
        sl_admin_json(c, 400, error_json("invalid_request_error", "invalid_request", problem));
        return;
    }
    pending *p = pending_new(c);
    int64_t expires = exp_ms ? (int64_t)time(NULL) + exp_ms / 1000 : 0;
    sl_store_key_issue(sl_admin_store(a), consumer, json_string_value(name), expires, issued, p);
    json_decref(body);
}

static void listed(void *arg, sl_store_status st, const sl_key_info *keys, size_t n, const sl_err *err)
{
    if (st != SL_STORE_OK) {
        store_failed(arg, st, err);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, key_json(&keys[i]));
    pending_answer(arg, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

char *sl_admin_query_param(const char *query, const char *name)
{
    size_t nl = strlen(name);
    for (const char *q = query; q && *q;) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            char *out = malloc(len - nl);
            size_t o = 0;
            for (size_t i = nl + 1; i < len; i++) {
                char ch = q[i];
                if (ch == '+')
                    ch = ' ';
                else if (ch == '%' && i + 2 < len) {
                    char hex[3] = {q[i + 1], q[i + 2], 0};
                    ch = (char)strtol(hex, NULL, 16);
                    i += 2;
                }
                out[o++] = ch;
            }
            out[o] = 0;
            return out;
        }
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static void list_handler(sl_admin *a, sl_http_conn *c, sl_http_request *req, const char *tail, void *arg)
{
    (void)tail;
    (void)arg;
    char *consumer = sl_admin_query_param(req->query, "consumer");
    sl_store_key_list(sl_admin_store(a), consumer && consumer[0] ? consumer : NULL, listed, pending_new(c));
    free(consumer);
}

static void revoked(void *arg, sl_store_status st, const sl_key_info *k, const char *plaintext, const sl_err *err)
{
    (void)plaintext;
    if (st == SL_STORE_NOT_FOUND) {
        pending_answer(arg, 404, error_json("invalid_request_error", "key_not_found", "no key with that id"));
        return;
    }
    if (st != SL_STORE_OK) {
        store_failed(arg, st, err);
        return;
    }
    sl_audit("key_revoked", json_pack("{s:s, s:s, s:s}", "key_id", k->id, "consumer", k->consumer, "admin_client",
                                      ((pending *)arg)->client));
    pending_answer(arg, 200, key_json(k));
}

static void revoke_handler(sl_admin *a, sl_http_conn *c, sl_http_request *req, const char *tail, void *arg)
{
    (void)req;
    (void)arg;
    if (!tail[0] || strchr(tail, '/')) {
        sl_admin_json(c, 404, error_json("invalid_request_error", "key_not_found", "DELETE /admin/v1/keys/{id}"));
        return;
    }
    sl_store_key_revoke(sl_admin_store(a), tail, revoked, pending_new(c));
}

void sl_admin_keys_install(sl_admin *a)
{
    sl_admin_route(a, "POST", "/admin/v1/keys", false, issue_handler, NULL);
    sl_admin_route(a, "GET", "/admin/v1/keys", false, list_handler, NULL);
    sl_admin_route(a, "DELETE", "/admin/v1/keys", true, revoke_handler, NULL);
}
