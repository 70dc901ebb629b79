#include "pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct sl_pool {
    int n;                       /* threads, the caller's included */
    pthread_t *workers;          /* n - 1 */
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    unsigned long gen;           /* bumped for every job */
    int pending;                 /* workers still running this job */
    bool stop;
    sl_pool_fn fn;
    void *ctx;
    int total;
};

typedef struct worker_arg { sl_pool *p; int idx; } worker_arg;

static void run_share(sl_pool *p, int idx)
{
    int chunk = (p->total + p->n - 1) / p->n;
    int b = idx * chunk, e = b + chunk < p->total ? b + chunk : p->total;
    if (b < e)
        p->fn(p->ctx, b, e);
}

static void *worker_main(void *arg)
{
    worker_arg a = *(worker_arg *)arg;
    free(arg);
    sl_pool *p = a.p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_share(p, a.idx);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

sl_pool *sl_pool_create(int n_threads, sl_err *err)
{
    sl_pool *p = calloc(1, sizeof *p);
    if (!p)
        goto oom;
    p->n = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    if (!(p->workers = calloc((size_t)p->n, sizeof *p->workers)))
        goto oom;
    for (int i = 1; i < p->n; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a)
            goto oom;
        *a = (worker_arg){ p, i };
        if (pthread_create(&p->workers[i - 1], NULL, worker_main, a) != 0) {
            free(a);
            p->n = i;    /* join only those started */
            sl_pool_destroy(p);
            sl_err_set(err, "cannot start CPU worker thread %d", i);
            return NULL;
        }
    }
    return p;
oom:
    sl_pool_destroy(p);
    sl_err_set(err, "out of memory");
    return NULL;
}

void sl_pool_destroy(sl_pool *p)
{
    if (!p)
        return;
    if (p->workers) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i < p->n; i++)
            if (p->workers[i - 1])
                pthread_join(p->workers[i - 1], NULL);
        free(p->workers);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p);
}

int sl_pool_threads(const sl_pool *p)
{
    return p->n;
}

void sl_pool_for(sl_pool *p, int n, sl_pool_fn fn, void *ctx)
{
    if (p->n == 1 || n < 2) {
        if (n > 0)
            fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->total = n;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    run_share(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
