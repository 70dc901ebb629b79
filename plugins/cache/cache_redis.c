/* The Redis backend: GET and SET through hiredis async on the worker's own event loop. Each
 * worker thread keeps one connection per (event_base, url), made on first use and made
 * again after it drops (at most once a second while Redis is down). Any failure reads as a
 * miss: the cache never fails a request. */
#include "cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "log.h"

#define GET_TIMEOUT_MS 1000
#define RETRY_MS 1000
#define MAX_CONNS 4

typedef struct conn {
    struct event_base *base;
    char *url;
    redisAsyncContext *ctx;         /* NULL while down */
    int64_t retry_after_ms;
} conn;

static __thread conn conns[MAX_CONNS];
static pthread_key_t thread_end_key;
static pthread_once_t thread_end_once = PTHREAD_ONCE_INIT;

typedef struct pending_get {
    sl_cache_redis_cb cb;
    void *arg;
    struct event *timer;
    bool answered;                  /* the caller has had its answer (reply or timeout) */
} pending_get;

static conn *conn_of_ctx(const redisAsyncContext *ctx)
{
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].ctx == ctx)
            return &conns[i];
    return NULL;
}

static void on_connect(const redisAsyncContext *ctx, int status)
{
    if (status == REDIS_OK)
        return;
    conn *c = conn_of_ctx(ctx);
    sl_log_warn("cache: cannot connect to Redis at %s: %s; serving without the cache", c ? c->url : "?",
                ctx->errstr);
    if (c) { /* hiredis frees ctx after this callback */
        c->ctx = NULL;
        c->retry_after_ms = sl_cache_now_ms() + RETRY_MS;
    }
}

static void on_disconnect(const redisAsyncContext *ctx, int status)
{
    conn *c = conn_of_ctx(ctx);
    if (status != REDIS_OK)
        sl_log_warn("cache: lost the Redis connection to %s: %s", c ? c->url : "?", ctx->errstr);
    if (c) {
        c->ctx = NULL;
        c->retry_after_ms = sl_cache_now_ms() + RETRY_MS;
    }
}

/* redis://[:password@]host[:port][/db] or unix:/path. 0, or -1 when not understood. */
static int parse_url(const char *url, char *host, size_t hsize, int *port, char *path, size_t psize, char *pass,
                     size_t pwsize, int *db)
{
    *port = 6379;
    *db = 0;
    host[0] = path[0] = pass[0] = '\0';
    if (strncmp(url, "unix:", 5) == 0) {
        snprintf(path, psize, "%s", url + 5);
        return path[0] ? 0 : -1;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return -1; /* rediss:// needs hiredis_ssl, which this build does not link */
    const char *p = url + 8, *at = strchr(p, '@'), *slash;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(pass, pwsize, "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    slash = strchr(p, '/');
    size_t hlen = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = memchr(p, ':', hlen);
    if (colon) {
        *port = atoi(colon + 1);
        hlen = (size_t)(colon - p);
    }
    snprintf(host, hsize, "%.*s", (int)hlen, p);
    if (slash && slash[1])
        *db = atoi(slash + 1);
    return host[0] && *port > 0 ? 0 : -1;
}

static redisAsyncContext *connect_to(struct event_base *base, const char *url)
{
    char host[256], path[256], pass[256];
    int port, db;
    if (parse_url(url, host, sizeof host, &port, path, sizeof path, pass, sizeof pass, &db) < 0) {
        sl_log_warn("cache: cannot use Redis URL %s (expected redis://HOST:PORT/DB or unix:/path)", url);
        return NULL;
    }
    redisAsyncContext *ctx = path[0] ? redisAsyncConnectUnix(path) : redisAsyncConnect(host, port);
    if (!ctx)
        return NULL;
    if (ctx->err) {
        sl_log_warn("cache: cannot connect to Redis at %s: %s", url, ctx->errstr);
        redisAsyncFree(ctx);
        return NULL;
    }
    redisLibeventAttach(ctx, base);
    redisAsyncSetConnectCallback(ctx, on_connect);
    redisAsyncSetDisconnectCallback(ctx, on_disconnect);
    if (pass[0])
        redisAsyncCommand(ctx, NULL, NULL, "AUTH %s", pass);
    if (db)
        redisAsyncCommand(ctx, NULL, NULL, "SELECT %d", db);
    return ctx;
}

/* When a worker thread ends (its loop has stopped; the base is freed later by the main
 * thread), its connections go with it. */
static void close_thread_conns(void *unused)
{
    (void)unused;
    for (int i = 0; i < MAX_CONNS; i++) {
        redisAsyncContext *ctx = conns[i].ctx;
        conns[i].ctx = NULL;
        if (ctx)
            redisAsyncFree(ctx);
        free(conns[i].url);
        memset(&conns[i], 0, sizeof conns[i]);
    }
}

static void make_thread_end_key(void) { pthread_key_create(&thread_end_key, close_thread_conns); }

/* This thread's connection for (base, url), or NULL while Redis is down. */
static redisAsyncContext *get_conn(struct event_base *base, const char *url)
{
    conn *c = NULL, *free_slot = NULL;
    for (int i = 0; i < MAX_CONNS && !c; i++) {
        if (conns[i].base == base && conns[i].url && strcmp(conns[i].url, url) == 0)
            c = &conns[i];
        else if (!conns[i].base && !free_slot)
            free_slot = &conns[i];
    }
    if (!c) {
        if (!free_slot || !(free_slot->url = strdup(url)))
            return NULL;
        c = free_slot;
        c->base = base;
        pthread_once(&thread_end_once, make_thread_end_key);
        pthread_setspecific(thread_end_key, conns);
    }
    if (!c->ctx && sl_cache_now_ms() >= c->retry_after_ms) {
        c->ctx = connect_to(base, url);
        if (!c->ctx)
            c->retry_after_ms = sl_cache_now_ms() + RETRY_MS;
    }
    return c->ctx;
}

static void on_get_timeout(evutil_socket_t fd, short what, void *arg)
{
    pending_get *pg = arg;
    (void)fd;
    (void)what;
    pg->answered = true;
    pg->cb(pg->arg, NULL, 0);
}

static void on_get_reply(redisAsyncContext *ctx, void *reply, void *priv)
{
    pending_get *pg = priv;
    redisReply *r = reply;
    (void)ctx;
    if (!pg->answered) {
        pg->answered = true;
        evtimer_del(pg->timer);
        if (r && r->type == REDIS_REPLY_STRING)
            pg->cb(pg->arg, r->str, (size_t)r->len);
        else
            pg->cb(pg->arg, NULL, 0);
    }
    event_free(pg->timer);
    free(pg);
}

int sl_cache_redis_get(struct event_base *base, const char *url, const char *key, sl_cache_redis_cb cb, void *arg)
{
    redisAsyncContext *ctx = get_conn(base, url);
    if (!ctx)
        return -1;
    pending_get *pg = calloc(1, sizeof *pg);
    if (!pg)
        return -1;
    pg->cb = cb;
    pg->arg = arg;
    if (!(pg->timer = evtimer_new(base, on_get_timeout, pg)))
        goto fail;
    if (redisAsyncCommand(ctx, on_get_reply, pg, "GET %s", key) != REDIS_OK)
        goto fail;
    struct timeval tv = {GET_TIMEOUT_MS / 1000, (GET_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(pg->timer, &tv);
    return 0;
fail:
    if (pg->timer)
        event_free(pg->timer);
    free(pg);
    return -1;
}

void sl_cache_redis_set(struct event_base *base, const char *url, const char *key, const char *val, size_t len,
                        int64_t ttl_ms)
{
    redisAsyncContext *ctx = get_conn(base, url);
    if (!ctx)
        return;
    if (ttl_ms > 0)
        redisAsyncCommand(ctx, NULL, NULL, "SET %s %b PX %lld", key, val, len, (long long)ttl_ms);
    else
        redisAsyncCommand(ctx, NULL, NULL, "SET %s %b", key, val, len);
}
