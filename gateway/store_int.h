/* Inside the store: the backend vtable and helpers the backends share. Not for callers. */
#ifndef SL_STORE_INT_H
#define SL_STORE_INT_H

#include "store.h"

typedef struct sl_store_vt {
    void (*close)(sl_store *s);
    sl_store_conn *(*conn_open)(sl_store *s, struct event_base *base, sl_err *err);
    void (*conn_close)(sl_store_conn *c);
    void (*key_issue)(sl_store_conn *c, const sl_key_info *k, const char *plaintext,
                      sl_store_key_cb cb, void *arg);
    void (*key_lookup)(sl_store_conn *c, const char *hash, sl_store_key_cb cb, void *arg);
    void (*key_list)(sl_store_conn *c, const char *consumer, sl_store_keys_cb cb, void *arg);
    void (*key_revoke)(sl_store_conn *c, const char *id, sl_store_key_cb cb, void *arg);
    void (*quota_reserve)(sl_store_conn *c, const char *consumer, sl_window w, int64_t wid,
                          int64_t limit, int64_t min, int64_t max, sl_store_quota_cb cb, void *arg);
    /* charge < 0: release (no charge, no request counted) */
    void (*quota_settle)(sl_store_conn *c, const sl_quota_resv *r, int64_t charge,
                         sl_store_quota_cb cb, void *arg);
    void (*quota_usage)(sl_store_conn *c, const char *consumer, sl_window w, int64_t wid,
                        int64_t limit, sl_store_quota_cb cb, void *arg);
    void (*rate)(sl_store_conn *c, const char *key, int64_t limit, int64_t cost,
                 sl_rate_mode mode, sl_store_rate_cb cb, void *arg);
} sl_store_vt;

/* Every backend's store and conn start with these. */
struct sl_store {
    const sl_store_vt *vt;
    unsigned char *secret;
    size_t secret_len;
    bool fail_open;
    int64_t resv_ttl_ms;
};

struct sl_store_conn {
    sl_store *store;
    struct event_base *base;
};

sl_store *sl_store_memory_open(const sl_store_opts *o, sl_err *err);
sl_store *sl_store_redis_open(const sl_store_opts *o, sl_err *err);

/* Memory: what the journal replay at open found (tests, logs). */
void sl_store_memory_replay_info(const sl_store *s, size_t *records, size_t *dropped_bytes);

int64_t sl_now_ms(void);        /* wall clock */
int64_t sl_now_us(void);

/* Status of a found key at time now (OK, REVOKED or EXPIRED). */
sl_store_status sl_key_status(const sl_key_info *k, int64_t now);

/* One rate step on a leaky bucket: *level (units) as of *last_us, updated unless peeking.
 * The redis Lua script does the same arithmetic. */
void sl_bucket(double *level, int64_t *last_us, int64_t now_us, int64_t limit, int64_t cost,
               sl_rate_mode mode, sl_rate_result *r);

/* Fill usage from counters. */
void sl_usage_fill(sl_quota_usage *u, sl_window w, int64_t wid, int64_t limit,
                   int64_t used, int64_t reserved, int64_t requests);

/* Copy src into dst (size bytes), turning control characters into spaces; -1 when it
 * does not fit. */
int sl_store_copy_name(char *dst, size_t size, const char *src);

uint64_t sl_store_hash(const char *s, size_t n);    /* in-memory tables only: never stored */

#endif
