#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "admin.h"
#include "audit.h"
#include "event_memo.h"
#include "exchange.h"
#include "log.h"
#include "pool.h"
#include "reload.h"
#include "static_files.h"
#include "store.h"
#include "worker.h"

typedef struct listen_arg {
    sl_worker *w;
    SSL_CTX *ssl;
} listen_arg;

typedef struct sl_server {
    sl_config *cfg;
    sl_worker *workers;
    int n_workers;
    SSL_CTX **ssl;              /* per listen entry, NULL for plain */
    int **fds;                  /* [listen][worker] */
    listen_arg *largs;          /* [listen * n_workers + worker] */
    sl_access_log *alog;
    struct event_base *main_base;
    sl_admin *admin;
    sl_access_log_writer *admin_alog; /* the admin listener's lines (main thread) */
    sl_store *store;
    sl_pool *pool;
    sl_reloader *reloader;
    sl_config *current;         /* the config new requests start with */
    struct sl_store_conn *admin_store;
    int stopping;
} sl_server;

static void on_request(sl_http_conn *c, sl_http_request *req, void *arg)
{
    sl_worker *w = arg;
    if (w->cfg->console.client && sl_static_serve(w->cfg->console.files, SL_STATIC_CLIENT, c, req, w->alog))
        return;
    sl_exchange_start(w, c, req);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    listen_arg *la = arg;
    sl_http_conn_accept(&la->w->http, fd, la->ssl);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    int e = EVUTIL_SOCKET_ERROR();
    sl_log_warn("accept: %s", evutil_socket_error_to_string(e));
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_worker *w = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long now_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    /* done when every connection has closed: answered, and its last bytes sent */
    if (w->http.n_conns == 0 || now_ms >= w->drain_deadline_ms) {
        if (w->http.n_busy)
            sl_log_warn("worker %d: %d requests still running at the shutdown timeout", w->index, w->http.n_busy);
        event_base_loopexit(w->base, NULL);
    }
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_worker *w = arg;
    for (size_t i = 0; i < w->n_listeners; i++)
        if (w->listeners[i]) {
            evconnlistener_free(w->listeners[i]);
            w->listeners[i] = NULL;
        }
    w->http.draining = true;
    sl_http_close_idle(&w->http);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    w->drain_deadline_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + w->cfg->server.shutdown_timeout_ms;
    struct timeval tv = {0, 20 * 1000};
    event_add(w->drain_timer, &tv);
    drain_check(-1, 0, w);
}

static void set_limits(sl_worker *w, const sl_config *cfg)
{
    w->limits = (sl_http_limits){
        .max_body = (size_t)cfg->server.max_body_bytes,
        .header_timeout_ms = cfg->server.header_timeout_ms,
        .idle_timeout_ms = cfg->server.idle_timeout_ms,
        .body_timeout_ms = cfg->server.body_timeout_ms,
        .stream_low_water = (size_t)cfg->server.stream_buffer_bytes / 2,
    };
}

/* On the worker's thread: new requests start on the new config; each request in flight
 * holds the one it started with. */
static void reload_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_worker *w = arg;
    pthread_mutex_lock(&w->pending_mu);
    sl_config *next = w->pending_cfg;
    w->pending_cfg = NULL;
    pthread_mutex_unlock(&w->pending_mu);
    if (!next)
        return;
    sl_config *old = w->cfg;
    w->cfg = next;
    set_limits(w, next);
    sl_config_unref(old);
}

/* The main thread wakes a worker (eventfd: a counter, never full in practice; a failed
 * write means the counter is non-zero already, so the worker wakes anyway). */
static void wake(sl_worker *w)
{
    uint64_t one = 1;
    if (write(w->wake_fd, &one, sizeof one) < 0) {
        /* EAGAIN only: see above */
    }
}

/* On the worker's thread: whatever the main thread left for it. */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    sl_worker *w = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0) {
        /* EAGAIN: nothing counted (woken twice for one write) */
    }
    reload_cb(-1, 0, w);
    if (atomic_load(&w->drain_asked) && !w->draining) {
        w->draining = true;
        drain_cb(-1, 0, w);
    }
}

static bool same_str(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

/* What a reload cannot change while running: say so, keep the running value. */
static void warn_restart_only(const sl_config *old, const sl_config *cfg)
{
    bool listen_same = old->n_listen == cfg->n_listen;
    for (size_t i = 0; listen_same && i < cfg->n_listen; i++)
        listen_same = same_str(old->listen[i].address, cfg->listen[i].address) &&
                      same_str(old->listen[i].tls_cert, cfg->listen[i].tls_cert) &&
                      same_str(old->listen[i].tls_key, cfg->listen[i].tls_key);
    if (!listen_same)
        sl_log_warn("reload: listen changed: takes effect at the next restart");
    if (old->server.workers != cfg->server.workers)
        sl_log_warn("reload: server.workers changed: takes effect at the next restart");
    if (!same_str(old->admin.listen, cfg->admin.listen))
        sl_log_warn("reload: admin.listen changed: takes effect at the next restart");
    if (old->store.backend != cfg->store.backend || !same_str(old->store.path, cfg->store.path) ||
        !same_str(old->store.redis_url, cfg->store.redis_url) || !same_str(old->store.secret, cfg->store.secret) ||
        old->store.fsync_every_ms != cfg->store.fsync_every_ms)
        sl_log_warn("reload: store changed: takes effect at the next restart");
    if (!same_str(old->log.access_log, cfg->log.access_log) || !same_str(old->log.file, cfg->log.file) ||
        !same_str(old->log.audit_log, cfg->log.audit_log))
        sl_log_warn("reload: log.file, log.access_log or log.audit_log changed: takes effect at the next restart");
}

static void apply_config(void *arg, sl_config *cfg)
{
    sl_server *s = arg;
    warn_restart_only(s->current, cfg);
    sl_pool_apply(s->pool, cfg);
    sl_log_level lvl;
    if (cfg->log.level && sl_log_level_parse(cfg->log.level, &lvl) == 0)
        sl_log_set_level(lvl);
    for (int i = 0; i < s->n_workers; i++) {
        sl_worker *w = &s->workers[i];
        pthread_mutex_lock(&w->pending_mu);
        if (w->pending_cfg)
            sl_config_unref(w->pending_cfg);
        w->pending_cfg = sl_config_ref(cfg);
        pthread_mutex_unlock(&w->pending_mu);
        wake(w);
    }
    if (s->admin)
        sl_admin_set_config(s->admin, cfg);
    sl_config_unref(s->current);
    s->current = sl_config_ref(cfg);
}

static int admin_reload(void *arg, json_t **errors)
{
    sl_server *s = arg;
    return sl_reloader_reload(s->reloader, "admin API", errors);
}

static void *worker_main(void *arg)
{
    sl_worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* Split "host:port" / "[v6]:port"; 0 or -1. */
static int split_address(const char *addr, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':')
            return -1;
        snprintf(host, hl, "%.*s", (int)(rb - addr - 1), addr + 1);
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return -1;
        snprintf(host, hl, "%.*s", (int)(colon - addr), addr);
    }
    snprintf(port, pl, "%s", colon + 1);
    return port[0] ? 0 : -1;
}

static int bind_one(const char *addr, const char *port_override, char *bound, size_t bl, sl_err *err)
{
    if (strncmp(addr, "unix:", 5) == 0) {
        struct sockaddr_un su = {.sun_family = AF_UNIX};
        if (strlen(addr + 5) >= sizeof su.sun_path) {
            sl_err_set(err, "listen %s: path too long", addr);
            return -1;
        }
        strcpy(su.sun_path, addr + 5);
        unlink(su.sun_path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&su, sizeof su) < 0 || listen(fd, 1024) < 0) {
            sl_err_set(err, "listen %s: %s", addr, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        snprintf(bound, bl, "%s", addr);
        return fd;
    }
    char host[256], port[32];
    if (split_address(addr, host, sizeof host, port, sizeof port) < 0) {
        sl_err_set(err, "listen %s: expected host:port", addr);
        return -1;
    }
    if (port_override)
        snprintf(port, sizeof port, "%s", port_override);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(host[0] && strcmp(host, "*") != 0 ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        sl_err_set(err, "listen %s: %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        sl_err_set(err, "listen %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char h[INET6_ADDRSTRLEN] = "?";
    int p = 0;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, h, sizeof h);
        p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        snprintf(bound, bl, "%s:%d", h, p);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, h, sizeof h);
        p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        snprintf(bound, bl, "[%s]:%d", h, p);
    }
    return fd;
}

static SSL_CTX *make_ssl_ctx(const sl_listen_conf *lc, sl_err *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        sl_err_set(err, "TLS: cannot create a context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, lc->tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, lc->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        sl_err_set(err, "listen %s: TLS certificate %s / key %s: %s", lc->address, lc->tls_cert, lc->tls_key, buf);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static bool chain_has(const sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (strcmp(cfg->plugins[i].plugin->name, name) == 0)
            return true;
    return false;
}

/* The store holds keys, quotas and rate state. Keys need the server secret: without one a
 * gateway that authenticates refuses to start; one that does not runs on a secret of its
 * own making (nothing it hashes outlives the process). */
static int open_store(sl_server *s, const sl_config *cfg, sl_err *err)
{
    sl_store_opts o;
    sl_store_opts_from_config(&o, cfg);
    unsigned char ephemeral[32];
    if (!o.secret || !o.secret_len) {
        if (chain_has(cfg, "auth")) {
            sl_err_set(err, "no server secret: set the environment variable %s (keys are stored as HMACs under it)",
                       cfg->store.secret_env ? cfg->store.secret_env : "SLUICE_SECRET");
            return -1;
        }
        if (cfg->admin.listen)
            sl_log_warn("no server secret (%s): keys issued now will not survive a restart",
                        cfg->store.secret_env ? cfg->store.secret_env : "SLUICE_SECRET");
        RAND_bytes(ephemeral, sizeof ephemeral);
        o.secret = ephemeral;
        o.secret_len = sizeof ephemeral;
    }
    if (!chain_has(cfg, "auth"))
        sl_log_warn("no auth plugin: requests are anonymous and every model is open (private networks and tests only)");
    s->store = sl_store_open(&o, err);
    if (!s->store)
        return -1;
    s->admin_store = sl_store_conn_open(s->store, s->main_base, err);
    return s->admin_store ? 0 : -1;
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    sl_server *s = arg;
    if (s->stopping++) {
        sl_log_warn("second signal: exiting now");
        exit(1);
    }
    sl_log_info("%s: stopping: no new connections, finishing requests in flight",
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
    if (s->admin) {
        sl_admin_set_ready(s->admin, false);
        sl_admin_stop(s->admin);
    }
    for (int i = 0; i < s->n_workers; i++) {
        atomic_store(&s->workers[i].drain_asked, true);
        wake(&s->workers[i]);
    }
    event_base_loopexit(s->main_base, NULL);
}

/* SIGUSR1: every log file opened again at its path (after logrotate moved it). */
static void reopen_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    sl_server *s = arg;
    sl_err e = {{0}};
    int rc = sl_log_reopen(&e);
    rc |= sl_access_log_reopen(s->alog, &e);
    rc |= sl_audit_reopen(&e);
    if (rc)
        sl_log_error("SIGUSR1: reopening the log files: %s", e.msg);
    else
        sl_log_info("SIGUSR1: log files reopened");
}

static void server_free(sl_server *s)
{
    for (int i = 0; s->workers && i < s->n_workers; i++) {
        sl_worker *w = &s->workers[i];
        for (size_t j = 0; j < w->n_listeners; j++)
            if (w->listeners[j])
                evconnlistener_free(w->listeners[j]);
        free(w->listeners);
        if (w->alog)
            sl_access_log_writer_free(w->alog);
        if (w->upstream)
            sl_upstream_client_free(w->upstream);
        if (w->store)
            sl_store_conn_close(w->store);
        if (w->wake_ev) {
            event_free(w->wake_ev);
            close(w->wake_fd);
        }
        if (w->drain_timer)
            event_free(w->drain_timer);
        sl_http_server_ctx_release(&w->http);
        json_decref(w->answer_spare);
        sl_jview_free(&w->ev_view);
        free(w->ev_summary.c);
        while (w->n_memo_spare)
            sl_event_memo_free(w->memo_spare[--w->n_memo_spare]);
        free(w->edit_buf.s);
        while (w->n_req_spare) {
            sl_req_text *r = &w->req_spare[--w->n_req_spare];
            free(r->text.s);
            sl_jview_free(&r->view);
        }
        if (w->pending_cfg)
            sl_config_unref(w->pending_cfg);
        if (w->base)
            event_base_free(w->base);
        if (w->cfg)
            sl_config_unref(w->cfg);
    }
    free(s->workers);
    for (size_t l = 0; s->cfg && l < s->cfg->n_listen; l++) {
        if (s->ssl && s->ssl[l])
            SSL_CTX_free(s->ssl[l]);
        free(s->fds ? s->fds[l] : NULL);
    }
    free(s->ssl);
    free(s->fds);
    free(s->largs);
    sl_admin_free(s->admin);
    s->admin = NULL;
    if (s->admin_alog)
        sl_access_log_writer_free(s->admin_alog);
    sl_access_log_close(s->alog);
    sl_audit_close();
    sl_reloader_free(s->reloader);
    if (s->current)
        sl_config_unref(s->current);
    sl_pool_stop(s->pool, 5000);
    sl_pool_free(s->pool);
    if (s->admin_store)
        sl_store_conn_close(s->admin_store);
    if (s->store)
        sl_store_close(s->store);
    if (s->main_base)
        event_base_free(s->main_base);
    if (s->cfg)
        sl_config_unref(s->cfg);
}

int sl_server_run(sl_config *cfg, sl_err *err)
{
    sl_server srv = {0}, *s = &srv;
    s->cfg = sl_config_ref(cfg);
    signal(SIGPIPE, SIG_IGN);
    /* a file past RLIMIT_FSIZE (journal, access log) fails its write with EFBIG, which the
     * writers report, instead of killing the gateway */
    signal(SIGXFSZ, SIG_IGN);
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sl_log_level lvl;
    if (cfg->log.level && sl_log_level_parse(cfg->log.level, &lvl) == 0)
        sl_log_set_level(lvl);

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->n_workers = cfg->server.workers > 0 ? cfg->server.workers : (ncpu > 0 ? (int)ncpu : 1);
    char ebuf[256];
    s->alog = sl_access_log_open(cfg->log.access_log ? cfg->log.access_log : "-", ebuf, sizeof ebuf);
    if (!s->alog) {
        sl_err_set(err, "%s", ebuf);
        goto fail;
    }
    if (sl_log_open_file(cfg->log.file, err) < 0 || sl_audit_open(cfg->log.audit_log, err) < 0)
        goto fail;
    size_t nl = cfg->n_listen;
    if (nl == 0) {
        sl_err_set(err, "no listen address configured");
        goto fail;
    }
    s->ssl = calloc(nl, sizeof *s->ssl);
    s->fds = calloc(nl, sizeof *s->fds);
    s->largs = calloc(nl * (size_t)s->n_workers, sizeof *s->largs);
    s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
    if (!s->ssl || !s->fds || !s->largs || !s->workers) {
        sl_err_set(err, "out of memory");
        goto fail;
    }
    for (size_t l = 0; l < nl; l++) {
        const sl_listen_conf *lc = &cfg->listen[l];
        if (lc->tls_cert && !(s->ssl[l] = make_ssl_ctx(lc, err)))
            goto fail;
        s->fds[l] = malloc(sizeof(int) * (size_t)s->n_workers);
        for (int i = 0; i < s->n_workers; i++)
            s->fds[l][i] = -1;
        char bound[300], port[16] = "";
        bool is_unix = strncmp(lc->address, "unix:", 5) == 0;
        for (int i = 0; i < (is_unix ? 1 : s->n_workers); i++) {
            int fd = bind_one(lc->address, port[0] ? port : NULL, bound, sizeof bound, err);
            if (fd < 0)
                goto fail;
            s->fds[l][i] = fd;
            if (!port[0] && !is_unix)
                snprintf(port, sizeof port, "%s", strrchr(bound, ':') + 1);
        }
        sl_log_info("listening on %s%s", s->ssl[l] ? "https://" : "http://", bound);
        if (cfg->console.files && cfg->console.client)
            sl_log_info("console: chat page on %s%s/console/", s->ssl[l] ? "https://" : "http://", bound);
    }

    s->main_base = event_base_new();
    if (!s->main_base) {
        sl_err_set(err, "cannot create an event loop");
        goto fail;
    }
    if (open_store(s, cfg, err) < 0)
        goto fail;
    if (!(s->pool = sl_pool_start(cfg, s->main_base, err)))
        goto fail;
    if (cfg->admin.listen) {
        char bound[300];
        if (!(s->admin = sl_admin_new(s->main_base, cfg, s->admin_store, err)))
            goto fail;
        sl_admin_set_pool(s->admin, s->pool);
        if (!(s->admin_alog = sl_access_log_writer_new(s->alog, s->main_base))) {
            sl_err_set(err, "out of memory");
            goto fail;
        }
        sl_admin_set_access_log(s->admin, s->admin_alog);
        int fd = bind_one(cfg->admin.listen, NULL, bound, sizeof bound, err);
        if (fd < 0)
            goto fail;
        if (sl_admin_listen(s->admin, fd) < 0) {
            close(fd);
            sl_err_set(err, "cannot listen on %s", cfg->admin.listen);
            goto fail;
        }
        sl_log_info("admin listening on http://%s", bound);
        if (cfg->console.files)
            sl_log_info("console: admin page on http://%s/console/admin", bound);
    }

    uint32_t prefix;
    RAND_bytes((unsigned char *)&prefix, sizeof prefix);
    for (int i = 0; i < s->n_workers; i++) {
        sl_worker *w = &s->workers[i];
        w->index = i;
        w->server = s;
        w->cfg = sl_config_ref(cfg);
        w->id_prefix = prefix;
        /* no lock: only this worker's thread touches its base once it runs (see worker.h) */
        struct event_config *ec = event_config_new();
        if (ec && event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK) == 0)
            w->base = event_base_new_with_config(ec);
        if (ec)
            event_config_free(ec);
        if (!w->base) {
            sl_err_set(err, "cannot create an event loop");
            goto fail;
        }
        set_limits(w, cfg);
        pthread_mutex_init(&w->pending_mu, NULL);
        w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->wake_fd >= 0 && !(w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, wake_cb, w)))
            close(w->wake_fd);
        if (w->wake_ev && event_add(w->wake_ev, NULL) < 0) {
            event_free(w->wake_ev);
            w->wake_ev = NULL;
            close(w->wake_fd);
        }
        w->http = (sl_http_server_ctx){.base = w->base, .limits = &w->limits, .on_request = on_request, .arg = w};
        w->upstream = sl_upstream_client_new(w->base);
        w->pool = s->pool;
        if (!(w->store = sl_store_conn_open(s->store, w->base, err)))
            goto fail;
        w->alog = sl_access_log_writer_new(s->alog, w->base);
        w->drain_timer = event_new(w->base, -1, EV_PERSIST, drain_check, w);
        w->listeners = calloc(nl, sizeof *w->listeners);
        if (!w->upstream || !w->alog || !w->wake_ev || !w->drain_timer || !w->listeners) {
            sl_err_set(err, "out of memory");
            goto fail;
        }
        w->n_listeners = nl;
        for (size_t l = 0; l < nl; l++) {
            int fd = s->fds[l][i];
            if (fd < 0)
                continue;
            listen_arg *la = &s->largs[l * (size_t)s->n_workers + (size_t)i];
            la->w = w;
            la->ssl = s->ssl[l];
            w->listeners[l] = evconnlistener_new(w->base, accept_cb, la, LEV_OPT_CLOSE_ON_FREE, -1, fd);
            if (!w->listeners[l]) {
                sl_err_set(err, "cannot listen on %s", cfg->listen[l].address);
                goto fail;
            }
            s->fds[l][i] = -1; /* owned by the listener now */
            evconnlistener_set_error_cb(w->listeners[l], accept_error_cb);
        }
    }

    struct event *sigterm = evsignal_new(s->main_base, SIGTERM, signal_cb, s);
    struct event *sigint = evsignal_new(s->main_base, SIGINT, signal_cb, s);
    struct event *sigusr1 = evsignal_new(s->main_base, SIGUSR1, reopen_cb, s);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    evsignal_add(sigusr1, NULL);
    for (int i = 0; i < s->n_workers; i++)
        pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
    s->current = sl_config_ref(cfg);
    if (cfg->path && (s->reloader = sl_reloader_new(s->main_base, cfg->path, apply_config, s)) && s->admin)
        sl_admin_set_reload(s->admin, admin_reload, s);
    if (s->admin)
        sl_admin_set_ready(s->admin, true);
    sl_log_info("ready: %d worker threads", s->n_workers);
    event_base_dispatch(s->main_base);
    for (int i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i].thread, NULL);
    sl_pool_stop(s->pool, 10000); /* the gateway's requests are done: now the engines */
    event_free(sigterm);
    event_free(sigint);
    event_free(sigusr1);
    sl_log_info("stopped");
    server_free(s);
    return 0;

fail:
    for (size_t l = 0; s->fds && l < cfg->n_listen; l++)
        for (int i = 0; s->fds[l] && i < s->n_workers; i++)
            if (s->fds[l][i] >= 0)
                close(s->fds[l][i]);
    server_free(s);
    return -1;
}
