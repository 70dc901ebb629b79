/* The redis store against a real redis-server started here on a unix socket: the
 * behaviour suite, two gateway instances sharing one Redis, revocation seen across
 * instances, scripts reloaded after SCRIPT FLUSH, and both on_failure modes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "store_suite.h"

static char dir[256], sock[300];
static pid_t redis_pid = -1;
static int serial;

/* Start redis-server on socket path; wait until it answers PING (up to 20 s). */
static pid_t start_redis(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", 1);
        dup2(null, 1);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", path,
               "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", dir,
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        redisContext *c = redisConnectUnix(path);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            redisFree(c);
            if (ok)
                return pid;
        } else if (c) {
            redisFree(c);
        }
        usleep(50 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void stop_redis(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

static int timeout_ms;      /* 0 = the default */

static sl_store *open_redis_at(const char *path, const char *prefix, int64_t ttl, bool fail_open)
{
    char url[400];
    snprintf(url, sizeof url, "unix:%s", path);
    sl_store_opts o = {
        .backend = SL_STORE_REDIS,
        .redis_url = url,
        .redis_prefix = prefix,
        .secret = "suite-secret",
        .secret_len = 12,
        .resv_ttl_ms = ttl,
        .fail_open = fail_open,
        .redis_timeout_ms = timeout_ms,
    };
    sl_err err = {{0}};
    sl_store *s = sl_store_open(&o, &err);
    if (!s)
        fail_msg("open: %s", err.msg);
    return s;
}

static sl_store *open_redis(int64_t ttl, bool fail_open)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "t%d:", serial++);
    return open_redis_at(sock, prefix, ttl, fail_open);
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/sluice-redis-test-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(sock, sizeof sock, "%s/redis.sock", dir);
    /* as in the gateway: hiredis writes to a socket Redis may have closed */
    signal(SIGPIPE, SIG_IGN);
    redis_pid = start_redis(sock);
    suite_open = open_redis;
    return redis_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    stop_redis(redis_pid);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Two gateways (two stores, three threads each) share one quota. */
static void two_instances_never_exceed_quota(void **state)
{
    sl_store *s[2] = {open_redis_at(sock, "shared:", 0, false), open_redis_at(sock, "shared:", 0, false)};
    suite_hammer(s, 2, 6, 5000);
    suite_rate_hammer(s, 2, 4);
    sl_store_close(s[0]);
    sl_store_close(s[1]);
}

/* A revoke on instance A reaches instance B (which had the key cached) within 1 s. */
static void revocation_reaches_other_instance(void **state)
{
    sl_store *a = open_redis_at(sock, "rev:", 0, false), *b = open_redis_at(sock, "rev:", 0, false);
    tconn ta, tb;
    res r = {0};
    tconn_open(&ta, a);
    tconn_open(&tb, b);
    assert_int_equal(t_issue(&ta, "acme", NULL, 0, &r), SL_STORE_OK);
    char key[SL_KEY_SIZE], id[SL_KEY_ID_SIZE];
    snprintf(key, sizeof key, "%s", r.plain);
    snprintf(id, sizeof id, "%s", r.key.id);
    assert_int_equal(t_lookup(&tb, key, &r), SL_STORE_OK);     /* now cached on B */
    assert_int_equal(t_lookup(&tb, key, &r), SL_STORE_OK);
    assert_string_equal(r.key.consumer, "acme");
    assert_int_equal(t_revoke(&ta, id, &r), SL_STORE_OK);
    assert_int_equal(t_lookup(&ta, key, &r), SL_STORE_REVOKED);  /* at once where revoked */
    usleep(1000 * 1000);
    assert_int_equal(t_lookup(&tb, key, &r), SL_STORE_REVOKED);
    /* B lists what A issued */
    assert_int_equal(t_list(&tb, "acme", &r), SL_STORE_OK);
    assert_int_equal(r.n, 1);
    res_reset(&r);
    tconn_close(&ta);
    tconn_close(&tb);
    sl_store_close(a);
    sl_store_close(b);
}

/* After SCRIPT FLUSH (a Redis restart or failover) EVALSHA fails with NOSCRIPT and the
 * store falls back to EVAL. */
static void scripts_survive_script_flush(void **state)
{
    sl_store *s = open_redis(0, false);
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_DAY, 100, 1, 10, &r), SL_STORE_OK);
    redisContext *c = redisConnectUnix(sock);
    assert_true(c && !c->err);
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    redisFree(c);
    assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_DAY, 100, 1, 10, &r), SL_STORE_OK);
    assert_int_equal(r.usage.reserved, 20);
    assert_int_equal(t_rate(&t, "rpm:acme", 10, 1, SL_RATE_CHECK, &r), SL_STORE_OK);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
}

static void fail_closed_refuses(void **state)
{
    char path[400];
    snprintf(path, sizeof path, "%s/nobody.sock", dir);
    sl_store *s = open_redis_at(path, "x:", 0, false);
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    char key[SL_KEY_SIZE];
    sl_key_generate(key, NULL);
    assert_int_equal(t_lookup(&t, key, &r), SL_STORE_UNAVAILABLE);
    assert_non_null(strstr(r.err, "store unavailable"));
    assert_non_null(strstr(r.err, "nobody.sock"));
    assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_DAY, 100, 1, 10, &r), SL_STORE_UNAVAILABLE);
    assert_int_equal(t_rate(&t, "rpm:acme", 10, 1, SL_RATE_CHECK, &r), SL_STORE_UNAVAILABLE);
    assert_int_equal(t_issue(&t, "acme", NULL, 0, &r), SL_STORE_UNAVAILABLE);
    assert_int_equal(t_usage(&t, "acme", SL_WINDOW_DAY, 100, &r), SL_STORE_UNAVAILABLE);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
}

static void run_loop_ms(tconn *t, int ms)
{
    struct timeval tv = {0, ms * 1000};
    event_base_loopexit(t->base, &tv);
    event_base_dispatch(t->base);
}

/* on_failure: open serves while Redis is down and adds the usage when it is back. */
static void fail_open_serves_and_reconciles(void **state)
{
    char path[400];
    snprintf(path, sizeof path, "%s/late.sock", dir);
    sl_store *s = open_redis_at(path, "late:", 0, true);
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_DAY, 100, 1, 60, &r), SL_STORE_OK);
    assert_int_equal(r.resv.amount, 60);
    sl_quota_resv first = r.resv;
    /* counted locally: 40 left */
    assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_DAY, 100, 50, 60, &r), SL_STORE_DENIED);
    assert_int_equal(r.usage.remaining, 40);
    assert_int_equal(t_settle(&t, &first, 42, &r), SL_STORE_OK);
    assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_DAY, 100, 1, 100, &r), SL_STORE_OK);
    assert_int_equal(r.resv.amount, 58);
    assert_int_equal(t_release(&t, &r.resv, &r), SL_STORE_OK);
    assert_int_equal(t_rate(&t, "rpm:acme", 10, 1, SL_RATE_CHECK, &r), SL_STORE_OK);
    assert_true(r.rate.allowed);

    pid_t late = start_redis(path);
    assert_true(late > 0);
    int64_t used = -1;
    for (int i = 0; i < 300 && used != 42; i++) {     /* reconnect backoff: up to 5 s */
        run_loop_ms(&t, 50);
        if (t_usage(&t, "acme", SL_WINDOW_DAY, 100, &r) == SL_STORE_OK)
            used = r.usage.used;
    }
    assert_int_equal(used, 42);
    assert_int_equal(r.usage.requests, 1);
    assert_int_equal(r.usage.remaining, 58);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
    stop_redis(late);
}

/* Redis restarts under a running gateway: the conn reconnects by itself. */
static void reconnects_after_redis_restart(void **state)
{
    char path[400];
    snprintf(path, sizeof path, "%s/restart.sock", dir);
    pid_t pid = start_redis(path);
    assert_true(pid > 0);
    sl_store *s = open_redis_at(path, "rs:", 0, false);
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    assert_int_equal(t_rate(&t, "k", 10, 1, SL_RATE_CHECK, &r), SL_STORE_OK);
    stop_redis(pid);
    sl_store_status st = t_rate(&t, "k", 10, 1, SL_RATE_CHECK, &r);
    assert_int_equal(st, SL_STORE_UNAVAILABLE);
    pid = start_redis(path);
    assert_true(pid > 0);
    for (int i = 0; i < 300 && st != SL_STORE_OK; i++) {
        run_loop_ms(&t, 50);
        st = t_rate(&t, "k", 10, 1, SL_RATE_CHECK, &r);
    }
    assert_int_equal(st, SL_STORE_OK);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
    stop_redis(pid);
}

/* A Redis that stops answering (SIGSTOP) fails the calls waiting on it after the
 * timeout instead of stalling them; when it answers again the conn comes back. */
static void stalled_redis_fails_calls_then_recovers(void **state)
{
    char path[400];
    snprintf(path, sizeof path, "%s/stall.sock", dir);
    pid_t pid = start_redis(path);
    assert_true(pid > 0);
    timeout_ms = 1000;
    sl_store *s = open_redis_at(path, "st:", 0, false);
    timeout_ms = 0;
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    assert_int_equal(t_rate(&t, "k", 10, 1, SL_RATE_CHECK, &r), SL_STORE_OK);
    kill(pid, SIGSTOP);
    assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_DAY, 100, 1, 10, &r), SL_STORE_UNAVAILABLE);
    assert_non_null(strstr(r.err, "no answer within 1000 ms"));
    kill(pid, SIGCONT);
    sl_store_status st = SL_STORE_UNAVAILABLE;
    for (int i = 0; i < 300 && st != SL_STORE_OK; i++) {
        run_loop_ms(&t, 50);
        st = t_reserve(&t, "acme", SL_WINDOW_DAY, 100, 1, 10, &r);
    }
    assert_int_equal(st, SL_STORE_OK);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
    stop_redis(pid);
}

/* A settle sent to a Redis that stalls: the conn gives up on it, and Redis runs it later
 * anyway (it was in the socket). The replay sent on reconnect must not charge again. */
static void settle_lost_in_flight_is_charged_once(void **state)
{
    char path[400];
    snprintf(path, sizeof path, "%s/lost.sock", dir);
    pid_t pid = start_redis(path);
    assert_true(pid > 0);
    timeout_ms = 500;
    sl_store *s = open_redis_at(path, "lost:", 0, false);
    timeout_ms = 0;
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_DAY, 100, 1, 10, &r), SL_STORE_OK);
    sl_quota_resv resv = r.resv;
    kill(pid, SIGSTOP);
    assert_int_equal(t_settle(&t, &resv, 7, &r), SL_STORE_OK);    /* queued after the timeout */
    run_loop_ms(&t, 300);
    kill(pid, SIGCONT);
    int64_t used = -1;
    for (int i = 0; i < 300; i++) {
        run_loop_ms(&t, 50);
        if (t_usage(&t, "acme", SL_WINDOW_DAY, 100, &r) == SL_STORE_OK && r.usage.reserved == 0) {
            used = r.usage.used;
            run_loop_ms(&t, 300);       /* let any further replay land */
            assert_int_equal(t_usage(&t, "acme", SL_WINDOW_DAY, 100, &r), SL_STORE_OK);
            break;
        }
    }
    assert_int_equal(used, 7);
    assert_int_equal(r.usage.used, 7);
    assert_int_equal(r.usage.requests, 1);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
    stop_redis(pid);
}

/* A reserve sent to a Redis that stalls: the caller is told UNAVAILABLE after the timeout,
 * and Redis makes the reservation later anyway (it was in the socket). The conn takes it
 * back on reconnect instead of leaving the tokens held until the reservation's TTL. */
static void reserve_lost_in_flight_is_released(void **state)
{
    char path[400];
    snprintf(path, sizeof path, "%s/lostr.sock", dir);
    pid_t pid = start_redis(path);
    assert_true(pid > 0);
    timeout_ms = 500;
    sl_store *s = open_redis_at(path, "lostr:", 0, false);
    timeout_ms = 0;
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    assert_int_equal(t_usage(&t, "acme", SL_WINDOW_DAY, 100, &r), SL_STORE_OK);
    kill(pid, SIGSTOP);
    assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_DAY, 100, 1, 10, &r), SL_STORE_UNAVAILABLE);
    run_loop_ms(&t, 300);
    kill(pid, SIGCONT);
    bool back = false, seen_reserved = false;
    for (int i = 0; i < 300 && !back; i++) {
        run_loop_ms(&t, 50);
        if (t_usage(&t, "acme", SL_WINDOW_DAY, 100, &r) == SL_STORE_OK) {
            seen_reserved |= r.usage.reserved != 0;
            back = r.usage.reserved == 0;
        }
    }
    assert_true(back);
    assert_int_equal(r.usage.used, 0);
    assert_int_equal(r.usage.remaining, 100);
    /* and the next reserve has the whole window again */
    assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_DAY, 100, 100, 100, &r), SL_STORE_OK);
    assert_int_equal(r.resv.amount, 100);
    (void)seen_reserved; /* whether a usage call saw it before the release depends on timing */
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
    stop_redis(pid);
}

static void bad_url_is_a_clear_error(void **state)
{
    sl_store_opts o = {.backend = SL_STORE_REDIS, .redis_url = "http://x", .secret = "s", .secret_len = 1};
    sl_err err = {{0}};
    assert_null(sl_store_open(&o, &err));
    assert_non_null(strstr(err.msg, "redis://"));
    o.redis_url = "redis://127.0.0.1:99999/0";
    assert_null(sl_store_open(&o, &err));
    o.redis_url = "redis://:pw@localhost:6380/2";
    sl_store *s = sl_store_open(&o, &err);
    assert_non_null(s);
    sl_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_SUITE_TESTS,
        cmocka_unit_test(two_instances_never_exceed_quota),
        cmocka_unit_test(revocation_reaches_other_instance),
        cmocka_unit_test(scripts_survive_script_flush),
        cmocka_unit_test(fail_closed_refuses),
        cmocka_unit_test(fail_open_serves_and_reconciles),
        cmocka_unit_test(reconnects_after_redis_restart),
        cmocka_unit_test(stalled_redis_fails_calls_then_recovers),
        cmocka_unit_test(settle_lost_in_flight_is_charged_once),
        cmocka_unit_test(reserve_lost_in_flight_is_released),
        cmocka_unit_test(bad_url_is_a_clear_error),
    };
    return cmocka_run_group_tests_name("store_redis", tests, setup, teardown);
}
