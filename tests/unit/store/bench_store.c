/* bench_store: reserve+settle pairs per second on each backend, beside a peer in the same
 * run (plain Redis HINCRBY pairs over the same kind of connection), printed as a table.
 * Usage: bench_store [seconds-per-row]   (starts its own redis-server on a unix socket) */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/hiredis.h>

#include "store_int.h"

static double secs = 1.0;
static char dir[] = "/tmp/sluice-bench-XXXXXX";
static char sock[128];

typedef struct run {
    sl_store_conn *c;
    struct event_base *base;
    redisAsyncContext *peer;
    int64_t t_end, done, inflight;
    bool stop, chain;           /* chain: a settle starts the next pair (async backends) */
} run;

static void on_settle(void *arg, sl_store_status st, const sl_quota_resv *r, const sl_quota_usage *u, const sl_err *e);
static void next(run *r);

static void on_reserve(void *arg, sl_store_status st, const sl_quota_resv *resv,
                       const sl_quota_usage *u, const sl_err *e)
{
    run *r = arg;
    if (st != SL_STORE_OK) {
        fprintf(stderr, "reserve: %s %s\n", sl_store_status_name(st), e ? e->msg : "");
        exit(1);
    }
    sl_store_quota_settle(r->c, resv, resv->amount / 2, on_settle, r);
}

static void on_settle(void *arg, sl_store_status st, const sl_quota_resv *resv,
                      const sl_quota_usage *u, const sl_err *e)
{
    run *r = arg;
    r->done++;
    r->inflight--;
    if (r->chain)
        next(r);
}

static void next(run *r)
{
    if (r->stop || sl_now_us() >= r->t_end) {
        r->stop = true;
        if (r->inflight == 0 && r->base)
            event_base_loopbreak(r->base);
        return;
    }
    r->inflight++;
    sl_store_quota_reserve(r->c, "bench", SL_WINDOW_MONTH, INT64_MAX / 4, 1, 100, on_reserve, r);
}

/* pairs/s with depth operations in flight (memory: depth 1, it completes inline) */
static double bench_store(sl_store *s, int depth)
{
    run r = {0};
    r.base = event_base_new();
    r.c = sl_store_conn_open(s, r.base, NULL);
    r.t_end = sl_now_us() + (int64_t)(secs * 1e6);
    int64_t t0 = sl_now_us();
    if (depth == 1) {
        while (!r.stop)
            next(&r);       /* memory: every call completes before it returns */
    } else {
        r.chain = true;
        for (int i = 0; i < depth; i++)
            next(&r);
        event_base_dispatch(r.base);
    }
    double rate = (double)r.done / ((double)(sl_now_us() - t0) / 1e6);
    sl_store_conn_close(r.c);
    event_base_free(r.base);
    return rate;
}

typedef struct mt { sl_store *s; double rate; } mt;

static void *mt_main(void *arg)
{
    mt *m = arg;
    m->rate = bench_store(m->s, 1);
    return NULL;
}

static double bench_threads(sl_store *s, int n)
{
    pthread_t th[8];
    mt m[8];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        m[i].s = s;
        pthread_create(&th[i], NULL, mt_main, &m[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        sum += m[i].rate;
    }
    return sum;
}

/* The peer: two HINCRBYs per "pair" through hiredis async, same depth. */
static void peer_next(run *r);

static void peer_second(redisAsyncContext *ac, void *reply, void *priv)
{
    run *r = priv;
    r->done++;
    r->inflight--;
    peer_next(r);
}

static void peer_first(redisAsyncContext *ac, void *reply, void *priv)
{
    redisAsyncCommand(ac, peer_second, priv, "HINCRBY peer:q used 50");
}

static void peer_next(run *r)
{
    if (sl_now_us() >= r->t_end) {
        if (r->inflight == 0)
            event_base_loopbreak(r->base);
        return;
    }
    r->inflight++;
    redisAsyncCommand(r->peer, peer_first, r, "HINCRBY peer:q reserved 100");
}

static double bench_peer(int depth)
{
    run r = {0};
    r.base = event_base_new();
    r.peer = redisAsyncConnectUnix(sock);
    redisLibeventAttach(r.peer, r.base);
    r.t_end = sl_now_us() + (int64_t)(secs * 1e6);
    int64_t t0 = sl_now_us();
    for (int i = 0; i < depth; i++)
        peer_next(&r);
    event_base_dispatch(r.base);
    double rate = (double)r.done / ((double)(sl_now_us() - t0) / 1e6);
    redisAsyncFree(r.peer);
    event_base_free(r.base);
    return rate;
}

static sl_store *open_store(sl_store_backend b, const char *path)
{
    char url[200];
    snprintf(url, sizeof url, "unix:%s", sock);
    sl_store_opts o = {.backend = b, .path = path, .redis_url = url, .secret = "bench",
                       .secret_len = 5};
    sl_err err = {{0}};
    sl_store *s = sl_store_open(&o, &err);
    if (!s) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return s;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        secs = atof(argv[1]);
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(dir))
        return 1;
    snprintf(sock, sizeof sock, "%s/redis.sock", dir);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
               "--appendonly", "no", "--dir", dir, "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        redisContext *c = redisConnectUnix(sock);
        bool ok = c && !c->err;
        redisFree(c);
        if (ok)
            break;
        usleep(50000);
    }
    char journal[200];
    snprintf(journal, sizeof journal, "%s/bench.journal", dir);

    printf("%-44s %14s\n", "reserve+settle pairs", "pairs/s");
    sl_store *m = open_store(SL_STORE_MEMORY, NULL);
    printf("%-44s %14.0f\n", "memory, 1 thread", bench_store(m, 1));
    printf("%-44s %14.0f\n", "memory, 2 threads (one consumer)", bench_threads(m, 2));
    sl_store_close(m);
    m = open_store(SL_STORE_MEMORY, journal);
    printf("%-44s %14.0f\n", "memory + journal, 1 thread", bench_store(m, 1));
    sl_store_close(m);
    sl_store *r = open_store(SL_STORE_REDIS, NULL);
    double r1 = bench_store(r, 2), r64 = bench_store(r, 64);
    double p1 = bench_peer(2), p64 = bench_peer(64);
    printf("%-44s %14.0f\n", "redis Lua, 1 conn, 2 in flight", r1);
    printf("%-44s %14.0f\n", "  peer: 2x HINCRBY, 2 in flight", p1);
    printf("%-44s %14.0f\n", "redis Lua, 1 conn, 64 in flight", r64);
    printf("%-44s %14.0f\n", "  peer: 2x HINCRBY, 64 in flight", p64);
    printf("ratio redis store / peer: %.2f (2 in flight), %.2f (64 in flight)\n", r1 / p1, r64 / p64);
    sl_store_close(r);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}
