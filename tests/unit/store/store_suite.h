/* The store behaviour suite, run against each backend, and helpers to drive the async
 * API synchronously from a test. */
#ifndef STORE_SUITE_H
#define STORE_SUITE_H

#include <stdbool.h>
#include <event2/event.h>

#include "store.h"

/* Set by each test program: open a fresh, empty store (own state) for one test. */
extern sl_store *(*suite_open)(int64_t resv_ttl_ms, bool fail_open);

typedef struct res {
    bool done;
    sl_store_status st;
    bool has_key, has_resv, has_usage, has_rate;
    sl_key_info key;
    char plain[SL_KEY_SIZE];
    sl_key_info *keys;          /* list: malloc'd copy, freed by res_reset */
    size_t n;
    sl_quota_resv resv;
    sl_quota_usage usage;
    sl_rate_result rate;
    char err[512];
} res;

void res_reset(res *r);

/* A thread's view: its event loop and conn. */
typedef struct tconn {
    struct event_base *base;
    sl_store_conn *c;
} tconn;

void tconn_open(tconn *t, sl_store *s);
void tconn_close(tconn *t);

/* Each runs the op and the loop until its callback ran; returns the status. */
sl_store_status t_issue(tconn *t, const char *consumer, const char *name, int64_t expires, res *r);
sl_store_status t_lookup(tconn *t, const char *key, res *r);
sl_store_status t_list(tconn *t, const char *consumer, res *r);
sl_store_status t_revoke(tconn *t, const char *id, res *r);
sl_store_status t_reserve(tconn *t, const char *consumer, sl_window w, int64_t limit,
                          int64_t min, int64_t max, res *r);
sl_store_status t_settle(tconn *t, const sl_quota_resv *resv, int64_t actual, res *r);
sl_store_status t_release(tconn *t, const sl_quota_resv *resv, res *r);
sl_store_status t_usage(tconn *t, const char *consumer, sl_window w, int64_t limit, res *r);
sl_store_status t_rate(tconn *t, const char *key, int64_t limit, int64_t cost, sl_rate_mode m, res *r);

/* Concurrent reserve/settle from nthreads threads over the given stores (round robin):
 * asserts the quota is never passed and usage equals the sum of what was settled. */
void suite_hammer(sl_store **stores, int nstores, int nthreads, int64_t limit);

/* Concurrent rate checks on one key never let more through than the limit allows. */
void suite_rate_hammer(sl_store **stores, int nstores, int nthreads);
int64_t sl_now_ms_for_tests(void);

void suite_keys_lifecycle(void **state);
void suite_key_expiry(void **state);
void suite_key_list_by_consumer(void **state);
void suite_quota_reserve_settle(void **state);
void suite_quota_upto_and_release(void **state);
void suite_quota_reservation_expires(void **state);
void suite_quota_reservations_expire_in_turn(void **state);
void suite_quota_windows_are_separate(void **state);
void suite_quota_concurrent(void **state);
void suite_rate_limit(void **state);
void suite_rate_add_and_peek(void **state);
void suite_rate_concurrent(void **state);

#define STORE_SUITE_TESTS \
    cmocka_unit_test(suite_keys_lifecycle), \
    cmocka_unit_test(suite_key_expiry), \
    cmocka_unit_test(suite_key_list_by_consumer), \
    cmocka_unit_test(suite_quota_reserve_settle), \
    cmocka_unit_test(suite_quota_upto_and_release), \
    cmocka_unit_test(suite_quota_reservation_expires), \
    cmocka_unit_test(suite_quota_reservations_expire_in_turn), \
    cmocka_unit_test(suite_quota_windows_are_separate), \
    cmocka_unit_test(suite_quota_concurrent), \
    cmocka_unit_test(suite_rate_limit), \
    cmocka_unit_test(suite_rate_add_and_peek), \
    cmocka_unit_test(suite_rate_concurrent)

#endif
