/* The redis store: one hiredis async connection per conn (worker thread) on its libevent
 * loop, reconnecting with backoff (100 ms doubling to 5 s). Every quota and rate update is
 * one Lua script (store_redis_scripts.c), atomic across every gateway sharing the Redis.
 *
 * Key lookups are cached per conn for key_cache_ms (default 500 ms), so a revoke made on
 * any instance is seen everywhere within that time plus one round trip.
 *
 * When Redis is unreachable: on_failure closed -> UNAVAILABLE (err says why); open ->
 * reserve counts against this conn's own tally of the window since the outage began (id
 * 0; so each worker thread of each instance may spend up to the limit: the guarantee is
 * traded for availability), rate allows, lookups answer from a stale cache entry. Settles are never lost in either mode: they are queued per
 * conn (up to 100000) and sent again on reconnect; one whose reply was lost with the
 * connection is replayed only if its reservation is still open. A reserve whose reply was
 * lost may have been made: its id (made here, before sending) is queued the same way and
 * the reservation, if Redis has it, is dropped on reconnect instead of holding tokens until
 * its TTL. A connection that does not answer within redis_timeout_ms (default 2 s) is
 * dropped, failing what was in flight; so is one whose Redis answers that it runs nothing
 * yet (LOADING after a restart, BUSY, MASTERDOWN): those commands were not run, and a
 * settle among them waits in the queue for the next connection. */
#include "store_int.h"
#include "store_redis_scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define CACHE_SLOTS 1024
#define MAX_ARGS 14
#define MAX_QUEUED 100000

typedef struct rstore {
    sl_store base;
    char *host, *unix_path, *password, *prefix;
    int port, db;
    int cache_ms;
    int timeout_ms;
    char sha[SL_LUA_COUNT][41];
} rstore;

typedef struct kslot {
    bool used;
    sl_store_status st;         /* OK (found) or NOT_FOUND */
    int64_t at_ms;
    sl_key_info info;
} kslot;

typedef struct rreq rreq;

/* on_failure: open keeps a local count per window while Redis is away (per conn). */
typedef struct lquota {
    struct lquota *next;
    char consumer[SL_STORE_NAME_MAX];
    sl_window w;
    int64_t wid, used, reserved;
} lquota;

typedef struct rconn {
    sl_store_conn base;
    rstore *s;
    redisAsyncContext *ac;
    struct event *retry;
    struct event *watch;            /* every 250 ms: drop a connection that stopped answering */
    int backoff_ms;
    bool connected;
    int64_t connect_started_us;
    rreq *fl_head, *fl_tail;        /* in flight, oldest first */
    bool closing;
    char last_error[160];
    rreq *queued, **queued_tail;    /* settles and forgets waiting for the connection */
    size_t n_queued;
    uint32_t id_prefix, id_next;    /* reservation ids: a random prefix per conn, a counter */
    lquota *local;
    kslot cache[CACHE_SLOTS];
} rconn;

typedef enum rkind { R_ISSUE, R_LOOKUP, R_LIST, R_REVOKE, R_RESERVE, R_SETTLE, R_USAGE, R_RATE, R_FORGET } rkind;

struct rreq {
    rreq *next;
    rreq *fl_prev, *fl_next;
    bool in_flight, maybe_applied;
    int64_t sent_us;
    rconn *c;
    rkind kind;
    int script;
    bool retried;
    union {
        sl_store_key_cb key;
        sl_store_keys_cb keys;
        sl_store_quota_cb quota;
        sl_store_rate_cb rate;
    } cb;                       /* NULL for a queued settle being replayed */
    void *arg;
    int argc;
    char *argv[MAX_ARGS];
    size_t argvlen[MAX_ARGS];
    sl_key_info info;           /* issue: the record; lookup: hash in info.hash */
    char plain[SL_KEY_SIZE];
    sl_quota_resv resv;
    sl_window w;
    int64_t wid, limit, charge, cost;
};

static void rconnect(rconn *c);

/* ---- requests ---- */

static rreq *req_new(rconn *c, rkind kind, int script, void *arg)
{
    rreq *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->c = c;
    r->kind = kind;
    r->script = script;
    r->arg = arg;
    return r;
}

static void req_free(rreq *r)
{
    for (int i = 0; i < r->argc; i++)
        free(r->argv[i]);
    memset(r->plain, 0, sizeof r->plain);
    free(r);
}

__attribute__((format(printf, 2, 3)))
static void push(rreq *r, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0 || r->argc == MAX_ARGS) {
        free(n < 0 ? NULL : s);
        r->argc = -1 - MAX_ARGS;    /* marks the request as broken: send fails it */
        return;
    }
    if (r->argc < 0)
        return free(s);
    r->argv[r->argc] = s;
    r->argvlen[r->argc++] = (size_t)n;
}

/* EVALSHA sha numkeys: the script's head; keys and args follow. */
static void script_head(rreq *r, int nkeys)
{
    push(r, "EVALSHA");
    push(r, "%s", r->c->s->sha[r->script]);
    push(r, "%d", nkeys);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);
static void req_fail(rreq *r, const char *why);
static void to_forget(rreq *r, uint64_t id);

static void req_send(rreq *r)
{
    rconn *c = r->c;
    if (r->argc < 0) {
        req_fail(r, "request too large");
        return;
    }
    if (!c->ac) {
        req_fail(r, c->last_error[0] ? c->last_error : "not connected");
        return;
    }
    if (redisAsyncCommandArgv(c->ac, on_reply, r, r->argc, (const char **)r->argv, r->argvlen) != REDIS_OK) {
        req_fail(r, "cannot send the command");
        return;
    }
    r->sent_us = sl_now_us();
    r->in_flight = true;
    r->fl_next = NULL;
    r->fl_prev = c->fl_tail;
    if (c->fl_tail)
        c->fl_tail->fl_next = r;
    else
        c->fl_head = r;
    c->fl_tail = r;
}

/* ---- results ---- */

static long long rint_at(const redisReply *a, size_t i)
{
    if (!a || a->type != REDIS_REPLY_ARRAY || i >= a->elements)
        return 0;
    const redisReply *e = a->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return 0;
}

/* HGETALL pairs into info; -1 when it is not a key record. */
static int parse_key(const redisReply *a, sl_key_info *k)
{
    memset(k, 0, sizeof *k);
    if (!a || a->type != REDIS_REPLY_ARRAY || a->elements < 2)
        return -1;
    for (size_t i = 0; i + 1 < a->elements; i += 2) {
        const redisReply *f = a->element[i], *v = a->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        const char *n = f->str, *s = v->str;
        if (!strcmp(n, "id"))
            snprintf(k->id, sizeof k->id, "%s", s);
        else if (!strcmp(n, "hash"))
            snprintf(k->hash, sizeof k->hash, "%s", s);
        else if (!strcmp(n, "prefix"))
            snprintf(k->prefix, sizeof k->prefix, "%s", s);
        else if (!strcmp(n, "consumer"))
            snprintf(k->consumer, sizeof k->consumer, "%s", s);
        else if (!strcmp(n, "name"))
            snprintf(k->name, sizeof k->name, "%s", s);
        else if (!strcmp(n, "created"))
            k->created = strtoll(s, NULL, 10);
        else if (!strcmp(n, "expires"))
            k->expires = strtoll(s, NULL, 10);
        else if (!strcmp(n, "revoked"))
            k->revoked = strtoll(s, NULL, 10);
    }
    return k->id[0] && k->consumer[0] ? 0 : -1;
}

static kslot *cache_slot(rconn *c, const char *hash)
{
    return &c->cache[sl_store_hash(hash, 64) % CACHE_SLOTS];
}

static void cache_put(rconn *c, const char *hash, sl_store_status st, const sl_key_info *k)
{
    kslot *e = cache_slot(c, hash);
    e->used = true;
    e->st = st;
    e->at_ms = sl_now_ms();
    if (k)
        e->info = *k;
    else
        memset(&e->info, 0, sizeof e->info);
    snprintf(e->info.hash, sizeof e->info.hash, "%s", hash);
}

/* The cached answer for hash (fresh only unless stale_ok), or NULL. */
static kslot *cache_get(rconn *c, const char *hash, bool stale_ok)
{
    kslot *e = cache_slot(c, hash);
    if (!e->used || !sl_key_hash_equal(e->info.hash, hash))
        return NULL;
    if (!stale_ok && sl_now_ms() - e->at_ms >= c->s->cache_ms)
        return NULL;
    return e;
}

static void answer_cached(kslot *e, sl_store_key_cb cb, void *arg)
{
    sl_key_info k = e->info;
    if (e->st != SL_STORE_OK)
        cb(arg, SL_STORE_NOT_FOUND, NULL, NULL, NULL);
    else
        cb(arg, sl_key_status(&k, sl_now_ms() / 1000), &k, NULL, NULL);
}

static int key_cmp(const void *a, const void *b)
{
    const sl_key_info *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->id, y->id);
}

static void queue_settle(rreq *r)
{
    rconn *c = r->c;
    if (c->n_queued >= MAX_QUEUED) {
        fprintf(stderr, "sluice: store: redis unreachable and %d settles queued; dropping %s of %s\n",
                MAX_QUEUED, r->kind == R_FORGET ? "the release of a reserve whose reply was lost" : "usage",
                r->resv.consumer);
        req_free(r);
        return;
    }
    /* Sent, but the connection went before the reply: it may have been applied. The replay
     * then charges only if the reservation is still there (a settle removes it), which is
     * exact as long as Redis is back before the reservation's TTL. */
    if (r->kind == R_SETTLE && r->sent_us && r->resv.id != 0 && !r->maybe_applied) {
        r->maybe_applied = true;
        push(r, "1");
    }
    r->cb.quota = NULL;
    r->retried = false;
    r->next = NULL;
    *c->queued_tail = r;
    c->queued_tail = &r->next;
    c->n_queued++;
}

static lquota *local_get(rconn *c, const char *consumer, sl_window w, int64_t wid)
{
    lquota *q;
    for (q = c->local; q; q = q->next)
        if (q->w == w && q->wid == wid && strcmp(q->consumer, consumer) == 0)
            return q;
    if (!(q = calloc(1, sizeof *q)))
        return NULL;
    snprintf(q->consumer, sizeof q->consumer, "%s", consumer);
    q->w = w;
    q->wid = wid;
    q->next = c->local;
    c->local = q;
    return q;
}

static void local_free(rconn *c)
{
    for (lquota *q = c->local, *n; q; q = n) {
        n = q->next;
        free(q);
    }
    c->local = NULL;
}

/* Redis is away and on_failure is open: reserve against this conn's own count. */
static void reserve_locally(rreq *r)
{
    sl_quota_usage u;
    lquota *q = local_get(r->c, r->resv.consumer, r->w, r->wid);
    int64_t used = q ? q->used : 0, reserved = q ? q->reserved : 0;
    int64_t left = r->limit - used - reserved, min = r->cost, max = r->charge;
    if (q && left > 0 && left >= min) {
        r->resv.id = 0;
        r->resv.amount = left < max ? left : max;
        q->reserved += r->resv.amount;
        sl_usage_fill(&u, r->w, r->wid, r->limit, q->used, q->reserved, 0);
        r->cb.quota(r->arg, SL_STORE_OK, &r->resv, &u, NULL);
        return;
    }
    sl_usage_fill(&u, r->w, r->wid, r->limit, used, reserved, 0);
    r->cb.quota(r->arg, SL_STORE_DENIED, NULL, &u, NULL);
}

static void settle_locally(rreq *r, sl_quota_usage *u)
{
    lquota *q = local_get(r->c, r->resv.consumer, r->w, r->wid);
    if (q) {
        if (r->resv.id == 0)
            q->reserved = q->reserved > r->resv.amount ? q->reserved - r->resv.amount : 0;
        if (r->charge >= 0)
            q->used += r->charge;
    }
    sl_usage_fill(u, r->w, r->wid, 0, q ? q->used : 0, q ? q->reserved : 0, 0);
}

/* The connection is down or the command failed in transit. */
static void req_fail(rreq *r, const char *why)
{
    rconn *c = r->c;
    sl_err err;
    bool open = c->s->base.fail_open;
    sl_err_set(&err, "store unavailable: redis %s: %s", c->s->unix_path ? c->s->unix_path : c->s->host, why);
    switch (r->kind) {
    case R_ISSUE: case R_REVOKE:
        r->cb.key(r->arg, SL_STORE_UNAVAILABLE, NULL, NULL, &err);
        break;
    case R_LIST:
        r->cb.keys(r->arg, SL_STORE_UNAVAILABLE, NULL, 0, &err);
        break;
    case R_LOOKUP: {
        kslot *e = open ? cache_get(c, r->info.hash, true) : NULL;
        if (e)
            answer_cached(e, r->cb.key, r->arg);
        else
            r->cb.key(r->arg, SL_STORE_UNAVAILABLE, NULL, NULL, &err);
        break;
    }
    case R_RESERVE: {
        uint64_t sent_id = r->sent_us ? r->resv.id : 0;
        if (open) {
            reserve_locally(r);
        } else {
            r->cb.quota(r->arg, SL_STORE_UNAVAILABLE, NULL, NULL, &err);
        }
        if (sent_id) {                      /* Redis may have made it: take it back later */
            to_forget(r, sent_id);
            queue_settle(r);
            return;                         /* kept */
        }
        break;
    }
    case R_FORGET:
        queue_settle(r);
        return;
    case R_SETTLE:
        if (r->cb.quota) {
            sl_quota_usage u;
            settle_locally(r, &u);
            r->cb.quota(r->arg, SL_STORE_OK, &r->resv, &u, NULL);
        }
        if (r->resv.id == 0 && r->charge < 0)
            break;                          /* a local reservation released: nothing to send */
        queue_settle(r);
        return;                             /* kept */
    case R_USAGE:
        r->cb.quota(r->arg, SL_STORE_UNAVAILABLE, NULL, NULL, &err);
        break;
    case R_RATE:
        if (open) {
            sl_rate_result rr = {true, r->limit, r->limit, 0, 0};
            r->cb.rate(r->arg, SL_STORE_OK, &rr, NULL);
        } else {
            r->cb.rate(r->arg, SL_STORE_UNAVAILABLE, NULL, &err);
        }
        break;
    }
    req_free(r);
}

static void req_error(rreq *r, const char *msg)
{
    sl_err err;
    sl_err_set(&err, "store: redis: %s", msg);
    switch (r->kind) {
    case R_ISSUE: case R_REVOKE: case R_LOOKUP:
        r->cb.key(r->arg, SL_STORE_ERROR, NULL, NULL, &err);
        break;
    case R_LIST:
        r->cb.keys(r->arg, SL_STORE_ERROR, NULL, 0, &err);
        break;
    case R_RESERVE: case R_SETTLE: case R_USAGE: case R_FORGET:
        if (r->cb.quota)
            r->cb.quota(r->arg, SL_STORE_ERROR, NULL, NULL, &err);
        else
            fprintf(stderr, "sluice: %s\n", err.msg);
        break;
    case R_RATE:
        r->cb.rate(r->arg, SL_STORE_ERROR, NULL, &err);
        break;
    }
}

static void req_done(rreq *r, const redisReply *a)
{
    rconn *c = r->c;
    sl_quota_usage u;
    switch (r->kind) {
    case R_ISSUE:
        r->cb.key(r->arg, SL_STORE_OK, &r->info, r->plain, NULL);
        break;
    case R_LOOKUP: {
        sl_key_info k;
        if (parse_key(a, &k) < 0) {
            cache_put(c, r->info.hash, SL_STORE_NOT_FOUND, NULL);
            r->cb.key(r->arg, SL_STORE_NOT_FOUND, NULL, NULL, NULL);
        } else {
            cache_put(c, r->info.hash, SL_STORE_OK, &k);
            r->cb.key(r->arg, sl_key_status(&k, sl_now_ms() / 1000), &k, NULL, NULL);
        }
        break;
    }
    case R_REVOKE: {
        sl_key_info k;
        if (parse_key(a, &k) < 0) {
            sl_err err;
            sl_err_set(&err, "no key with id %s", r->info.id);
            r->cb.key(r->arg, SL_STORE_NOT_FOUND, NULL, NULL, &err);
        } else {
            cache_put(c, k.hash, SL_STORE_OK, &k);
            r->cb.key(r->arg, SL_STORE_OK, &k, NULL, NULL);
        }
        break;
    }
    case R_LIST: {
        size_t n = 0;
        sl_key_info *v = calloc(a->elements ? a->elements : 1, sizeof *v);
        if (!v) {
            req_error(r, "out of memory");
            break;
        }
        for (size_t i = 0; i < a->elements; i++)
            if (parse_key(a->element[i], &v[n]) == 0)
                n++;
        if (n > 1)
            qsort(v, n, sizeof *v, key_cmp);
        r->cb.keys(r->arg, SL_STORE_OK, v, n, NULL);
        free(v);
        break;
    }
    case R_RESERVE: {
        bool ok = rint_at(a, 0) == 1;
        sl_usage_fill(&u, r->w, r->wid, r->limit, rint_at(a, 3), rint_at(a, 4), rint_at(a, 5));
        r->resv.amount = rint_at(a, 2);     /* resv.id is ours, sent with the reserve */
        r->cb.quota(r->arg, ok ? SL_STORE_OK : SL_STORE_DENIED, ok ? &r->resv : NULL, &u, NULL);
        break;
    }
    case R_SETTLE:
        if (r->cb.quota) {
            sl_usage_fill(&u, r->w, r->wid, 0, rint_at(a, 1), rint_at(a, 2), rint_at(a, 3));
            r->cb.quota(r->arg, SL_STORE_OK, &r->resv, &u, NULL);
        }
        break;
    case R_USAGE:
        sl_usage_fill(&u, r->w, r->wid, r->limit, rint_at(a, 0), rint_at(a, 1), rint_at(a, 2));
        r->cb.quota(r->arg, SL_STORE_OK, NULL, &u, NULL);
        break;
    case R_RATE: {
        sl_rate_result rr = {rint_at(a, 0) == 1, r->limit, rint_at(a, 1), rint_at(a, 2), rint_at(a, 3)};
        r->cb.rate(r->arg, rr.allowed ? SL_STORE_OK : SL_STORE_DENIED, &rr, NULL);
        break;
    }
    case R_FORGET:
        if (a && a->type == REDIS_REPLY_INTEGER && a->integer == 1)
            fprintf(stderr, "sluice: store: a reservation of %s whose reply was lost with the connection was "
                    "released\n", r->resv.consumer);
        break;
    }
}

static void unlink_flight(rreq *r)
{
    rconn *c = r->c;
    if (!r->in_flight)
        return;
    if (r->fl_prev)
        r->fl_prev->fl_next = r->fl_next;
    else
        c->fl_head = r->fl_next;
    if (r->fl_next)
        r->fl_next->fl_prev = r->fl_prev;
    else
        c->fl_tail = r->fl_prev;
    r->in_flight = false;
}

/* Error replies that mean "not now" rather than "no": LOADING, BUSY, MASTERDOWN. */
static bool not_serving(const char *msg)
{
    return strncmp(msg, "LOADING", 7) == 0 || strncmp(msg, "BUSY", 4) == 0 || strncmp(msg, "MASTERDOWN", 10) == 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rreq *r = priv;
    redisReply *a = reply;
    unlink_flight(r);
    if (r->c->closing) {
        req_free(r);
        return;
    }
    if (!a) {
        req_fail(r, r->c->last_error[0] ? r->c->last_error : "connection lost");
        return;
    }
    if (a->type == REDIS_REPLY_ERROR && not_serving(a->str)) {
        /* Redis answers but runs nothing yet (a restart still loading its data, a script
         * that will not end): the command was not run, so it goes the way of one that never
         * left (a settle is queued, not dropped, and carries no "may have been applied"),
         * and the connection is made again with backoff: the queue follows then. */
        rconn *c = r->c;
        snprintf(c->last_error, sizeof c->last_error, "%s", a->str);
        r->sent_us = 0;
        req_fail(r, c->last_error); /* r may be freed there */
        if (c->ac == ac)
            redisAsyncDisconnect(ac); /* once the replies in flight are in */
        return;
    }
    if (a->type == REDIS_REPLY_ERROR && r->script >= 0 && !r->retried &&
        strncmp(a->str, "NOSCRIPT", 8) == 0) {
        r->retried = true;
        free(r->argv[0]);
        free(r->argv[1]);
        r->argv[0] = strdup("EVAL");
        r->argv[1] = strdup(sl_redis_scripts[r->script]);
        if (!r->argv[0] || !r->argv[1]) {
            req_error(r, "out of memory");
            req_free(r);
            return;
        }
        r->argvlen[0] = 4;
        r->argvlen[1] = strlen(r->argv[1]);
        req_send(r);
        return;
    }
    if (a->type == REDIS_REPLY_ERROR)
        req_error(r, a->str);
    else
        req_done(r, a);
    req_free(r);
}

/* ---- connection ---- */

static void schedule_retry(rconn *c)
{
    if (c->closing || evtimer_pending(c->retry, NULL))
        return;
    struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
    evtimer_add(c->retry, &tv);
    c->backoff_ms = c->backoff_ms * 2 > 5000 ? 5000 : c->backoff_ms * 2;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rconn *c = ac->data;
    if (status != REDIS_OK) {
        snprintf(c->last_error, sizeof c->last_error, "%s", ac->errstr);
        c->ac = NULL;
        schedule_retry(c);
        return;
    }
    c->backoff_ms = 100;
    c->connected = true;
    c->last_error[0] = '\0';
    local_free(c);              /* Redis counts again; the queued settles follow */
    /* Send the settles that waited for the connection. */
    rreq *q = c->queued;
    c->queued = NULL;
    c->queued_tail = &c->queued;
    c->n_queued = 0;
    while (q) {
        rreq *next = q->next;
        req_send(q);
        q = next;
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rconn *c = ac->data;
    if (status != REDIS_OK)
        snprintf(c->last_error, sizeof c->last_error, "%s", ac->errstr);
    else
        snprintf(c->last_error, sizeof c->last_error, "disconnected");
    c->ac = NULL;
    c->connected = false;
    schedule_retry(c);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    rconnect(arg);
}

/* hiredis 0.14 has no connect or command timeout: a Redis that stops answering (or a
 * connect that hangs) is dropped here, which fails every command in flight. */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    rconn *c = arg;
    int64_t now = sl_now_us(), limit = (int64_t)c->s->timeout_ms * 1000;
    bool stuck = c->ac && ((!c->connected && now - c->connect_started_us > limit) ||
                           (c->fl_head && now - c->fl_head->sent_us > limit));
    if (!stuck)
        return;
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;               /* new commands fail at once while this one is freed */
    c->connected = false;
    snprintf(c->last_error, sizeof c->last_error, "no answer within %d ms", c->s->timeout_ms);
    redisAsyncFree(ac);         /* fails every command in flight */
    snprintf(c->last_error, sizeof c->last_error, "no answer within %d ms", c->s->timeout_ms);
    schedule_retry(c);
}

static void rconnect(rconn *c)
{
    rstore *s = c->s;
    redisAsyncContext *ac = s->unix_path ? redisAsyncConnectUnix(s->unix_path)
                                         : redisAsyncConnect(s->host, s->port);
    if (!ac || ac->err) {
        snprintf(c->last_error, sizeof c->last_error, "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    ac->data = c;
    if (redisLibeventAttach(ac, c->base.base) != REDIS_OK) {
        snprintf(c->last_error, sizeof c->last_error, "cannot attach to the event loop");
        redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->connected = false;
    c->connect_started_us = sl_now_us();
    if (s->password)
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", s->password);
    if (s->db)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", s->db);
    for (int i = 0; i < SL_LUA_COUNT; i++)
        redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", sl_redis_scripts[i]);
}

static sl_store_conn *r_conn_open(sl_store *bs, struct event_base *base, sl_err *err)
{
    if (!base) {
        sl_err_set(err, "store: the redis store needs an event loop per conn");
        return NULL;
    }
    rconn *c = calloc(1, sizeof *c);
    if (!c || !(c->retry = evtimer_new(base, on_retry, c)) ||
        !(c->watch = event_new(base, -1, EV_PERSIST, on_watch, c))) {
        if (c && c->retry)
            event_free(c->retry);
        free(c);
        sl_err_set(err, "store: out of memory");
        return NULL;
    }
    c->base.store = bs;
    c->base.base = base;
    c->s = (rstore *)bs;
    c->backoff_ms = 100;
    c->queued_tail = &c->queued;
    while (!c->id_prefix)
        if (RAND_bytes((unsigned char *)&c->id_prefix, sizeof c->id_prefix) != 1)
            c->id_prefix = (uint32_t)(sl_now_us() ^ (uintptr_t)c) | 1;
    struct timeval tick = {0, 250 * 1000};
    event_add(c->watch, &tick);
    rconnect(c);
    return &c->base;
}

static void r_conn_close(sl_store_conn *bc)
{
    rconn *c = (rconn *)bc;
    c->closing = true;
    if (c->ac)
        redisAsyncFree(c->ac);      /* runs pending callbacks with no reply: freed there */
    c->ac = NULL;
    for (rreq *q = c->queued, *n; q; q = n) {
        n = q->next;
        req_free(q);
    }
    if (c->n_queued)
        fprintf(stderr, "sluice: store: closing with %zu settles not sent to redis\n", c->n_queued);
    local_free(c);
    event_free(c->retry);
    event_free(c->watch);
    free(c);
}

/* ---- operations ---- */

static rreq *new_or_fail_key(rconn *c, rkind kind, int script, sl_store_key_cb cb, void *arg)
{
    rreq *r = req_new(c, kind, script, arg);
    if (!r) {
        sl_err err;
        sl_err_set(&err, "store: out of memory");
        cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
        return NULL;
    }
    r->cb.key = cb;
    return r;
}

static void r_key_issue(sl_store_conn *bc, const sl_key_info *k, const char *plaintext,
                        sl_store_key_cb cb, void *arg)
{
    rconn *c = (rconn *)bc;
    const char *p = c->s->prefix;
    rreq *r = new_or_fail_key(c, R_ISSUE, SL_LUA_KEY_ISSUE, cb, arg);
    if (!r)
        return;
    r->info = *k;
    snprintf(r->plain, sizeof r->plain, "%s", plaintext);
    script_head(r, 4);
    push(r, "%skey:%s", p, k->hash);
    push(r, "%skeyid:%s", p, k->id);
    push(r, "%skeys:%s", p, k->consumer);
    push(r, "%skeys", p);
    push(r, "%s", k->id);
    push(r, "%s", k->hash);
    push(r, "%s", k->prefix);
    push(r, "%s", k->consumer);
    push(r, "%s", k->name);
    push(r, "%lld", (long long)k->created);
    push(r, "%lld", (long long)k->expires);
    req_send(r);
}

static void r_key_lookup(sl_store_conn *bc, const char *hash, sl_store_key_cb cb, void *arg)
{
    rconn *c = (rconn *)bc;
    kslot *e = cache_get(c, hash, false);
    if (e) {
        answer_cached(e, cb, arg);
        return;
    }
    rreq *r = new_or_fail_key(c, R_LOOKUP, -1, cb, arg);
    if (!r)
        return;
    snprintf(r->info.hash, sizeof r->info.hash, "%s", hash);
    push(r, "HGETALL");
    push(r, "%skey:%s", c->s->prefix, hash);
    req_send(r);
}

static void r_key_list(sl_store_conn *bc, const char *consumer, sl_store_keys_cb cb, void *arg)
{
    rconn *c = (rconn *)bc;
    const char *p = c->s->prefix;
    rreq *r = req_new(c, R_LIST, SL_LUA_KEY_LIST, arg);
    if (!r) {
        sl_err err;
        sl_err_set(&err, "store: out of memory");
        cb(arg, SL_STORE_ERROR, NULL, 0, &err);
        return;
    }
    r->cb.keys = cb;
    script_head(r, 1);
    if (consumer)
        push(r, "%skeys:%s", p, consumer);
    else
        push(r, "%skeys", p);
    push(r, "%skey:", p);
    push(r, "%skeyid:", p);
    req_send(r);
}

static void r_key_revoke(sl_store_conn *bc, const char *id, sl_store_key_cb cb, void *arg)
{
    rconn *c = (rconn *)bc;
    rreq *r = new_or_fail_key(c, R_REVOKE, SL_LUA_KEY_REVOKE, cb, arg);
    if (!r)
        return;
    snprintf(r->info.id, sizeof r->info.id, "%s", id);
    script_head(r, 1);
    push(r, "%skeyid:%s", c->s->prefix, id);
    push(r, "%skey:", c->s->prefix);
    req_send(r);
}

/* KEYS q qz of a quota window. */
static void quota_keys(rreq *r, const char *consumer, sl_window w, int64_t wid)
{
    const char *p = r->c->s->prefix;
    push(r, "%sq:%d:%lld:%s", p, (int)w, (long long)wid, consumer);
    push(r, "%sqz:%d:%lld:%s", p, (int)w, (long long)wid, consumer);
}

/* r (a reserve that was sent, whose reply never came) becomes the release of the
 * reservation it may have made: sent on the next connection, answered to nobody. */
static void to_forget(rreq *r, uint64_t id)
{
    for (int i = 0; i < r->argc; i++)
        free(r->argv[i]);
    r->argc = 0;
    r->kind = R_FORGET;
    r->script = SL_LUA_FORGET;
    r->retried = false;
    r->sent_us = 0;
    r->cb.quota = NULL;
    script_head(r, 2);
    quota_keys(r, r->resv.consumer, r->resv.window, r->resv.window_id);
    push(r, "%llu", (unsigned long long)id);
}

/* Seconds a window's keys live: to its end plus a day (total: forever). */
static long long window_expire(sl_window w, int64_t wid)
{
    int64_t end = sl_window_end(w, wid);
    if (!end)
        return 0;
    int64_t left = end - (int64_t)time(NULL);
    return (long long)(left > 0 ? left : 0) + 86400;
}

static rreq *new_or_fail_quota(rconn *c, rkind kind, int script, sl_store_quota_cb cb, void *arg)
{
    rreq *r = req_new(c, kind, script, arg);
    if (!r) {
        sl_err err;
        sl_err_set(&err, "store: out of memory");
        cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
        return NULL;
    }
    r->cb.quota = cb;
    return r;
}

static void r_quota_reserve(sl_store_conn *bc, const char *consumer, sl_window w, int64_t wid,
                            int64_t limit, int64_t min, int64_t max, sl_store_quota_cb cb, void *arg)
{
    rconn *c = (rconn *)bc;
    rreq *r = new_or_fail_quota(c, R_RESERVE, SL_LUA_RESERVE, cb, arg);
    if (!r)
        return;
    snprintf(r->resv.consumer, sizeof r->resv.consumer, "%s", consumer);
    r->resv.window = r->w = w;
    r->resv.window_id = r->wid = wid;
    r->limit = limit;
    r->charge = max;
    r->cost = min;
    /* unique among the conns of every gateway sharing this Redis: a random 32-bit prefix
     * per conn and a counter (never 0, which means a local reservation) */
    r->resv.id = (uint64_t)c->id_prefix << 32 | ++c->id_next;
    script_head(r, 2);
    quota_keys(r, consumer, w, wid);
    push(r, "%lld", (long long)limit);
    push(r, "%lld", (long long)min);
    push(r, "%lld", (long long)max);
    push(r, "%lld", (long long)c->s->base.resv_ttl_ms);
    push(r, "%lld", window_expire(w, wid));
    push(r, "%llu", (unsigned long long)r->resv.id);
    req_send(r);
}

static void r_quota_settle(sl_store_conn *bc, const sl_quota_resv *resv, int64_t charge,
                           sl_store_quota_cb cb, void *arg)
{
    rconn *c = (rconn *)bc;
    rreq *r = new_or_fail_quota(c, R_SETTLE, SL_LUA_SETTLE, cb, arg);
    if (!r)
        return;
    r->resv = *resv;
    r->w = resv->window;
    r->wid = resv->window_id;
    r->charge = charge;
    script_head(r, 2);
    quota_keys(r, resv->consumer, resv->window, resv->window_id);
    push(r, "%llu", (unsigned long long)resv->id);
    push(r, "%lld", (long long)resv->amount);
    push(r, "%lld", (long long)charge);
    push(r, "%lld", window_expire(resv->window, resv->window_id));
    req_send(r);
}

static void r_quota_usage(sl_store_conn *bc, const char *consumer, sl_window w, int64_t wid,
                          int64_t limit, sl_store_quota_cb cb, void *arg)
{
    rconn *c = (rconn *)bc;
    rreq *r = new_or_fail_quota(c, R_USAGE, SL_LUA_USAGE, cb, arg);
    if (!r)
        return;
    r->w = w;
    r->wid = wid;
    r->limit = limit;
    script_head(r, 2);
    quota_keys(r, consumer, w, wid);
    req_send(r);
}

static void r_rate(sl_store_conn *bc, const char *key, int64_t limit, int64_t cost,
                   sl_rate_mode mode, sl_store_rate_cb cb, void *arg)
{
    static const char *const modes[] = {"check", "add", "peek"};
    rconn *c = (rconn *)bc;
    rreq *r = req_new(c, R_RATE, SL_LUA_RATE, arg);
    if (!r) {
        sl_err err;
        sl_err_set(&err, "store: out of memory");
        cb(arg, SL_STORE_ERROR, NULL, &err);
        return;
    }
    r->cb.rate = cb;
    r->limit = limit;
    r->cost = cost;
    script_head(r, 1);
    push(r, "%srl:%s", c->s->prefix, key);
    push(r, "%lld", (long long)limit);
    push(r, "%lld", (long long)cost);
    push(r, "%s", modes[mode]);
    req_send(r);
}

/* ---- the store ---- */

static void r_close(sl_store *bs)
{
    rstore *s = (rstore *)bs;
    free(s->host);
    free(s->unix_path);
    if (s->password) {
        memset(s->password, 0, strlen(s->password));
        free(s->password);
    }
    free(s->prefix);
    free(s);
}

static const sl_store_vt redis_vt = {
    .close = r_close,
    .conn_open = r_conn_open,
    .conn_close = r_conn_close,
    .key_issue = r_key_issue,
    .key_lookup = r_key_lookup,
    .key_list = r_key_list,
    .key_revoke = r_key_revoke,
    .quota_reserve = r_quota_reserve,
    .quota_settle = r_quota_settle,
    .quota_usage = r_quota_usage,
    .rate = r_rate,
};

/* redis://[[user]:password@]host[:port][/db] or unix:/path (unix:///path). */
static int parse_url(rstore *s, const char *url, sl_err *err)
{
    if (!url || !*url)
        url = "redis://127.0.0.1:6379/0";
    if (strncmp(url, "unix:", 5) == 0) {
        const char *p = url + 5;
        while (p[0] == '/' && p[1] == '/')
            p++;
        if (!*p)
            goto bad;
        return (s->unix_path = strdup(p)) ? 0 : -1;
    }
    if (strncmp(url, "redis://", 8) != 0)
        goto bad;
    const char *p = url + 8, *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if (!(s->password = strndup(pw, (size_t)(at - pw))))
            return -1;
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0)
        goto bad;
    if (!(s->host = strndup(p, hl)))
        return -1;
    p += hl;
    s->port = 6379;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port <= 0 || port > 65535)
            goto bad;
        s->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || db < 0)
            goto bad;
        s->db = (int)db;
    }
    return 0;
bad:
    sl_err_set(err, "store.redis.url %s: expected redis://[:password@]host[:port][/db] or unix:/path/to/socket", url);
    return -1;
}

sl_store *sl_store_redis_open(const sl_store_opts *o, sl_err *err)
{
    rstore *s = calloc(1, sizeof *s);
    if (!s) {
        sl_err_set(err, "store: out of memory");
        return NULL;
    }
    s->base.vt = &redis_vt;
    s->cache_ms = o->key_cache_ms > 0 ? o->key_cache_ms : 500;
    s->timeout_ms = o->redis_timeout_ms > 0 ? o->redis_timeout_ms : 2000;
    if (parse_url(s, o->redis_url, err) < 0)
        goto fail;
    if (!(s->prefix = strdup(o->redis_prefix ? o->redis_prefix : "sluice:"))) {
        sl_err_set(err, "store: out of memory");
        goto fail;
    }
    for (int i = 0; i < SL_LUA_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)sl_redis_scripts[i], strlen(sl_redis_scripts[i]), md);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++)
            snprintf(s->sha[i] + 2 * j, 3, "%02x", md[j]);
    }
    return &s->base;
fail:
    r_close(&s->base);
    return NULL;
}
