/* The store: API keys, token quotas and rate-limit state, shared by every worker thread
 * (memory backend) or by every gateway instance (redis backend).
 *
 * Threads: one sl_store per process, made from the config's store section; each worker
 * thread opens its own sl_store_conn on its own event_base and uses it only from that
 * thread. Nothing on the request path takes a lock shared by all threads (memory: one
 * lock per shard; redis: one connection per thread).
 *
 * Calls are asynchronous: every operation ends by calling its callback exactly once, on
 * the conn's event loop thread. The callback MAY RUN BEFORE THE CALL RETURNS:
 *   - memory backend: lookups, quota and rate calls always complete synchronously; key
 *     issue and revoke complete after their journal record is fsync'd (a later loop turn),
 *     or synchronously when the store has no journal path.
 *   - redis backend: completes from the loop when the reply arrives, or synchronously when
 *     the connection is down (UNAVAILABLE, or the local fallback of on_failure: open).
 * Pointers passed to a callback are valid only during the callback. Strings passed to a
 * call are copied. Closing a conn drops its pending callbacks without calling them.
 *
 * Quota design (SPEC policy 4): per (consumer, window kind, window id) the store keeps
 * used, reserved, requests and a table of open reservations {id -> amount, deadline}.
 * reserve checks used + reserved + n <= limit and records the reservation in one atomic
 * step (memory: under the shard lock; redis: one Lua script). settle(resv, actual) drops the
 * reservation and adds actual to used (+1 request); release drops it without charge. A
 * reservation not settled by its deadline (opts.resv_ttl_ms after it was made, default
 * 15 min: longer than any upstream timeout) is reclaimed by the next reserve/usage call of
 * that window, so a gateway that dies never leaks quota for longer than the TTL; a reserve
 * whose reply was lost (Redis stalled or the connection dropped after it was sent) is
 * released by the gateway as soon as Redis answers again (redis: reservation ids are made
 * by the gateway, so it can name the one it never heard about). A settle
 * that arrives after its reservation was reclaimed still charges actual (the usage
 * recorded is the usage served). Window ids come from wall-clock UTC (sl_window_id).
 * The deadline is measured on the store's clock (redis: TIME), so instances agree.
 *
 * Use from the plugins (sketch): auth: sl_key_declared_consumer(config, hash) first, else
 * sl_store_key_lookup -> OK: consumer; NOT_FOUND/REVOKED/EXPIRED: 401; UNAVAILABLE: 503.
 * ratelimit: sl_store_rate("rpm:<consumer>", rpm, 1, CHECK) and a PEEK of "tpm:<consumer>";
 * on completion ADD the tokens served to "tpm:<consumer>". quota: sl_store_quota_reserve
 * (prompt + min completion, prompt + cap) -> lower max_tokens to resv.amount - prompt;
 * keep the sl_quota_resv in the exchange; on_complete: settle(actual) or release.
 * Redis: the process must ignore SIGPIPE (hiredis writes to sockets Redis may close). */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "err.h"
#include "keys.h"

struct event_base;

typedef struct sl_store sl_store;
typedef struct sl_store_conn sl_store_conn;

#define SL_STORE_NAME_MAX 128           /* consumer names and key labels, with NUL */

typedef enum sl_store_status {
    SL_STORE_OK = 0,
    SL_STORE_NOT_FOUND,     /* lookup: no such key; revoke: no such id */
    SL_STORE_REVOKED,       /* lookup: the key was revoked */
    SL_STORE_EXPIRED,       /* lookup: the key is past its expiry */
    SL_STORE_DENIED,        /* quota: does not fit; rate: over the limit */
    SL_STORE_UNAVAILABLE,   /* store unreachable (on_failure: closed); err says why */
    SL_STORE_ERROR,         /* bad argument or internal failure; err says why */
} sl_store_status;

const char *sl_store_status_name(sl_store_status st);

typedef struct sl_store_opts {
    sl_store_backend backend;
    const char *path;           /* memory: journal file; NULL = not persisted */
    const char *redis_url;      /* redis://[:password@]host[:port][/db] or unix:/path/sock */
    const char *redis_prefix;   /* default "sluice:" */
    const void *secret;         /* HMAC key for API keys (required) */
    size_t secret_len;
    bool fail_open;             /* on_failure: open (redis down: reserve against a local
                                 * per-thread count, rate allows, stale key cache answers;
                                 * settles are queued and sent when redis is back) */
    int64_t resv_ttl_ms;        /* reservation lifetime; 0 = 15 min */
    int journal_flush_ms;       /* memory: write batch period; 0 = 10 ms */
    int journal_sync_ms;        /* memory: fdatasync at least this often (and before a key's
                                 * issue or revocation is answered); 0 = 1000 ms, < 0 = every
                                 * batch */
    int key_cache_ms;           /* redis: per-thread key cache lifetime; 0 = 500 ms */
    int redis_timeout_ms;       /* redis: connect/answer deadline; 0 = 2000 ms */
} sl_store_opts;

/* Fill o from the config's store section (pointers into c: keep c alive while opening). */
void sl_store_opts_from_config(sl_store_opts *o, const sl_config *c);

/* Open the store: memory replays and compacts its journal; redis parses the URL (the
 * connections are made per thread). Caller frees with sl_store_close, after closing
 * every conn. */
sl_store *sl_store_open(const sl_store_opts *o, sl_err *err);
void sl_store_close(sl_store *s);

/* A per-thread handle on base (may be NULL only for a memory store without a journal).
 * Caller frees with sl_store_conn_close on the same thread. */
sl_store_conn *sl_store_conn_open(sl_store *s, struct event_base *base, sl_err *err);
void sl_store_conn_close(sl_store_conn *c);

/* ---- Keys ---- */

typedef struct sl_key_info {
    char id[SL_KEY_ID_SIZE];
    char hash[SL_KEY_HASH_SIZE];
    char prefix[SL_KEY_SHOWN_SIZE];
    char consumer[SL_STORE_NAME_MAX];
    char name[SL_STORE_NAME_MAX];
    int64_t created;            /* unix seconds */
    int64_t expires;            /* unix seconds; 0 = never */
    int64_t revoked;            /* unix seconds; 0 = live */
} sl_key_info;

/* key: the record (NULL unless OK, REVOKED, EXPIRED); plaintext: the new key, only for
 * issue (shown once: never stored). */
typedef void (*sl_store_key_cb)(void *arg, sl_store_status st, const sl_key_info *key,
                                const char *plaintext, const sl_err *err);
typedef void (*sl_store_keys_cb)(void *arg, sl_store_status st, const sl_key_info *keys,
                                 size_t n, const sl_err *err);

/* Issue a key for consumer; name may be NULL; expires: unix seconds, 0 = never. */
void sl_store_key_issue(sl_store_conn *c, const char *consumer, const char *name,
                        int64_t expires, sl_store_key_cb cb, void *arg);
/* Find the consumer of a plaintext key (hot path: cached per thread on redis; a revoke
 * is seen by every instance within 1 s). Keys declared in the config by hash are not in
 * the store: check sl_key_declared_consumer first. */
void sl_store_key_lookup(sl_store_conn *c, const char *key, sl_store_key_cb cb, void *arg);
/* The same, with the key's hash already made with secret (the store's own secret, or the
 * hash is made again): one HMAC a request instead of two. */
void sl_store_key_lookup_hashed(sl_store_conn *c, const char *key, const char *secret, const char *hashed,
                                sl_store_key_cb cb, void *arg);
/* Keys of consumer (NULL = all), oldest first. */
void sl_store_key_list(sl_store_conn *c, const char *consumer, sl_store_keys_cb cb, void *arg);
/* Revoke by public id. Revoking twice is OK (keeps the first time). */
void sl_store_key_revoke(sl_store_conn *c, const char *id, sl_store_key_cb cb, void *arg);

/* ---- Quota ---- */

/* A reservation: reserve fills it, the caller keeps it (by value) for settle/release. */
typedef struct sl_quota_resv {
    char consumer[SL_STORE_NAME_MAX];
    sl_window window;
    int64_t window_id;
    uint64_t id;                /* 0 = made locally while redis was down (on_failure: open) */
    int64_t amount;             /* tokens reserved */
} sl_quota_resv;

typedef struct sl_quota_usage {
    int64_t limit;
    int64_t used;               /* settled tokens in the window */
    int64_t reserved;           /* open reservations */
    int64_t remaining;          /* max(0, limit - used - reserved) */
    int64_t requests;           /* settled requests in the window */
    int64_t window_id;
    int64_t resets_at;          /* unix seconds the window ends; 0 for total */
} sl_quota_usage;

/* resv: set when a reservation was made (reserve OK); usage: the window after the call
 * (set for OK and DENIED). */
typedef void (*sl_store_quota_cb)(void *arg, sl_store_status st, const sl_quota_resv *resv,
                                  const sl_quota_usage *usage, const sl_err *err);

/* Reserve min(max, left) tokens if left >= min and left > 0, where left = limit - used -
 * reserved; else DENIED (usage says what is left so the caller can lower its cap). */
void sl_store_quota_reserve(sl_store_conn *c, const char *consumer, sl_window w, int64_t limit,
                            int64_t min, int64_t max, sl_store_quota_cb cb, void *arg);
/* Move the reservation to usage: used += actual (actual may differ from amount), one request. */
void sl_store_quota_settle(sl_store_conn *c, const sl_quota_resv *r, int64_t actual,
                           sl_store_quota_cb cb, void *arg);
/* Drop the reservation without charge (upstream failed before any token was served). */
void sl_store_quota_release(sl_store_conn *c, const sl_quota_resv *r, sl_store_quota_cb cb, void *arg);
/* Usage of consumer in the current window. */
void sl_store_quota_usage(sl_store_conn *c, const char *consumer, sl_window w, int64_t limit,
                          sl_store_quota_cb cb, void *arg);

/* ---- Rate limits (GCRA over a 60 s period: limit per minute, bursts up to limit) ---- */

typedef enum sl_rate_mode {
    SL_RATE_CHECK,      /* atomic check-and-add: add cost only if it fits */
    SL_RATE_ADD,        /* add cost even over the limit (charging tokens after the fact) */
    SL_RATE_PEEK,       /* would cost fit? changes nothing */
} sl_rate_mode;

typedef struct sl_rate_result {
    bool allowed;
    int64_t limit;
    int64_t remaining;          /* units left now (after this call) */
    int64_t reset_ms;           /* until the full limit is available again */
    int64_t retry_after_ms;     /* when not allowed: until cost would fit (0 if allowed) */
} sl_rate_result;

/* st is OK when allowed, DENIED when not (r is set for both). */
typedef void (*sl_store_rate_cb)(void *arg, sl_store_status st, const sl_rate_result *r,
                                 const sl_err *err);

/* key: any string (e.g. "rpm:acme" or "tpm:acme:gpt-4"); cost > limit never fits. */
void sl_store_rate(sl_store_conn *c, const char *key, int64_t limit_per_min, int64_t cost,
                   sl_rate_mode mode, sl_store_rate_cb cb, void *arg);

/* ---- Helpers shared by the backends and callers ---- */

/* Window id of unix time now: minutes/hours/days since the epoch, year*12+month-1 (UTC)
 * for month, 0 for total. */
int64_t sl_window_id(sl_window w, time_t now);
/* Unix seconds at which window id ends (0 for total). */
int64_t sl_window_end(sl_window w, int64_t id);
/* "minute" ... "total"; -1 on an unknown name. */
int sl_window_parse(const char *name, sl_window *w);
const char *sl_window_name(sl_window w);

#endif
