/* The memory store: sharded hash tables (one mutex per shard) for keys, quota windows and
 * rate buckets, persisted through a journal (store_journal.c). Each conn buffers its own
 * journal records under its own mutex; one writer thread collects every buffer every
 * flush period (10 ms) and writes them. It fdatasyncs at least every sync period (1 s),
 * and at once when a key's issue or revocation waits to be answered: it then hands those
 * callbacks back to their conn's event loop through an eventfd. So a kill -9 may lose the
 * last flush period of usage, a power cut the last sync period (never an issued key that a
 * client saw). Bytes written but not yet synced are kept: when a sync fails, the journal is
 * cut back to its last synced end and they are written again. The journal is replayed and
 * compacted (snapshot) on open. */
#include "coarse_clock.h"
#include "fmt_int.h"
#include "store_int.h"
#include "store_journal.h"
#include "str_copy.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#define NSHARD 64
#define NBUCKET 1024
#define SEP '\x1f'

typedef struct mkey {
    struct mkey *next;
    sl_key_info info;
} mkey;

typedef struct mresv {
    uint64_t id;
    int64_t amount;
    int64_t deadline_ms;
} mresv;

typedef struct mquota {
    struct mquota *next;
    char consumer[SL_STORE_NAME_MAX];
    sl_window w;
    int64_t wid, used, reserved, requests;
    uint64_t seq;
    mresv *resv;
    size_t n, cap;
    int64_t expiry_ms;              /* no reservation expires before this (a lower bound) */
} mquota;

typedef struct mrate {
    struct mrate *next;
    double level;
    int64_t last_us;
    char key[];
} mrate;

typedef struct shard {
    pthread_mutex_t mu;
    mkey *keys[NBUCKET];
    mquota *quota[NBUCKET];
    mrate *rate[NBUCKET];
} shard;

/* A key callback waiting for its record to be durable. */
typedef struct mdone {
    struct mdone *next;
    sl_store_key_cb cb;
    void *arg;
    sl_store_status st;
    sl_key_info info;
    char plain[SL_KEY_SIZE];
    sl_err err;
} mdone;

typedef struct mconn mconn;

typedef struct mstore {
    sl_store base;
    shard *shards;
    char *path;
    int fd;
    int flush_ms;
    int sync_ms;                    /* < 0: every batch */
    pthread_t writer;
    bool writer_running, stopping;
    pthread_mutex_t reg_mu;         /* conn list; taken by conn open/close and the writer */
    pthread_cond_t reg_cond;
    mconn *conns;
    sl_jbuf orphan;                 /* records of closed conns, or of a failed write, not yet written */
    sl_jbuf unsynced;               /* what was written after synced_end (to write again if a sync fails) */
    off_t journal_end;              /* bytes of whole records in the journal */
    off_t synced_end;               /* of those, bytes known durable */
    long long synced_ms;            /* when the last sync was (sl_coarse_ms) */
    atomic_bool journal_broken;     /* the last write or sync failed (disk full): refuse new reservations */
    size_t replay_records, replay_dropped;
} mstore;

struct mconn {
    sl_store_conn base;
    mstore *s;
    pthread_mutex_t mu;             /* this conn's buffer and lists: conn thread + writer */
    sl_jbuf buf;
    mdone *wait, **wait_tail;       /* records in buf, not yet written */
    mdone *flushing, **flushing_tail; /* being written by the writer */
    mdone *done, **done_tail;       /* durable, callbacks to run on the loop */
    int efd;
    struct event *ev;
    mconn *next;
};

static shard *shard_of(mstore *s, uint64_t h)
{
    return &s->shards[h % NSHARD];
}

static size_t bucket_of(uint64_t h)
{
    return (size_t)(h / NSHARD) % NBUCKET;
}

/* ---- journal records ---- */

static int split(char *p, size_t len, char **f, int max)
{
    int n = 0;
    f[n++] = p;
    for (size_t i = 0; i < len && n < max; i++)
        if (p[i] == SEP) {
            p[i] = '\0';
            f[n++] = p + i + 1;
        }
    return n;
}

static int rec_key(sl_jbuf *b, const sl_key_info *k)
{
    char p[SL_JOURNAL_MAX_RECORD];
    int n = snprintf(p, sizeof p, "K%c%s%c%s%c%s%c%s%c%s%c%lld%c%lld%c%lld", SEP, k->id, SEP,
                     k->hash, SEP, k->prefix, SEP, k->consumer, SEP, k->name, SEP,
                     (long long)k->created, SEP, (long long)k->expires, SEP, (long long)k->revoked);
    return sl_jbuf_record(b, p, (size_t)n);
}

static int rec_revoke(sl_jbuf *b, const char *id, int64_t when)
{
    char p[128];
    int n = snprintf(p, sizeof p, "R%c%s%c%lld", SEP, id, SEP, (long long)when);
    return sl_jbuf_record(b, p, (size_t)n);
}

static int rec_usage(sl_jbuf *b, const char *consumer, sl_window w, int64_t wid, int64_t used,
                     int64_t requests)
{
    /* one a request: written without printf */
    char p[SL_JOURNAL_MAX_RECORD];
    size_t cl = strlen(consumer), n = 0;
    if (cl + 4 * SL_FMT_INT_MAX + 8 > sizeof p)
        return -1;
    p[n++] = 'U';
    p[n++] = SEP;
    memcpy(p + n, consumer, cl);
    n += cl;
    const long long v[] = {(long long)w, (long long)wid, (long long)used, (long long)requests};
    for (size_t i = 0; i < 4; i++) {
        p[n++] = SEP;
        n += sl_fmt_int(p + n, v[i]);
    }
    return sl_jbuf_record(b, p, n);
}

/* ---- tables (caller holds the shard lock) ---- */

static uint64_t quota_hash(const char *consumer, sl_window w)
{
    return sl_store_hash(consumer, strlen(consumer)) ^ ((uint64_t)w * 0x9E3779B97F4A7C15ULL);
}

static mkey *key_find(shard *sh, uint64_t h, const char *hash)
{
    for (mkey *k = sh->keys[bucket_of(h)]; k; k = k->next)
        if (sl_key_hash_equal(k->info.hash, hash))
            return k;
    return NULL;
}

static int key_put(mstore *s, const sl_key_info *info)
{
    uint64_t h = sl_store_hash(info->hash, strlen(info->hash));
    shard *sh = shard_of(s, h);
    pthread_mutex_lock(&sh->mu);
    mkey *k = key_find(sh, h, info->hash);
    if (!k && (k = calloc(1, sizeof *k))) {
        k->next = sh->keys[bucket_of(h)];
        sh->keys[bucket_of(h)] = k;
    }
    if (k)
        k->info = *info;
    pthread_mutex_unlock(&sh->mu);
    return k ? 0 : -1;
}

/* The window entry of consumer/w for window id wid: made when missing, reset when it
 * holds an older window. NULL when it holds a newer one (a late settle) or out of memory. */
static mquota *quota_get(shard *sh, uint64_t h, const char *consumer, sl_window w, int64_t wid,
                         bool create)
{
    mquota **head = &sh->quota[bucket_of(h)], *q;
    for (q = *head; q; q = q->next)
        if (q->w == w && strcmp(q->consumer, consumer) == 0)
            break;
    if (!q) {
        if (!create || !(q = calloc(1, sizeof *q)))
            return NULL;
        snprintf(q->consumer, sizeof q->consumer, "%s", consumer);
        q->w = w;
        q->wid = wid;
        q->next = *head;
        *head = q;
    }
    if (q->wid > wid)
        return NULL;
    if (q->wid < wid) {
        q->wid = wid;
        q->used = q->reserved = q->requests = 0;
        q->n = 0;
    }
    return q;
}

/* Drops expired reservations; the list is walked only once one may have expired (it is as
 * long as the consumer's requests in flight, and every admission comes here). */
static void quota_reclaim(mquota *q, int64_t now_ms)
{
    if (now_ms < q->expiry_ms)
        return;
    size_t j = 0;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < q->n; i++) {
        if (q->resv[i].deadline_ms <= now_ms) {
            q->reserved -= q->resv[i].amount;
        } else {
            next = q->resv[i].deadline_ms < next ? q->resv[i].deadline_ms : next;
            q->resv[j++] = q->resv[i];
        }
    }
    q->n = j;
    q->expiry_ms = next;
}

/* ---- replay and compaction ---- */

static void replay_record(void *arg, const char *payload, size_t len)
{
    mstore *s = arg;
    char copy[SL_JOURNAL_MAX_RECORD + 1], *f[10];
    memcpy(copy, payload, len);
    copy[len] = '\0';
    int n = split(copy, len, f, 10);
    if (f[0][0] == 'K' && n == 9) {
        sl_key_info k;
        memset(&k, 0, sizeof k);
        snprintf(k.id, sizeof k.id, "%s", f[1]);
        snprintf(k.hash, sizeof k.hash, "%s", f[2]);
        snprintf(k.prefix, sizeof k.prefix, "%s", f[3]);
        snprintf(k.consumer, sizeof k.consumer, "%s", f[4]);
        snprintf(k.name, sizeof k.name, "%s", f[5]);
        k.created = strtoll(f[6], NULL, 10);
        k.expires = strtoll(f[7], NULL, 10);
        k.revoked = strtoll(f[8], NULL, 10);
        key_put(s, &k);
    } else if (f[0][0] == 'R' && n == 3) {
        for (size_t i = 0; i < NSHARD; i++)
            for (size_t b = 0; b < NBUCKET; b++)
                for (mkey *k = s->shards[i].keys[b]; k; k = k->next)
                    if (strcmp(k->info.id, f[1]) == 0 && !k->info.revoked)
                        k->info.revoked = strtoll(f[2], NULL, 10);
    } else if (f[0][0] == 'U' && n == 6) {
        sl_window w = (sl_window)atoi(f[2]);
        if ((unsigned)w > SL_WINDOW_TOTAL || !*f[1] || strlen(f[1]) >= SL_STORE_NAME_MAX)
            return;
        uint64_t h = quota_hash(f[1], w);
        mquota *q = quota_get(shard_of(s, h), h, f[1], w, strtoll(f[3], NULL, 10), true);
        if (q) {
            q->used += strtoll(f[4], NULL, 10);
            q->requests += strtoll(f[5], NULL, 10);
        }
    }
}

static int snapshot(mstore *s, sl_jbuf *b)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < NSHARD; i++)
        for (size_t j = 0; j < NBUCKET; j++) {
            for (mkey *k = s->shards[i].keys[j]; k; k = k->next)
                if (rec_key(b, &k->info) < 0)
                    return -1;
            for (mquota *q = s->shards[i].quota[j]; q; q = q->next)
                if (q->wid == sl_window_id(q->w, now) && (q->used || q->requests) &&
                    rec_usage(b, q->consumer, q->w, q->wid, q->used, q->requests) < 0)
                    return -1;
        }
    return 0;
}

/* ---- the writer thread ---- */

/* Cut the journal back to whole records at end, so that a failed write or sync leaves no
 * half-record. 0, or -1 when the cut failed (then the file keeps what it had). */
static int cut_back(mstore *s, off_t end)
{
    if (ftruncate(s->fd, end) < 0 || lseek(s->fd, end, SEEK_SET) < 0)
        return -1;
    s->journal_end = end;
    return 0;
}

static void journal_failed(mstore *s, const sl_err *err)
{
    if (!atomic_exchange(&s->journal_broken, true))
        fprintf(stderr, "sluice: %s; new requests that spend tokens are refused until it can be written\n", err->msg);
}

/* Write what the conns buffered; sync when a callback waits for it, when the sync period is
 * over, or when final. Failed bytes are kept to write again: nothing already charged is
 * dropped while we run. */
static void flush_pass(mstore *s, bool final)
{
    sl_jbuf all = s->orphan;
    sl_err err = {{0}};
    int rc = 0;
    bool waiting = false;
    memset(&s->orphan, 0, sizeof s->orphan);
    for (mconn *c = s->conns; c; c = c->next) {
        pthread_mutex_lock(&c->mu);
        if (c->buf.len && sl_jbuf_append(&all, c->buf.data, c->buf.len) == 0) {
            c->buf.len = 0;
            *c->flushing_tail = c->wait;
            if (c->wait)
                c->flushing_tail = c->wait_tail;
            c->wait = NULL;
            c->wait_tail = &c->wait;
        }
        waiting |= c->flushing != NULL;
        pthread_mutex_unlock(&c->mu);
    }
    bool lost = false; /* written, but not kept to write again: no memory for it */
    if (all.len) {
        rc = sl_journal_write(s->fd, all.data, all.len, &err);
        if (rc < 0) {
            (void)cut_back(s, s->journal_end); /* if that fails too, replay drops the torn tail */
            s->orphan = all;
        } else {
            s->journal_end += (off_t)all.len;
            if (s->unsynced.len == 0) {
                sl_jbuf_free(&s->unsynced);
                s->unsynced = all;
            } else {
                lost = sl_jbuf_append(&s->unsynced, all.data, all.len) < 0;
                sl_jbuf_free(&all);
            }
        }
    }
    long long now = sl_coarse_ms();
    if (rc == 0 && s->journal_end > s->synced_end &&
        (waiting || final || lost || s->sync_ms < 0 || now - s->synced_ms >= s->sync_ms)) {
        rc = sl_journal_sync(s->fd, &err);
        if (rc < 0 && !lost && cut_back(s, s->synced_end) == 0) {
            /* what the failed sync held is written again (orphan is empty: this pass's write
             * went through, and conns closing wait for reg_mu); where it cannot be cut off,
             * it stays, and the next sync tries again */
            sl_jbuf_free(&s->orphan);
            s->orphan = s->unsynced;
            memset(&s->unsynced, 0, sizeof s->unsynced);
        } else if (rc == 0) {
            s->synced_end = s->journal_end;
            s->synced_ms = now;
            s->unsynced.len = 0;
        }
    }
    if (rc < 0)
        journal_failed(s, &err);
    else if (atomic_exchange(&s->journal_broken, false))
        fprintf(stderr, "sluice: store journal %s is written again\n", s->path);
    if (rc == 0 && s->journal_end > s->synced_end)
        return; /* nothing waits for this batch, and the sync period is not over */
    for (mconn *c = s->conns; c; c = c->next) {
        pthread_mutex_lock(&c->mu);
        mdone *d = c->flushing;
        if (d) {
            for (mdone *x = d; rc < 0 && x; x = x->next) {
                x->st = SL_STORE_ERROR;
                x->err = err;
            }
            *c->done_tail = d;
            c->done_tail = c->flushing_tail;
            c->flushing = NULL;
            c->flushing_tail = &c->flushing;
        }
        pthread_mutex_unlock(&c->mu);
        uint64_t one = 1;
        if (d && write(c->efd, &one, sizeof one) < 0) {
            /* eventfd counter overflow only; the loop drains it anyway */
        }
    }
}

static void *writer_main(void *arg)
{
    mstore *s = arg;
    pthread_mutex_lock(&s->reg_mu);
    for (;;) {
        if (!s->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)s->flush_ms * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&s->reg_cond, &s->reg_mu, &ts);
        }
        flush_pass(s, s->stopping);
        if (s->stopping)
            break;
    }
    pthread_mutex_unlock(&s->reg_mu);
    return NULL;
}

/* Queue rec (a record already framed in tmp) on c; d, when set, waits for durability. */
static void journal_add(mconn *c, const sl_jbuf *rec, mdone *d)
{
    pthread_mutex_lock(&c->mu);
    int rc = sl_jbuf_append(&c->buf, rec->data, rec->len);
    if (d && rc == 0) {
        d->next = NULL;
        *c->wait_tail = d;
        c->wait_tail = &d->next;
    }
    pthread_mutex_unlock(&c->mu);
    if (d && rc < 0) {
        sl_err_set(&d->err, "store journal: out of memory");
        d->cb(d->arg, SL_STORE_ERROR, NULL, NULL, &d->err);
        free(d);
    }
}

static void on_durable(evutil_socket_t fd, short what, void *arg)
{
    mconn *c = arg;
    uint64_t v;
    if (read(c->efd, &v, sizeof v) < 0) {
        /* EAGAIN: another wake-up already drained it */
    }
    pthread_mutex_lock(&c->mu);
    mdone *d = c->done;
    c->done = NULL;
    c->done_tail = &c->done;
    pthread_mutex_unlock(&c->mu);
    while (d) {
        mdone *next = d->next;
        d->cb(d->arg, d->st, d->st == SL_STORE_OK ? &d->info : NULL,
              d->st == SL_STORE_OK && d->plain[0] ? d->plain : NULL,
              d->st == SL_STORE_OK ? NULL : &d->err);
        memset(d->plain, 0, sizeof d->plain);
        free(d);
        d = next;
    }
}

/* Record rec; run cb now (no journal) or once durable. */
static void key_done(mconn *c, sl_jbuf *rec, const sl_key_info *info, const char *plain,
                     sl_store_key_cb cb, void *arg)
{
    if (c->s->fd < 0) {
        cb(arg, SL_STORE_OK, info, plain, NULL);
        return;
    }
    mdone *d = calloc(1, sizeof *d);
    if (!d) {
        sl_err err;
        sl_err_set(&err, "store: out of memory");
        cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
        return;
    }
    d->cb = cb;
    d->arg = arg;
    d->st = SL_STORE_OK;
    d->info = *info;
    if (plain)
        snprintf(d->plain, sizeof d->plain, "%s", plain);
    journal_add(c, rec, d);
}

/* ---- keys ---- */

static void m_key_issue(sl_store_conn *bc, const sl_key_info *k, const char *plaintext,
                        sl_store_key_cb cb, void *arg)
{
    mconn *c = (mconn *)bc;
    sl_jbuf rec = {0};
    sl_err err;
    if (key_put(c->s, k) < 0 || rec_key(&rec, k) < 0) {
        sl_err_set(&err, "store: out of memory");
        cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
        sl_jbuf_free(&rec);
        return;
    }
    key_done(c, &rec, k, plaintext, cb, arg);
    sl_jbuf_free(&rec);
}

static void m_key_lookup(sl_store_conn *bc, const char *hash, sl_store_key_cb cb, void *arg)
{
    mconn *c = (mconn *)bc;
    uint64_t h = sl_store_hash(hash, strlen(hash));
    shard *sh = shard_of(c->s, h);
    sl_key_info info;
    pthread_mutex_lock(&sh->mu);
    mkey *k = key_find(sh, h, hash);
    if (k)
        info = k->info;
    pthread_mutex_unlock(&sh->mu);
    if (!k) {
        cb(arg, SL_STORE_NOT_FOUND, NULL, NULL, NULL);
        return;
    }
    cb(arg, sl_key_status(&info, sl_now_ms() / 1000), &info, NULL, NULL);
}

static int key_cmp(const void *a, const void *b)
{
    const sl_key_info *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->id, y->id);
}

static void m_key_list(sl_store_conn *bc, const char *consumer, sl_store_keys_cb cb, void *arg)
{
    mconn *c = (mconn *)bc;
    sl_key_info *v = NULL;
    size_t n = 0, cap = 0;
    sl_err err;
    for (size_t i = 0; i < NSHARD; i++) {
        shard *sh = &c->s->shards[i];
        pthread_mutex_lock(&sh->mu);
        for (size_t b = 0; b < NBUCKET; b++)
            for (mkey *k = sh->keys[b]; k; k = k->next) {
                if (consumer && strcmp(k->info.consumer, consumer) != 0)
                    continue;
                if (n == cap) {
                    sl_key_info *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof *v);
                    if (!nv) {
                        pthread_mutex_unlock(&sh->mu);
                        goto fail;
                    }
                    v = nv;
                }
                v[n++] = k->info;
            }
        pthread_mutex_unlock(&sh->mu);
    }
    if (n > 1)
        qsort(v, n, sizeof *v, key_cmp);
    cb(arg, SL_STORE_OK, v, n, NULL);
    free(v);
    return;
fail:
    free(v);
    sl_err_set(&err, "store: out of memory");
    cb(arg, SL_STORE_ERROR, NULL, 0, &err);
}

static void m_key_revoke(sl_store_conn *bc, const char *id, sl_store_key_cb cb, void *arg)
{
    mconn *c = (mconn *)bc;
    sl_key_info info;
    bool found = false;
    int64_t now = sl_now_ms() / 1000;
    for (size_t i = 0; i < NSHARD && !found; i++) {
        shard *sh = &c->s->shards[i];
        pthread_mutex_lock(&sh->mu);
        for (size_t b = 0; b < NBUCKET && !found; b++)
            for (mkey *k = sh->keys[b]; k; k = k->next)
                if (strcmp(k->info.id, id) == 0) {
                    if (!k->info.revoked)
                        k->info.revoked = now;
                    info = k->info;
                    found = true;
                    break;
                }
        pthread_mutex_unlock(&sh->mu);
    }
    if (!found) {
        sl_err err;
        sl_err_set(&err, "no key with id %s", id);
        cb(arg, SL_STORE_NOT_FOUND, NULL, NULL, &err);
        return;
    }
    sl_jbuf rec = {0};
    if (rec_revoke(&rec, id, info.revoked) < 0) {
        sl_err err;
        sl_err_set(&err, "store: out of memory");
        cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
        return;
    }
    key_done(c, &rec, &info, NULL, cb, arg);
    sl_jbuf_free(&rec);
}

/* ---- quota ---- */

static void m_quota_reserve(sl_store_conn *bc, const char *consumer, sl_window w, int64_t wid,
                            int64_t limit, int64_t min, int64_t max, sl_store_quota_cb cb, void *arg)
{
    mconn *c = (mconn *)bc;
    uint64_t h = quota_hash(consumer, w);
    shard *sh = shard_of(c->s, h);
    sl_quota_resv r;
    sl_quota_usage u;
    sl_store_status st = SL_STORE_DENIED;
    sl_err err;
    memset(&r, 0, sizeof r);
    if (atomic_load(&c->s->journal_broken) && !c->s->base.fail_open) {
        sl_err_set(&err, "store unavailable: the journal %s cannot be written (disk full?)", c->s->path);
        cb(arg, SL_STORE_UNAVAILABLE, NULL, NULL, &err);
        return;
    }
    pthread_mutex_lock(&sh->mu);
    mquota *q = quota_get(sh, h, consumer, w, wid, true);
    if (!q) {
        pthread_mutex_unlock(&sh->mu);
        sl_err_set(&err, "store: out of memory");
        cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
        return;
    }
    quota_reclaim(q, sl_now_ms());
    int64_t left = limit - q->used - q->reserved;
    if (left > 0 && left >= min) {
        if (q->n == q->cap) {
            size_t cap = q->cap ? q->cap * 2 : 8;
            mresv *nr = realloc(q->resv, cap * sizeof *nr);
            if (!nr) {
                pthread_mutex_unlock(&sh->mu);
                sl_err_set(&err, "store: out of memory");
                cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
                return;
            }
            q->resv = nr;
            q->cap = cap;
        }
        r.amount = left < max ? left : max;
        r.id = ++q->seq;
        int64_t deadline = sl_now_ms() + c->s->base.resv_ttl_ms;
        q->resv[q->n++] = (mresv){r.id, r.amount, deadline};
        if (deadline < q->expiry_ms)
            q->expiry_ms = deadline;
        q->reserved += r.amount;
        st = SL_STORE_OK;
    }
    sl_usage_fill(&u, w, q->wid, limit, q->used, q->reserved, q->requests);
    pthread_mutex_unlock(&sh->mu);
    sl_str_put(r.consumer, sizeof r.consumer, 0, consumer);
    r.window = w;
    r.window_id = u.window_id;
    cb(arg, st, st == SL_STORE_OK ? &r : NULL, &u, NULL);
}

static void m_quota_settle(sl_store_conn *bc, const sl_quota_resv *r, int64_t charge,
                           sl_store_quota_cb cb, void *arg)
{
    mconn *c = (mconn *)bc;
    uint64_t h = quota_hash(r->consumer, r->window);
    shard *sh = shard_of(c->s, h);
    sl_quota_usage u;
    memset(&u, 0, sizeof u);
    pthread_mutex_lock(&sh->mu);
    mquota *q = quota_get(sh, h, r->consumer, r->window, r->window_id, charge >= 0);
    if (q) {
        for (size_t i = 0; i < q->n; i++)
            if (q->resv[i].id == r->id) {
                q->reserved -= q->resv[i].amount;
                q->resv[i] = q->resv[--q->n];
                break;
            }
        if (charge >= 0) {
            q->used += charge;
            q->requests++;
        }
        sl_usage_fill(&u, r->window, q->wid, 0, q->used, q->reserved, q->requests);
    }
    pthread_mutex_unlock(&sh->mu);
    if (q && charge >= 0 && c->s->fd >= 0) { /* framed straight into the connection's buffer */
        pthread_mutex_lock(&c->mu);
        rec_usage(&c->buf, r->consumer, r->window, r->window_id, charge, 1);
        pthread_mutex_unlock(&c->mu);
    }
    cb(arg, SL_STORE_OK, r, &u, NULL);
}

static void m_quota_usage(sl_store_conn *bc, const char *consumer, sl_window w, int64_t wid,
                          int64_t limit, sl_store_quota_cb cb, void *arg)
{
    mconn *c = (mconn *)bc;
    uint64_t h = quota_hash(consumer, w);
    shard *sh = shard_of(c->s, h);
    sl_quota_usage u;
    pthread_mutex_lock(&sh->mu);
    mquota *q = quota_get(sh, h, consumer, w, wid, false);
    if (q)
        quota_reclaim(q, sl_now_ms());
    sl_usage_fill(&u, w, wid, limit, q ? q->used : 0, q ? q->reserved : 0, q ? q->requests : 0);
    pthread_mutex_unlock(&sh->mu);
    cb(arg, SL_STORE_OK, NULL, &u, NULL);
}

/* ---- rate ---- */

static void m_rate(sl_store_conn *bc, const char *key, int64_t limit, int64_t cost,
                   sl_rate_mode mode, sl_store_rate_cb cb, void *arg)
{
    mconn *c = (mconn *)bc;
    size_t len = strlen(key);
    uint64_t h = sl_store_hash(key, len);
    shard *sh = shard_of(c->s, h);
    sl_rate_result r;
    pthread_mutex_lock(&sh->mu);
    mrate *e;
    for (e = sh->rate[bucket_of(h)]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            break;
    if (!e && (e = calloc(1, sizeof *e + len + 1))) {
        memcpy(e->key, key, len + 1);
        e->next = sh->rate[bucket_of(h)];
        sh->rate[bucket_of(h)] = e;
    }
    if (!e) {
        pthread_mutex_unlock(&sh->mu);
        sl_err err;
        sl_err_set(&err, "store: out of memory");
        cb(arg, SL_STORE_ERROR, NULL, &err);
        return;
    }
    sl_bucket(&e->level, &e->last_us, sl_now_us(), limit, cost, mode, &r);
    pthread_mutex_unlock(&sh->mu);
    cb(arg, r.allowed ? SL_STORE_OK : SL_STORE_DENIED, &r, NULL);
}

/* ---- conns ---- */

static sl_store_conn *m_conn_open(sl_store *bs, struct event_base *base, sl_err *err)
{
    mstore *s = (mstore *)bs;
    mconn *c = calloc(1, sizeof *c);
    if (!c) {
        sl_err_set(err, "store: out of memory");
        return NULL;
    }
    c->base.store = bs;
    c->base.base = base;
    c->s = s;
    c->efd = -1;
    c->wait_tail = &c->wait;
    c->done_tail = &c->done;
    c->flushing_tail = &c->flushing;
    pthread_mutex_init(&c->mu, NULL);
    if (s->fd >= 0) {
        if (!base) {
            sl_err_set(err, "store: a journaled memory store needs an event loop per conn");
            goto fail;
        }
        c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (c->efd < 0 || !(c->ev = event_new(base, c->efd, EV_READ | EV_PERSIST, on_durable, c)) ||
            event_add(c->ev, NULL) < 0) {
            sl_err_set(err, "store: cannot watch an eventfd: %s", strerror(errno));
            goto fail;
        }
    }
    pthread_mutex_lock(&s->reg_mu);
    c->next = s->conns;
    s->conns = c;
    pthread_mutex_unlock(&s->reg_mu);
    return &c->base;
fail:
    if (c->ev)
        event_free(c->ev);
    if (c->efd >= 0)
        close(c->efd);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return NULL;
}

static void free_list(mdone *d)
{
    while (d) {
        mdone *next = d->next;
        free(d);
        d = next;
    }
}

static void m_conn_close(sl_store_conn *bc)
{
    mconn *c = (mconn *)bc;
    mstore *s = c->s;
    pthread_mutex_lock(&s->reg_mu);
    for (mconn **p = &s->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    pthread_mutex_lock(&c->mu);
    if (c->buf.len && sl_jbuf_append(&s->orphan, c->buf.data, c->buf.len) < 0)
        fprintf(stderr, "sluice: store journal: out of memory, records lost\n");
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&s->reg_mu);
    free_list(c->wait);
    free_list(c->flushing);
    free_list(c->done);
    sl_jbuf_free(&c->buf);
    if (c->ev)
        event_free(c->ev);
    if (c->efd >= 0)
        close(c->efd);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- the store ---- */

static void m_close(sl_store *bs)
{
    mstore *s = (mstore *)bs;
    if (s->writer_running) {
        pthread_mutex_lock(&s->reg_mu);
        s->stopping = true;
        pthread_cond_signal(&s->reg_cond);
        pthread_mutex_unlock(&s->reg_mu);
        pthread_join(s->writer, NULL);
    }
    if (s->fd >= 0)
        close(s->fd);
    for (size_t i = 0; s->shards && i < NSHARD; i++) {
        shard *sh = &s->shards[i];
        for (size_t b = 0; b < NBUCKET; b++) {
            for (mkey *k = sh->keys[b], *n; k; k = n) {
                n = k->next;
                free(k);
            }
            for (mquota *q = sh->quota[b], *n; q; q = n) {
                n = q->next;
                free(q->resv);
                free(q);
            }
            for (mrate *r = sh->rate[b], *n; r; r = n) {
                n = r->next;
                free(r);
            }
        }
        pthread_mutex_destroy(&sh->mu);
    }
    free(s->shards);
    sl_jbuf_free(&s->orphan);
    sl_jbuf_free(&s->unsynced);
    pthread_mutex_destroy(&s->reg_mu);
    pthread_cond_destroy(&s->reg_cond);
    free(s->path);
    free(s);
}

static const sl_store_vt memory_vt = {
    .close = m_close,
    .conn_open = m_conn_open,
    .conn_close = m_conn_close,
    .key_issue = m_key_issue,
    .key_lookup = m_key_lookup,
    .key_list = m_key_list,
    .key_revoke = m_key_revoke,
    .quota_reserve = m_quota_reserve,
    .quota_settle = m_quota_settle,
    .quota_usage = m_quota_usage,
    .rate = m_rate,
};

sl_store *sl_store_memory_open(const sl_store_opts *o, sl_err *err)
{
    mstore *s = calloc(1, sizeof *s);
    sl_jbuf snap = {0};
    if (!s || !(s->shards = calloc(NSHARD, sizeof *s->shards))) {
        sl_err_set(err, "store: out of memory");
        free(s);
        return NULL;
    }
    s->base.vt = &memory_vt;
    s->fd = -1;
    s->flush_ms = o->journal_flush_ms > 0 ? o->journal_flush_ms : 10;
    s->sync_ms = o->journal_sync_ms < 0 ? -1 : o->journal_sync_ms > 0 ? o->journal_sync_ms : 1000;
    pthread_mutex_init(&s->reg_mu, NULL);
    pthread_cond_init(&s->reg_cond, NULL);
    for (size_t i = 0; i < NSHARD; i++)
        pthread_mutex_init(&s->shards[i].mu, NULL);
    if (o->path && *o->path) {
        if (!(s->path = strdup(o->path)))
            goto oom;
        if (sl_journal_replay(s->path, replay_record, s, &s->replay_records, &s->replay_dropped, err) < 0)
            goto fail;
        if (s->replay_dropped)
            fprintf(stderr, "sluice: store journal %s: dropped a torn tail of %zu bytes after %zu records "
                    "(the last write before a crash)\n", s->path, s->replay_dropped, s->replay_records);
        if (snapshot(s, &snap) < 0)
            goto oom;
        if ((s->fd = sl_journal_rewrite(s->path, &snap, err)) < 0)
            goto fail;
        s->journal_end = s->synced_end = (off_t)snap.len;
        s->synced_ms = sl_coarse_ms();
        sl_jbuf_free(&snap);
        if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
            sl_err_set(err, "store: cannot start the journal writer thread");
            goto fail;
        }
        s->writer_running = true;
    }
    return &s->base;
oom:
    sl_err_set(err, "store: out of memory");
fail:
    sl_jbuf_free(&snap);
    m_close(&s->base);
    return NULL;
}

void sl_store_memory_replay_info(const sl_store *bs, size_t *records, size_t *dropped)
{
    const mstore *s = (const mstore *)bs;
    *records = s->replay_records;
    *dropped = s->replay_dropped;
}
