/* Loading the config: the top level, the server-wide sections (listen, server, admin,
 * store, log), the reference count, and lookups. Upstreams, models and consumers are in
 * config_routes.c; plugins in config_plugins.c. */
#include "config_int.h"
#include "plugin.h"
#include "static_files.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- readers of optional keys ---- */

const char *sl_cfg_where(const sl_ynode *n, char *buf, size_t size)
{
    char path[480];
    sl_ynode_path(n, path, sizeof path);
    snprintf(buf, size, "%s%s", path, *path ? ": " : "");
    return buf;
}

int sl_cfg_str(const sl_ynode *map, const char *key, sl_diag *d, char **out)
{
    const sl_ynode *n = sl_ymap_get(map, key);
    return n ? sl_ynode_string(n, d, out) : 0;
}

int sl_cfg_int(const sl_ynode *map, const char *key, sl_diag *d, long long min, long long max,
               long long *out)
{
    const sl_ynode *n = sl_ymap_get(map, key);
    return n ? sl_ynode_int(n, d, min, max, out) : 0;
}

int sl_cfg_int32(const sl_ynode *map, const char *key, sl_diag *d, int min, int max, int *out)
{
    long long v = *out;
    if (sl_cfg_int(map, key, d, min, max, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

int sl_cfg_bool(const sl_ynode *map, const char *key, sl_diag *d, bool *out)
{
    const sl_ynode *n = sl_ymap_get(map, key);
    return n ? sl_ynode_bool(n, d, out) : 0;
}

int sl_cfg_size(const sl_ynode *map, const char *key, sl_diag *d, long long min, long long *out)
{
    const sl_ynode *n = sl_ymap_get(map, key);
    long long v;
    if (!n)
        return 0;
    if (sl_ynode_size(n, d, &v) < 0)
        return -1;
    if (v < min) {
        char w[512];
        sl_diag_add(d, n, "%sexpected at least %lld bytes (got %s)", sl_cfg_where(n, w, sizeof w), min,
                    n->scalar);
        return -1;
    }
    *out = v;
    return 0;
}

int sl_cfg_duration(const sl_ynode *map, const char *key, sl_diag *d, long long min_ms, long long *out)
{
    const sl_ynode *n = sl_ymap_get(map, key);
    long long v;
    if (!n)
        return 0;
    if (sl_ynode_duration_ms(n, d, &v) < 0)
        return -1;
    if (v < min_ms) {
        char w[512];
        sl_diag_add(d, n, "%sexpected at least %lldms (got %s)", sl_cfg_where(n, w, sizeof w), min_ms,
                    n->scalar);
        return -1;
    }
    *out = v;
    return 0;
}

int sl_cfg_enum(const sl_ynode *map, const char *key, sl_diag *d, const char *const *choices, int *out)
{
    const sl_ynode *n = sl_ymap_get(map, key);
    if (!n)
        return 0;
    if (n->type == SL_Y_SCALAR)
        for (int i = 0; choices[i]; i++)
            if (strcmp(n->scalar, choices[i]) == 0) {
                *out = i;
                return 0;
            }
    char w[512], list[256] = "";
    size_t off = 0;
    for (size_t i = 0; choices[i] && off < sizeof list; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", choices[i]);
    if (n->type == SL_Y_SCALAR && !sl_ynode_is_null(n))
        sl_diag_add(d, n, "%sexpected one of %s (got \"%s\")", sl_cfg_where(n, w, sizeof w), list, n->scalar);
    else
        sl_diag_add(d, n, "%sexpected one of %s (got %s)", sl_cfg_where(n, w, sizeof w), list,
                    n->type == SL_Y_MAP ? "a map" : n->type == SL_Y_SEQ ? "a list" : "nothing");
    return -1;
}

int sl_cfg_env(const sl_ynode *map, const char *key, sl_diag *d, char **env_name, char **value)
{
    const sl_ynode *n = sl_ymap_get(map, key);
    if (!n)
        return 0;
    if (sl_ynode_string(n, d, env_name) < 0)
        return -1;
    char w[512];
    for (const char *p = *env_name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_')) {
            sl_diag_add(d, n, "%s\"%s\" is not an environment variable name: write the variable's "
                        "name (like DEEPSEEK_API_KEY), not its value", sl_cfg_where(n, w, sizeof w), *env_name);
            return -1;
        }
    const char *v = getenv(*env_name);
    free(*value);
    *value = NULL;
    if (!v || !*v) {
        sl_diag_warn(d, n, "%senvironment variable %s is %s", sl_cfg_where(n, w, sizeof w), *env_name,
                     v ? "empty" : "not set");
        return 0;
    }
    if (!(*value = strdup(v))) {
        sl_diag_add(d, n, "out of memory");
        return -1;
    }
    return 0;
}

void sl_cfg_free_strings(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int sl_cfg_str_list(const sl_ynode *node, sl_diag *d, char ***out, size_t *n)
{
    if (node->type == SL_Y_MAP) {
        char w[512];
        sl_diag_add(d, node, "%sexpected a list of strings (got a map)", sl_cfg_where(node, w, sizeof w));
        return -1;
    }
    size_t count = node->type == SL_Y_SEQ ? node->n : 1;
    char **v = calloc(count ? count : 1, sizeof *v);
    if (!v)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < count; i++)
        if (sl_ynode_string(node->type == SL_Y_SEQ ? node->items[i] : node, d, &v[i]) < 0)
            rc = -1;
    if (rc < 0) {
        sl_cfg_free_strings(v, count);
        return -1;
    }
    sl_cfg_free_strings(*out, *n);
    *out = v;
    *n = count;
    return 0;
}

const sl_ynode *sl_cfg_section(const sl_ynode *map, const char *key, const char *const *allowed,
                               sl_diag *d)
{
    const sl_ynode *n = sl_ymap_get(map, key);
    if (!n || sl_ynode_is_null(n))
        return NULL;
    sl_ymap_check_keys(n, allowed, d);
    return n->type == SL_Y_MAP ? n : NULL;
}

/* ---- listen ---- */

static bool valid_port(const char *s)
{
    if (!*s || strlen(s) > 5)
        return false;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return atoi(s) <= 65535;
}

static bool valid_host(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '-' || s[i] == '_'))
            return false;
    return true;
}

char *sl_cfg_listen_address(const sl_ynode *n, sl_diag *d)
{
    char *s = NULL, *out = NULL, w[512];
    if (sl_ynode_string(n, d, &s) < 0)
        return NULL;
    if (strncmp(s, "unix:", 5) == 0) {
        if (s[5])
            return s;
        goto bad;
    }
    const char *colon = strrchr(s, ':');
    if (!colon) {   /* "8080" */
        if (!valid_port(s) || asprintf(&out, "0.0.0.0:%s", s) < 0)
            goto bad;
        free(s);
        return out;
    }
    if (!valid_port(colon + 1))
        goto bad;
    if (colon == s || (colon == s + 1 && s[0] == '*')) {   /* ":8080", "*:8080" */
        if (asprintf(&out, "0.0.0.0%s", colon) < 0)
            goto bad;
        free(s);
        return out;
    }
    if (s[0] == '[') {
        char host[64];
        size_t len = (size_t)(colon - s);
        if (len < 3 || s[len - 1] != ']' || len - 2 >= sizeof host)
            goto bad;
        memcpy(host, s + 1, len - 2);
        host[len - 2] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1)
            goto bad;
        return s;
    }
    if (!valid_host(s, (size_t)(colon - s)))
        goto bad;
    return s;
bad:
    sl_diag_add(d, n, "%scannot use \"%s\" as a listen address: write host:port, [v6]:port, a port "
                "alone, or unix:/path", sl_cfg_where(n, w, sizeof w), s);
    free(s);
    return NULL;
}

static const char *const listen_keys[] = {"address", "tls", NULL};
static const char *const tls_keys[] = {"cert", "key", NULL};

static int parse_listen_item(sl_listen_conf *l, const sl_ynode *n, sl_diag *d)
{
    char w[512];
    if (n->type == SL_Y_SCALAR)
        return (l->address = sl_cfg_listen_address(n, d)) ? 0 : -1;
    int rc = sl_ymap_check_keys(n, listen_keys, d);
    if (n->type != SL_Y_MAP)
        return -1;
    const sl_ynode *a = sl_ymap_get(n, "address");
    if (!a) {
        sl_diag_add(d, n, "%saddress is missing (like 0.0.0.0:8080)", sl_cfg_where(n, w, sizeof w));
        rc = -1;
    } else if (!(l->address = sl_cfg_listen_address(a, d)))
        rc = -1;
    const sl_ynode *tls = sl_cfg_section(n, "tls", tls_keys, d);
    if (tls) {
        if (sl_cfg_str(tls, "cert", d, &l->tls_cert) < 0 || sl_cfg_str(tls, "key", d, &l->tls_key) < 0)
            rc = -1;
        else if (!l->tls_cert != !l->tls_key) {
            sl_diag_add(d, tls, "%stls needs both cert and key (%s is missing)", sl_cfg_where(tls, w, sizeof w),
                        l->tls_cert ? "key" : "cert");
            rc = -1;
        } else if (!l->tls_cert) {
            sl_diag_add(d, tls, "%stls needs cert and key (PEM file paths)", sl_cfg_where(tls, w, sizeof w));
            rc = -1;
        }
    }
    return rc;
}

static int parse_listen(sl_config *c, const sl_ynode *n, sl_diag *d)
{
    if (!n || sl_ynode_is_null(n)) {
        c->listen = calloc(1, sizeof *c->listen);
        if (!c->listen || !(c->listen[0].address = strdup("0.0.0.0:8080")))
            return -1;
        c->n_listen = 1;
        return 0;
    }
    size_t count = n->type == SL_Y_SEQ ? n->n : 1;
    if (count == 0) {
        sl_diag_add(d, n, "listen: give at least one address (like 0.0.0.0:8080)");
        return -1;
    }
    c->listen = calloc(count, sizeof *c->listen);
    if (!c->listen)
        return -1;
    c->n_listen = count;
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        const sl_ynode *item = n->type == SL_Y_SEQ ? n->items[i] : n;
        if (parse_listen_item(&c->listen[i], item, d) < 0) {
            rc = -1;
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (c->listen[j].address && strcmp(c->listen[j].address, c->listen[i].address) == 0) {
                char w[512];
                sl_diag_add(d, item, "%saddress %s is listed twice", sl_cfg_where(item, w, sizeof w),
                            c->listen[i].address);
                rc = -1;
                break;
            }
    }
    return rc;
}

/* ---- server, admin, store, log ---- */

static const char *const server_keys[] = {"workers", "max_body_size", "header_timeout", "idle_timeout",
                                          "body_timeout", "shutdown_timeout", "stream_buffer", NULL};

static int parse_server(sl_config *c, const sl_ynode *root, sl_diag *d)
{
    c->server.workers = 0;
    c->server.max_body_bytes = 8LL << 20;
    c->server.header_timeout_ms = 10000;
    c->server.idle_timeout_ms = 60000;
    c->server.body_timeout_ms = 60000;
    c->server.shutdown_timeout_ms = 30000;
    c->server.stream_buffer_bytes = 256 << 10;
    const sl_ynode *s = sl_cfg_section(root, "server", server_keys, d);
    if (!s)
        return 0;
    int rc = 0;
    rc |= sl_cfg_int32(s, "workers", d, 0, 1024, &c->server.workers);
    rc |= sl_cfg_size(s, "max_body_size", d, 1024, &c->server.max_body_bytes);
    rc |= sl_cfg_duration(s, "header_timeout", d, 1, &c->server.header_timeout_ms);
    rc |= sl_cfg_duration(s, "idle_timeout", d, 1, &c->server.idle_timeout_ms);
    rc |= sl_cfg_duration(s, "body_timeout", d, 1, &c->server.body_timeout_ms);
    rc |= sl_cfg_duration(s, "shutdown_timeout", d, 0, &c->server.shutdown_timeout_ms);
    rc |= sl_cfg_size(s, "stream_buffer", d, 4096, &c->server.stream_buffer_bytes);
    return rc ? -1 : 0;
}

static const char *const admin_keys[] = {"listen", "token_env", NULL};

static int parse_admin(sl_config *c, const sl_ynode *root, sl_diag *d)
{
    const sl_ynode *a = sl_cfg_section(root, "admin", admin_keys, d);
    if (!a)
        return 0;
    int rc = 0;
    const sl_ynode *l = sl_ymap_get(a, "listen");
    if (l && !sl_ynode_is_null(l) && !(c->admin.listen = sl_cfg_listen_address(l, d)))
        rc = -1;
    size_t alen = c->admin.listen ? strlen(c->admin.listen) : 0;
    bool any_port = alen > 2 && strcmp(c->admin.listen + alen - 2, ":0") == 0;
    for (size_t i = 0; c->admin.listen && !any_port && i < c->n_listen; i++)
        if (c->listen[i].address && strcmp(c->listen[i].address, c->admin.listen) == 0) {
            sl_diag_add(d, l, "admin.listen: %s is also a client listen address: the admin API needs "
                        "an address of its own", c->admin.listen);
            rc = -1;
        }
    if (sl_ymap_get(a, "token_env")) {
        rc |= sl_cfg_env(a, "token_env", d, &c->admin.token_env, &c->admin.token);
    } else if (c->admin.listen) {
        if (!(c->admin.token_env = strdup("SLUICE_ADMIN_TOKEN")))
            return -1;
        const char *v = getenv(c->admin.token_env);
        if (v && *v && !(c->admin.token = strdup(v)))
            return -1;
        if (!c->admin.token)
            sl_diag_warn(d, l, "admin.listen: environment variable SLUICE_ADMIN_TOKEN is not set: the "
                         "admin API will refuse every call");
    }
    return rc ? -1 : 0;
}

static const char *const store_keys[] = {"backend", "path", "fsync_every", "redis", "secret_env", "on_failure", NULL};
static const char *const redis_keys[] = {"url", "prefix", NULL};

static int parse_store(sl_config *c, const sl_ynode *root, sl_diag *d)
{
    static const char *const backends[] = {"memory", "redis", NULL};
    static const char *const failures[] = {"closed", "open", NULL};
    const sl_ynode *s = sl_cfg_section(root, "store", store_keys, d);
    int rc = 0, backend = 0, failure = 0;
    rc |= sl_cfg_enum(s, "backend", d, backends, &backend);
    rc |= sl_cfg_enum(s, "on_failure", d, failures, &failure);
    rc |= sl_cfg_str(s, "path", d, &c->store.path);
    c->store.fsync_every_ms = 1000;
    rc |= sl_cfg_duration(s, "fsync_every", d, 0, &c->store.fsync_every_ms);
    c->store.backend = backend ? SL_STORE_REDIS : SL_STORE_MEMORY;
    c->store.fail_open = failure == 1;
    const sl_ynode *r = sl_cfg_section(s, "redis", redis_keys, d);
    rc |= sl_cfg_str(r, "url", d, &c->store.redis_url);
    rc |= sl_cfg_str(r, "prefix", d, &c->store.redis_prefix);
    if (c->store.redis_url && strncmp(c->store.redis_url, "redis://", 8) != 0 &&
        strncmp(c->store.redis_url, "rediss://", 9) != 0 && strncmp(c->store.redis_url, "unix:", 5) != 0) {
        sl_diag_add(d, sl_ymap_get(r, "url"), "store.redis.url: expected redis://HOST:PORT/DB, "
                    "rediss://... or unix:/path (got \"%s\")", c->store.redis_url);
        rc = -1;
    }
    if (c->store.backend == SL_STORE_REDIS && !c->store.redis_url &&
        !(c->store.redis_url = strdup("redis://127.0.0.1:6379/0")))
        return -1;
    if (!c->store.redis_prefix && !(c->store.redis_prefix = strdup("sluice:")))
        return -1;
    if (sl_ymap_get(s, "secret_env")) {
        rc |= sl_cfg_env(s, "secret_env", d, &c->store.secret_env, &c->store.secret);
    } else {
        if (!(c->store.secret_env = strdup("SLUICE_SECRET")))
            return -1;
        const char *v = getenv("SLUICE_SECRET");
        if (v && *v && !(c->store.secret = strdup(v)))
            return -1;
    }
    return rc ? -1 : 0;
}

static const char *const log_keys[] = {"access_log", "level", "file", "audit_log", NULL};

static int parse_log(sl_config *c, const sl_ynode *root, sl_diag *d)
{
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    const sl_ynode *l = sl_cfg_section(root, "log", log_keys, d);
    int rc = 0, level = 2;
    rc |= sl_cfg_str(l, "access_log", d, &c->log.access_log);
    rc |= sl_cfg_str(l, "file", d, &c->log.file);
    rc |= sl_cfg_str(l, "audit_log", d, &c->log.audit_log);
    rc |= sl_cfg_enum(l, "level", d, levels, &level);
    if (!c->log.access_log && !(c->log.access_log = strdup("-")))
        return -1;
    if (c->log.file && strcmp(c->log.file, "off") == 0) {
        sl_diag_add(d, sl_ymap_get(l, "file"), "log.file: \"-\" (stderr) or a file path; the operational log cannot be off");
        rc = -1;
    }
    if (!c->log.file && !(c->log.file = strdup("-")))
        return -1;
    if (!c->log.audit_log && !(c->log.audit_log = strdup("-")))
        return -1;
    if (!(c->log.level = strdup(levels[level])))
        return -1;
    return rc ? -1 : 0;
}

static const char *const console_keys[] = {"dir", "client", NULL};

/* The files are read here, so a reload picks up a rebuilt console. A folder that was not
 * built yet only warns: the API serves without a console. */
static int parse_console(sl_config *c, const sl_ynode *root, sl_diag *d)
{
    const sl_ynode *s = sl_cfg_section(root, "console", console_keys, d);
    c->console.client = true;
    int rc = sl_cfg_str(s, "dir", d, &c->console.dir) | sl_cfg_bool(s, "client", d, &c->console.client);
    if (rc || !c->console.dir)
        return rc ? -1 : 0;
    sl_err err = {{0}};
    bool missing;
    if (!(c->console.files = sl_static_load(c->console.dir, &missing, &err))) {
        if (!missing) {
            sl_diag_add(d, sl_ymap_get(s, "dir"), "console.dir: %s", err.msg);
            return -1;
        }
        sl_diag_warn(d, sl_ymap_get(s, "dir"), "console.dir: %s; the console is off", err.msg);
    }
    return 0;
}

/* ---- the whole file ---- */

static const char *const top_keys[] = {"listen", "server", "admin", "store", "log", "upstreams", "models",
                                       "consumers", "plugin_paths", "plugins", "console",
                                       "x-*", /* free for anchors: x-timeouts: &t {...} */ NULL};

static void config_free(sl_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_plugins; i++)
        if (c->plugins[i].plugin && c->plugins[i].plugin->config_free && c->plugins[i].conf)
            c->plugins[i].plugin->config_free(c->plugins[i].conf);
    free(c->plugins);
    for (size_t i = 0; i < c->n_listen; i++) {
        free(c->listen[i].address);
        free(c->listen[i].tls_cert);
        free(c->listen[i].tls_key);
    }
    free(c->listen);
    free(c->admin.listen);
    free(c->admin.token_env);
    free(c->admin.token);
    free(c->store.path);
    free(c->store.redis_url);
    free(c->store.redis_prefix);
    free(c->store.secret_env);
    free(c->store.secret);
    free(c->log.access_log);
    free(c->log.level);
    free(c->log.file);
    free(c->log.audit_log);
    free(c->console.dir);
    sl_static_free(c->console.files);
    for (size_t i = 0; i < c->n_upstreams; i++)
        sl_cfg_free_upstream(&c->upstreams[i]);
    free(c->upstreams);
    for (size_t i = 0; i < c->n_models; i++)
        sl_cfg_free_model(&c->models[i]);
    free(c->models);
    for (size_t i = 0; i < c->n_consumers; i++)
        sl_cfg_free_consumer(&c->consumers[i]);
    free(c->consumers);
    free(c->path);
    free(c);
}

sl_config *sl_config_load(const char *path, sl_diag *d)
{
    if (!d->file)
        d->file = path;
    size_t errors_before = d->n;
    sl_ynode *root = NULL;
    sl_config *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        sl_diag_add(d, NULL, "out of memory");
        goto fail;
    }
    atomic_init(&c->refs, 1);
    if (!(root = sl_yaml_load_file(path, d)))
        goto fail;
    if (root->type != SL_Y_MAP) {
        sl_diag_add(d, root, "the config must be a map of sections (listen, upstreams, models, ...)");
        goto fail;
    }
    sl_ymap_check_keys(root, top_keys, d);
    /* Every part runs even after an error, so one pass reports every mistake. */
    int oom = 0;
    oom |= parse_listen(c, sl_ymap_get(root, "listen"), d) < 0 && d->n == errors_before;
    oom |= parse_server(c, root, d) < 0 && d->n == errors_before;
    oom |= parse_admin(c, root, d) < 0 && d->n == errors_before;
    oom |= parse_store(c, root, d) < 0 && d->n == errors_before;
    oom |= parse_log(c, root, d) < 0 && d->n == errors_before;
    oom |= parse_console(c, root, d) < 0 && d->n == errors_before;
    sl_cfg_upstreams(c, sl_ymap_get(root, "upstreams"), d);
    sl_cfg_models(c, sl_ymap_get(root, "models"), d);
    sl_cfg_consumers(c, sl_ymap_get(root, "consumers"), d);
    sl_cfg_plugins(c, sl_ymap_get(root, "plugin_paths"), sl_ymap_get(root, "plugins"), d);
    if (oom && d->n == errors_before)
        sl_diag_add(d, NULL, "out of memory");
    if (d->n != errors_before)
        goto fail;
    sl_ynode_free(root);
    return c;
fail:
    sl_diag_sort(d);
    sl_ynode_free(root);
    config_free(c);
    return NULL;
}

sl_config *sl_config_ref(sl_config *c)
{
    if (c)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void sl_config_unref(sl_config *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1)
        config_free(c);
}

const sl_upstream_conf *sl_config_upstream(const sl_config *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->n_upstreams; i++)
        if (strcmp(c->upstreams[i].name, name) == 0)
            return &c->upstreams[i];
    return NULL;
}

const sl_consumer_conf *sl_config_consumer(const sl_config *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->n_consumers; i++)
        if (strcmp(c->consumers[i].name, name) == 0)
            return &c->consumers[i];
    return NULL;
}

const sl_model_conf *sl_config_model(const sl_config *c, const char *name)
{
    /* aliases are checked for cycles at load; the bound is a second guard */
    for (size_t hops = 0; c && name && hops <= c->n_models; hops++) {
        const sl_model_conf *m = NULL;
        for (size_t i = 0; i < c->n_models && !m; i++)
            if (strcmp(c->models[i].name, name) == 0)
                m = &c->models[i];
        if (!m || !m->alias)
            return m;
        name = m->alias;
    }
    return NULL;
}
