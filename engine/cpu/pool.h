/* A small fixed thread pool for data-parallel loops: the caller's thread works too. */
#ifndef SL_POOL_H
#define SL_POOL_H

#include "err.h"

typedef struct sl_pool sl_pool;

/* fn(ctx, begin, end) is called on disjoint ranges covering [0, n). */
typedef void (*sl_pool_fn)(void *ctx, int begin, int end);

/* n_threads including the caller's. Caller frees with sl_pool_destroy. */
sl_pool *sl_pool_create(int n_threads, sl_err *err);
void sl_pool_destroy(sl_pool *p);
int sl_pool_threads(const sl_pool *p);
/* Runs fn over [0, n) split into one contiguous range per thread; returns when all are done.
 * Not reentrant: one caller at a time. */
void sl_pool_for(sl_pool *p, int n, sl_pool_fn fn, void *ctx);

#endif
