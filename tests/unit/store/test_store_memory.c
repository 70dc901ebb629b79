/* The memory store: the behaviour suite (journaled), plus what its journal promises:
 * issued keys and charged usage survive kill -9, a torn tail is dropped, not fatal, the
 * journal is compacted on start, it is synced by period and before a key is answered, and
 * a failed sync writes its records again, once. fdatasync is wrapped (-Wl,--wrap) to count
 * the syncs and to make one fail. */
#include <errno.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "store_int.h"
#include "store_journal.h"
#include "store_suite.h"

static char dir[256];
static int serial;

static atomic_int syncs;        /* fdatasync calls */
static atomic_int syncs_to_fail; /* the next ones fail with EIO */

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
int __wrap_fdatasync(int fd)
{
    atomic_fetch_add(&syncs, 1);
    if (atomic_load(&syncs_to_fail) > 0) {
        atomic_fetch_sub(&syncs_to_fail, 1);
        errno = EIO;
        return -1;
    }
    return __real_fdatasync(fd);
}

static sl_store *open_with(const char *path, int64_t ttl, int sync_ms, sl_err *err)
{
    sl_store_opts o = {
        .backend = SL_STORE_MEMORY,
        .path = path,
        .secret = "suite-secret",
        .secret_len = 12,
        .resv_ttl_ms = ttl,
        .journal_sync_ms = sync_ms,
    };
    return sl_store_open(&o, err);
}

static sl_store *open_at(const char *path, int64_t ttl, sl_err *err) { return open_with(path, ttl, 0, err); }

static sl_store *open_memory(int64_t ttl, bool fail_open)
{
    char path[512];
    snprintf(path, sizeof path, "%s/suite-%d.journal", dir, serial++);
    sl_err err = {{0}};
    sl_store *s = open_at(path, ttl, &err);
    if (!s)
        fail_msg("open: %s", err.msg);
    return s;
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/sluice-store-test-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    suite_open = open_memory;
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* A child issues keys and charges usage, sees the callbacks, then dies by SIGKILL. */
static void journal_survives_kill9(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/crash.journal", dir);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        sl_store *s = open_at(path, 0, NULL);
        tconn t;
        res r = {0};
        tconn_open(&t, s);
        for (int i = 0; i < 3; i++) {
            if (t_issue(&t, "acme", "crash", 0, &r) != SL_STORE_OK)
                _exit(2);
            dprintf(fds[1], "%s\n", r.plain);
        }
        for (int i = 0; i < 3; i++) {
            t_reserve(&t, "acme", SL_WINDOW_MONTH, 1000, 1, 100, &r);
            t_settle(&t, &r.resv, 10 + i, &r);
        }
        /* revoke the first key; its durable callback also covers the settles before it */
        t_list(&t, "acme", &r);
        char id[SL_KEY_ID_SIZE];
        snprintf(id, sizeof id, "%s", r.keys[0].id);
        if (t_revoke(&t, id, &r) != SL_STORE_OK)
            _exit(3);
        dprintf(fds[1], "%s\n", id);
        raise(SIGKILL);
        _exit(4);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char keys[3][64], revoked[64];
    for (int i = 0; i < 3; i++) {
        assert_non_null(fgets(keys[i], sizeof keys[i], f));
        keys[i][strcspn(keys[i], "\n")] = '\0';
    }
    assert_non_null(fgets(revoked, sizeof revoked, f));
    revoked[strcspn(revoked, "\n")] = '\0';
    fclose(f);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    sl_err err = {{0}};
    sl_store *s = open_at(path, 0, &err);
    assert_non_null(s);
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    int live = 0, gone = 0;
    for (int i = 0; i < 3; i++) {
        sl_store_status st = t_lookup(&t, keys[i], &r);
        assert_string_equal(r.key.consumer, "acme");
        if (st == SL_STORE_OK)
            live++;
        else if (st == SL_STORE_REVOKED && strcmp(r.key.id, revoked) == 0)
            gone++;
    }
    assert_int_equal(live, 2);
    assert_int_equal(gone, 1);
    assert_int_equal(t_usage(&t, "acme", SL_WINDOW_MONTH, 1000, &r), SL_STORE_OK);
    assert_int_equal(r.usage.used, 10 + 11 + 12);
    assert_int_equal(r.usage.requests, 3);
    assert_int_equal(r.usage.reserved, 0);      /* reservations die with the process */
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
}

static void append_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void make_journal(const char *path, char key[SL_KEY_SIZE])
{
    sl_store *s = open_at(path, 0, NULL);
    assert_non_null(s);
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    assert_int_equal(t_issue(&t, "acme", NULL, 0, &r), SL_STORE_OK);
    snprintf(key, SL_KEY_SIZE, "%s", r.plain);
    assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_TOTAL, 1000, 1, 50, &r), SL_STORE_OK);
    assert_int_equal(t_settle(&t, &r.resv, 50, &r), SL_STORE_OK);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
}

static void check_journal(const char *path, const char *key, size_t want_dropped)
{
    sl_err err = {{0}};
    sl_store *s = open_at(path, 0, &err);
    if (!s)
        fail_msg("reopen: %s", err.msg);
    size_t records, dropped;
    sl_store_memory_replay_info(s, &records, &dropped);
    assert_int_equal(dropped, want_dropped);
    assert_int_equal(records, 2);
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    assert_int_equal(t_lookup(&t, key, &r), SL_STORE_OK);
    assert_int_equal(t_usage(&t, "acme", SL_WINDOW_TOTAL, 1000, &r), SL_STORE_OK);
    assert_int_equal(r.usage.used, 50);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
}

static void torn_tail_is_dropped(void **state)
{
    char path[512], key[SL_KEY_SIZE];
    snprintf(path, sizeof path, "%s/torn.journal", dir);
    make_journal(path, key);
    /* a record cut short: header says 100 bytes, 10 arrived */
    unsigned char torn[18] = {100, 0, 0, 0, 1, 2, 3, 4, 'U', 0x1f, 'a', 'c', 'm', 'e', 0x1f, '4', 0x1f, '0'};
    append_bytes(path, torn, sizeof torn);
    check_journal(path, key, sizeof torn);
    /* the reopen compacted it away */
    check_journal(path, key, 0);
    /* only a header's first bytes */
    append_bytes(path, torn, 3);
    check_journal(path, key, 3);
}

static void corrupt_last_record_is_dropped(void **state)
{
    char path[512], key[SL_KEY_SIZE];
    snprintf(path, sizeof path, "%s/crc.journal", dir);
    make_journal(path, key);
    sl_jbuf b = {0};
    const char *payload = "U\x1f" "acme\x1f" "4\x1f" "0\x1f" "900\x1f" "1";
    assert_int_equal(sl_jbuf_record(&b, payload, strlen(payload)), 0);
    b.data[4] ^= 0x55;      /* the CRC no longer matches */
    append_bytes(path, b.data, b.len);
    check_journal(path, key, b.len);    /* the 900 tokens were not applied */
    sl_jbuf_free(&b);
}

static void journal_is_compacted_on_start(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/compact.journal", dir);
    sl_store *s = open_at(path, 0, NULL);
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    assert_int_equal(t_issue(&t, "acme", NULL, 0, &r), SL_STORE_OK);
    for (int i = 0; i < 500; i++) {
        assert_int_equal(t_reserve(&t, "acme", SL_WINDOW_DAY, 1000000, 1, 10, &r), SL_STORE_OK);
        assert_int_equal(t_settle(&t, &r.resv, 3, &r), SL_STORE_OK);
    }
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
    long before = file_size(path);
    assert_true(before > 500 * 20);

    s = open_at(path, 0, NULL);
    assert_non_null(s);
    long after = file_size(path);
    assert_true(after < before / 20);
    tconn_open(&t, s);
    assert_int_equal(t_usage(&t, "acme", SL_WINDOW_DAY, 1000000, &r), SL_STORE_OK);
    assert_int_equal(r.usage.used, 1500);
    assert_int_equal(r.usage.requests, 500);
    assert_int_equal(t_list(&t, "acme", &r), SL_STORE_OK);
    assert_int_equal(r.n, 1);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
    /* and the snapshot itself replays to the same state */
    s = open_at(path, 0, NULL);
    tconn_open(&t, s);
    assert_int_equal(t_usage(&t, "acme", SL_WINDOW_DAY, 1000000, &r), SL_STORE_OK);
    assert_int_equal(r.usage.used, 1500);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
    assert_int_equal(file_size(path), after);
}

static void unwritable_journal_is_a_clear_error(void **state)
{
    sl_err err = {{0}};
    assert_null(open_at("/nonexistent-dir/sluice.journal", 0, &err));
    assert_non_null(strstr(err.msg, "/nonexistent-dir/sluice.journal"));
    sl_store_opts o = {.backend = SL_STORE_MEMORY};
    assert_null(sl_store_open(&o, &err));
    assert_non_null(strstr(err.msg, "SLUICE_SECRET"));
}

/* The config's store section opens the store it describes (secret from SLUICE_SECRET). */
static void store_opens_from_config(void **state)
{
    char yaml[1200], cpath[512], jpath[512];
    snprintf(cpath, sizeof cpath, "%s/sluice.yaml", dir);
    snprintf(jpath, sizeof jpath, "%s/from-config.journal", dir);
    snprintf(yaml, sizeof yaml, "listen:\n  - address: 127.0.0.1:0\nstore:\n  backend: memory\n"
             "  path: %s\nupstreams: {}\nmodels: {}\n", jpath);
    FILE *f = fopen(cpath, "w");
    assert_non_null(f);
    fputs(yaml, f);
    fclose(f);
    setenv("SLUICE_SECRET", "from-env", 1);
    sl_diag d;
    sl_diag_init(&d, cpath);
    sl_config *c = sl_config_load(cpath, &d);
    if (!c)
        fail_msg("config: %s", d.n ? d.lines[0] : "?");
    sl_diag_free(&d);
    sl_store_opts o;
    sl_store_opts_from_config(&o, c);
    sl_err err = {{0}};
    sl_store *s = sl_store_open(&o, &err);
    if (!s)
        fail_msg("open: %s", err.msg);
    sl_config_unref(c);
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    assert_int_equal(t_issue(&t, "acme", NULL, 0, &r), SL_STORE_OK);
    char hash[SL_KEY_HASH_SIZE];
    sl_key_hash("from-env", 8, r.plain, hash, NULL);
    assert_string_equal(r.key.hash, hash);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
    assert_true(file_size(jpath) > 0);
}

static sl_store *open_syncing(const char *path, int sync_ms)
{
    sl_err err = {{0}};
    sl_store *s = open_with(path, 0, sync_ms, &err);
    if (!s)
        fail_msg("open: %s", err.msg);
    return s;
}

/* Wait (up to 10 s) until the journal is larger than size. */
static long grown_past(const char *path, long size)
{
    long now = file_size(path);
    for (int i = 0; i < 1000 && now <= size; i++) {
        usleep(10000);
        now = file_size(path);
    }
    return now;
}

static void charge(tconn *t, int64_t tokens)
{
    res r = {0};
    assert_int_equal(t_reserve(t, "acme", SL_WINDOW_MONTH, 1000000, 1, 100, &r), SL_STORE_OK);
    assert_int_equal(t_settle(t, &r.resv, tokens, &r), SL_STORE_OK);
    res_reset(&r);
}

static void usage_is(const char *path, int64_t used, int64_t requests)
{
    sl_store *s = open_syncing(path, 0);
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    assert_int_equal(t_usage(&t, "acme", SL_WINDOW_MONTH, 1000000, &r), SL_STORE_OK);
    assert_int_equal(r.usage.used, used);
    assert_int_equal(r.usage.requests, requests);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
}

/* Usage is written within a batch but synced only by period (here an hour, so never in the
 * test); a key's issue is synced before it is answered, and closing syncs what is left. */
static void journal_syncs_for_keys_and_by_period(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/period.journal", dir);
    sl_store *s = open_syncing(path, 3600 * 1000);
    tconn t;
    res r = {0};
    tconn_open(&t, s);
    atomic_store(&syncs, 0);
    long size = file_size(path);
    for (int i = 0; i < 5; i++)
        charge(&t, 10);
    size = grown_past(path, size);
    assert_true(size > 0);
    assert_int_equal(atomic_load(&syncs), 0); /* written, not synced */
    assert_int_equal(t_issue(&t, "acme", "k", 0, &r), SL_STORE_OK);
    assert_int_equal(atomic_load(&syncs), 1); /* the key waited for one */
    charge(&t, 7);
    grown_past(path, file_size(path));
    assert_int_equal(atomic_load(&syncs), 1);
    res_reset(&r);
    tconn_close(&t);
    sl_store_close(s);
    assert_int_equal(atomic_load(&syncs), 2); /* the last charge, on close */
    usage_is(path, 57, 6);
}

/* With the default period (1 s) usage is synced within about a second, with no key waiting. */
static void journal_syncs_within_the_default_period(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/default.journal", dir);
    sl_store *s = open_syncing(path, 0);
    tconn t;
    tconn_open(&t, s);
    atomic_store(&syncs, 0);
    charge(&t, 5);
    for (int i = 0; i < 1000 && atomic_load(&syncs) == 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&syncs), 1);
    tconn_close(&t);
    sl_store_close(s);
    usage_is(path, 5, 1);
}

/* A sync that fails: spending is refused until the records are written and synced again,
 * and the journal holds each record once (usage records add up: a lost one or one written
 * twice would show). Every batch synced, and an hourly period with a key forcing the sync. */
static void failed_sync_writes_the_records_again(void **state)
{
    for (int mode = 0; mode < 2; mode++) {
        char path[512];
        snprintf(path, sizeof path, "%s/eio-%d.journal", dir, mode);
        sl_store *s = open_syncing(path, mode == 0 ? -1 : 3600 * 1000);
        tconn t;
        res r = {0};
        tconn_open(&t, s);
        charge(&t, 100);
        if (mode == 1)
            assert_int_equal(t_issue(&t, "acme", "before", 0, &r), SL_STORE_OK);
        grown_past(path, 0);
        long synced = file_size(path);
        atomic_store(&syncs_to_fail, 1);
        charge(&t, 20);
        charge(&t, 3);
        if (mode == 1) /* the failed sync is answered as such */
            assert_int_equal(t_issue(&t, "acme", "during", 0, &r), SL_STORE_ERROR);
        for (int i = 0; i < 1000 && atomic_load(&syncs_to_fail) > 0; i++)
            usleep(10000);
        assert_int_equal(atomic_load(&syncs_to_fail), 0);
        /* refused while broken, then served again once the next pass wrote the records again */
        int served = 0;
        for (int i = 0; i < 500 && !served; i++) {
            sl_store_status st = t_reserve(&t, "acme", SL_WINDOW_MONTH, 1000000, 1, 100, &r);
            if (st == SL_STORE_OK) {
                assert_int_equal(t_settle(&t, &r.resv, 1, &r), SL_STORE_OK);
                served = 1;
            } else {
                assert_int_equal(st, SL_STORE_UNAVAILABLE);
                if (mode == 1) /* nothing forces the retry's sync but a waiting key */
                    t_issue(&t, "acme", "retry", 0, &r);
                usleep(10000);
            }
        }
        assert_true(served);
        assert_true(file_size(path) > synced);
        res_reset(&r);
        tconn_close(&t);
        sl_store_close(s);
        usage_is(path, 124, 4);
    }
}

/* Without a journal every call completes before it returns, even with no loop. */
static void unjournaled_store_is_synchronous(void **state)
{
    sl_store_opts o = {.backend = SL_STORE_MEMORY, .secret = "x", .secret_len = 1};
    sl_store *s = sl_store_open(&o, NULL);
    assert_non_null(s);
    tconn t = {.base = NULL, .c = sl_store_conn_open(s, NULL, NULL)};
    assert_non_null(t.c);
    res r = {0};
    assert_int_equal(t_issue(&t, "acme", NULL, 0, &r), SL_STORE_OK);
    char key[SL_KEY_SIZE];
    snprintf(key, sizeof key, "%s", r.plain);
    assert_int_equal(t_lookup(&t, key, &r), SL_STORE_OK);
    assert_int_equal(t_revoke(&t, r.key.id, &r), SL_STORE_OK);
    assert_int_equal(t_lookup(&t, key, &r), SL_STORE_REVOKED);
    res_reset(&r);
    sl_store_conn_close(t.c);
    sl_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_SUITE_TESTS,
        cmocka_unit_test(journal_survives_kill9),
        cmocka_unit_test(torn_tail_is_dropped),
        cmocka_unit_test(corrupt_last_record_is_dropped),
        cmocka_unit_test(journal_is_compacted_on_start),
        cmocka_unit_test(unwritable_journal_is_a_clear_error),
        cmocka_unit_test(unjournaled_store_is_synchronous),
        cmocka_unit_test(store_opens_from_config),
        cmocka_unit_test(journal_syncs_for_keys_and_by_period),
        cmocka_unit_test(journal_syncs_within_the_default_period),
        cmocka_unit_test(failed_sync_writes_the_records_again),
    };
    return cmocka_run_group_tests_name("store_memory", tests, setup, teardown);
}
