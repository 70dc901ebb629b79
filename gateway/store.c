/* The store's front: argument checks, key hashing, windows, then the backend. */
#include "store_int.h"
#include "hash64.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/crypto.h>

static const char *const window_names[] = {"minute", "hour", "day", "month", "total"};

const char *sl_store_status_name(sl_store_status st)
{
    static const char *const names[] = {"ok", "not_found", "revoked", "expired", "denied",
                                        "unavailable", "error"};
    return (unsigned)st < sizeof names / sizeof *names ? names[st] : "?";
}

void sl_store_opts_from_config(sl_store_opts *o, const sl_config *c)
{
    memset(o, 0, sizeof *o);
    o->backend = c->store.backend;
    o->path = c->store.path;
    o->redis_url = c->store.redis_url;
    o->redis_prefix = c->store.redis_prefix;
    o->secret = c->store.secret;
    o->secret_len = c->store.secret ? strlen(c->store.secret) : 0;
    o->fail_open = c->store.fail_open;
    o->journal_sync_ms = c->store.fsync_every_ms <= 0 ? -1
                         : (int)(c->store.fsync_every_ms > 3600000 ? 3600000 : c->store.fsync_every_ms);
}

sl_store *sl_store_open(const sl_store_opts *o, sl_err *err)
{
    if (!o->secret || o->secret_len == 0) {
        sl_err_set(err, "store: no server secret: set SLUICE_SECRET (or the variable store.secret_env names)");
        return NULL;
    }
    unsigned char *secret = malloc(o->secret_len);
    if (!secret) {
        sl_err_set(err, "store: out of memory");
        return NULL;
    }
    memcpy(secret, o->secret, o->secret_len);
    sl_store *s = o->backend == SL_STORE_REDIS ? sl_store_redis_open(o, err)
                                                : sl_store_memory_open(o, err);
    if (!s) {
        OPENSSL_cleanse(secret, o->secret_len);
        free(secret);
        return NULL;
    }
    s->secret = secret;
    s->secret_len = o->secret_len;
    s->fail_open = o->fail_open;
    s->resv_ttl_ms = o->resv_ttl_ms > 0 ? o->resv_ttl_ms : 15 * 60 * 1000;
    return s;
}

void sl_store_close(sl_store *s)
{
    if (!s)
        return;
    unsigned char *secret = s->secret;
    size_t len = s->secret_len;
    s->vt->close(s);
    if (secret) {
        OPENSSL_cleanse(secret, len);
        free(secret);
    }
}

sl_store_conn *sl_store_conn_open(sl_store *s, struct event_base *base, sl_err *err)
{
    return s->vt->conn_open(s, base, err);
}

void sl_store_conn_close(sl_store_conn *c)
{
    if (c)
        c->store->vt->conn_close(c);
}

/* ---- keys ---- */

static bool name_ok(const char *s)
{
    return s && *s && strlen(s) < SL_STORE_NAME_MAX;
}

void sl_store_key_issue(sl_store_conn *c, const char *consumer, const char *name,
                        int64_t expires, sl_store_key_cb cb, void *arg)
{
    sl_err err = {{0}};
    sl_key_info k;
    char plain[SL_KEY_SIZE];
    memset(&k, 0, sizeof k);
    if (!name_ok(consumer) || (name && strlen(name) >= SL_STORE_NAME_MAX)) {
        sl_err_set(&err, "key issue: consumer must be 1..%d bytes and name under %d",
                   SL_STORE_NAME_MAX - 1, SL_STORE_NAME_MAX);
        goto fail;
    }
    if (sl_key_generate(plain, &err) < 0 || sl_key_id_generate(k.id, &err) < 0 ||
        sl_key_hash(c->store->secret, c->store->secret_len, plain, k.hash, &err) < 0)
        goto fail;
    sl_key_shown_prefix(plain, k.prefix);
    sl_store_copy_name(k.consumer, sizeof k.consumer, consumer);
    sl_store_copy_name(k.name, sizeof k.name, name ? name : "");
    k.created = sl_now_ms() / 1000;
    k.expires = expires > 0 ? expires : 0;
    c->store->vt->key_issue(c, &k, plain, cb, arg);
    OPENSSL_cleanse(plain, sizeof plain);
    return;
fail:
    cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
}

void sl_store_key_lookup(sl_store_conn *c, const char *key, sl_store_key_cb cb, void *arg)
{
    sl_store_key_lookup_hashed(c, key, NULL, NULL, cb, arg);
}

void sl_store_key_lookup_hashed(sl_store_conn *c, const char *key, const char *secret, const char *hashed,
                                sl_store_key_cb cb, void *arg)
{
    char hash[SL_KEY_HASH_SIZE];
    if (!sl_key_well_formed(key)) {
        sl_err err = {{0}};
        sl_err_set(&err, "not a sluice key");
        cb(arg, SL_STORE_NOT_FOUND, NULL, NULL, &err);
        return;
    }
    if (hashed && secret && strlen(secret) == c->store->secret_len &&
        memcmp(secret, c->store->secret, c->store->secret_len) == 0) {
        c->store->vt->key_lookup(c, hashed, cb, arg);
        return;
    }
    sl_err err = {{0}}; /* errors are set up where they happen: clearing 512 bytes a call showed */
    if (sl_key_hash(c->store->secret, c->store->secret_len, key, hash, &err) < 0) {
        cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
        return;
    }
    c->store->vt->key_lookup(c, hash, cb, arg);
}

void sl_store_key_list(sl_store_conn *c, const char *consumer, sl_store_keys_cb cb, void *arg)
{
    if (consumer && !name_ok(consumer)) {
        cb(arg, SL_STORE_OK, NULL, 0, NULL);
        return;
    }
    c->store->vt->key_list(c, consumer, cb, arg);
}

void sl_store_key_revoke(sl_store_conn *c, const char *id, sl_store_key_cb cb, void *arg)
{
    if (!id || strlen(id) >= SL_KEY_ID_SIZE || strncmp(id, "key_", 4) != 0) {
        sl_err err = {{0}};
        sl_err_set(&err, "no key with id %.40s", id ? id : "(null)");
        cb(arg, SL_STORE_NOT_FOUND, NULL, NULL, &err);
        return;
    }
    c->store->vt->key_revoke(c, id, cb, arg);
}

/* ---- quota ---- */

void sl_store_quota_reserve(sl_store_conn *c, const char *consumer, sl_window w, int64_t limit,
                            int64_t min, int64_t max, sl_store_quota_cb cb, void *arg)
{
    if (!name_ok(consumer) || (unsigned)w > SL_WINDOW_TOTAL || limit < 0 || min < 0 || max < min) {
        sl_err err = {{0}};
        sl_err_set(&err, "quota reserve: bad arguments (consumer, window, 0 <= min <= max)");
        cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
        return;
    }
    c->store->vt->quota_reserve(c, consumer, w, sl_window_id(w, time(NULL)), limit, min, max, cb, arg);
}

static void settle(sl_store_conn *c, const sl_quota_resv *r, int64_t charge,
                   sl_store_quota_cb cb, void *arg)
{
    if (!r || !name_ok(r->consumer) || (unsigned)r->window > SL_WINDOW_TOTAL) {
        sl_err err = {{0}};
        sl_err_set(&err, "quota settle: not a reservation");
        cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
        return;
    }
    c->store->vt->quota_settle(c, r, charge, cb, arg);
}

void sl_store_quota_settle(sl_store_conn *c, const sl_quota_resv *r, int64_t actual,
                           sl_store_quota_cb cb, void *arg)
{
    settle(c, r, actual < 0 ? 0 : actual, cb, arg);
}

void sl_store_quota_release(sl_store_conn *c, const sl_quota_resv *r, sl_store_quota_cb cb, void *arg)
{
    settle(c, r, -1, cb, arg);
}

void sl_store_quota_usage(sl_store_conn *c, const char *consumer, sl_window w, int64_t limit,
                          sl_store_quota_cb cb, void *arg)
{
    if (!name_ok(consumer) || (unsigned)w > SL_WINDOW_TOTAL) {
        sl_err err = {{0}};
        sl_err_set(&err, "quota usage: bad consumer or window");
        cb(arg, SL_STORE_ERROR, NULL, NULL, &err);
        return;
    }
    c->store->vt->quota_usage(c, consumer, w, sl_window_id(w, time(NULL)), limit, cb, arg);
}

void sl_usage_fill(sl_quota_usage *u, sl_window w, int64_t wid, int64_t limit,
                   int64_t used, int64_t reserved, int64_t requests)
{
    u->limit = limit;
    u->used = used;
    u->reserved = reserved;
    u->remaining = limit - used - reserved > 0 ? limit - used - reserved : 0;
    u->requests = requests;
    u->window_id = wid;
    u->resets_at = sl_window_end(w, wid);
}

/* ---- rate ---- */

void sl_store_rate(sl_store_conn *c, const char *key, int64_t limit_per_min, int64_t cost,
                   sl_rate_mode mode, sl_store_rate_cb cb, void *arg)
{
    if (!key || !*key || strlen(key) > 512 || limit_per_min <= 0 || cost < 0 ||
        (unsigned)mode > SL_RATE_PEEK) {
        sl_err err = {{0}};
        sl_err_set(&err, "rate: bad arguments (key, limit > 0, cost >= 0)");
        cb(arg, SL_STORE_ERROR, NULL, &err);
        return;
    }
    c->store->vt->rate(c, key, limit_per_min, cost, mode, cb, arg);
}

#define RATE_PERIOD_US 60000000.0

/* A leaky bucket of capacity limit draining limit units per minute (what GCRA computes,
 * kept as a level so that doubles stay small and exact enough). */
void sl_bucket(double *level, int64_t *last_us, int64_t now, int64_t limit, int64_t cost,
               sl_rate_mode mode, sl_rate_result *r)
{
    double rate = (double)limit / RATE_PERIOD_US;        /* units per us */
    double lv = *level - (double)(now - *last_us) * rate;
    if (lv < 0 || now < *last_us)
        lv = lv < 0 ? 0 : *level;
    bool fits = lv + (double)cost <= (double)limit + 1e-6;
    if (mode == SL_RATE_ADD || (mode == SL_RATE_CHECK && fits))
        lv += (double)cost;
    if (mode != SL_RATE_PEEK) {
        *level = lv;
        *last_us = now;
    }
    r->allowed = mode == SL_RATE_ADD || fits;
    r->limit = limit;
    double rem = floor((double)limit - lv + 1e-6);
    r->remaining = rem < 0 ? 0 : (int64_t)rem;
    r->reset_ms = (int64_t)ceil(lv / rate / 1000.0);
    r->retry_after_ms = r->allowed ? 0 : (int64_t)ceil((lv + (double)cost - (double)limit) / rate / 1000.0);
}

/* ---- helpers ---- */

int64_t sl_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

int64_t sl_now_ms(void)
{
    return sl_now_us() / 1000;
}

sl_store_status sl_key_status(const sl_key_info *k, int64_t now)
{
    if (k->revoked)
        return SL_STORE_REVOKED;
    if (k->expires && now >= k->expires)
        return SL_STORE_EXPIRED;
    return SL_STORE_OK;
}

int sl_store_copy_name(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        return -1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
    dst[n] = '\0';
    return 0;
}

uint64_t sl_store_hash(const char *s, size_t n) { return sl_hash64(s, n); }

/* ---- windows ---- */

/* year * 12 + month (0-11) of a UTC time, as gmtime_r gives it, in arithmetic (H. Hinnant's
 * civil_from_days): gmtime_r ran once a request for a monthly quota. */
static int64_t month_id(time_t now)
{
    int64_t t = (int64_t)now, days = t / 86400 - (t % 86400 < 0);
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                    /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                  /* [0, 11], from March */
    int64_t m = mp < 10 ? mp + 2 : mp - 10;                            /* [0, 11], from January */
    int64_t y = yoe + era * 400 + (m < 2);
    return y * 12 + m;
}

int64_t sl_window_id(sl_window w, time_t now)
{
    switch (w) {
    case SL_WINDOW_MINUTE: return (int64_t)now / 60;
    case SL_WINDOW_HOUR: return (int64_t)now / 3600;
    case SL_WINDOW_DAY: return (int64_t)now / 86400;
    case SL_WINDOW_MONTH: return month_id(now);
    default: return 0;
    }
}

/* The UTC time of the first second of month id (year * 12 + month 0-11), in arithmetic
 * (Hinnant's days_from_civil): timegm ran twice a request for a monthly quota. */
static int64_t month_start(int64_t id)
{
    int64_t y = id / 12 - (id % 12 < 0), m = id - y * 12;              /* m in [0, 11] */
    y -= m < 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                        /* [0, 399] */
    int64_t doy = (153 * (m < 2 ? m + 10 : m - 2) + 2) / 5;             /* the 1st, from March */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;                /* [0, 146096] */
    return (era * 146097 + doe - 719468) * 86400;
}

int64_t sl_window_end(sl_window w, int64_t id)
{
    switch (w) {
    case SL_WINDOW_MINUTE: return (id + 1) * 60;
    case SL_WINDOW_HOUR: return (id + 1) * 3600;
    case SL_WINDOW_DAY: return (id + 1) * 86400;
    case SL_WINDOW_MONTH: return month_start(id + 1);
    default: return 0;
    }
}

int sl_window_parse(const char *name, sl_window *w)
{
    for (int i = 0; i <= SL_WINDOW_TOTAL; i++)
        if (name && strcmp(name, window_names[i]) == 0) {
            *w = (sl_window)i;
            return 0;
        }
    return -1;
}

const char *sl_window_name(sl_window w)
{
    return (unsigned)w <= SL_WINDOW_TOTAL ? window_names[w] : "?";
}
