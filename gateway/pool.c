#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"

#define TICK_MS 250
#define BACKOFF_MAX_MS 60000
#define DRAIN_KILL_MS 10000     /* a retired engine that ignores SIGTERM this long is killed */
#define POOL_SLOTS 256          /* engine processes at most, draining ones included */

typedef struct probe {
    struct sl_pool *pool;
    sl_engine_proc *proc;
    struct bufferevent *bev;
    struct event *timeout;
} probe;

struct sl_pool {
    struct event_base *base;
    char dir[256];
    char engine_bin[PATH_MAX];
    sl_engine_proc *procs;      /* POOL_SLOTS, never moved: worker threads read them */
    atomic_size_t n;            /* slots ever used: [0, n) are initialised */
    bool *probing;
    struct event *sigchld;
    struct event *tick;
    bool stopping;
    unsigned gen;               /* tells apart the sockets of successive processes */
};

const char *sl_engine_state_name(sl_engine_state s)
{
    static const char *const n[] = {"starting", "ready", "backoff", "stopping", "draining", "free"};
    return n[s];
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* $SLUICE_ENGINE; beside this binary (installed); the build tree's engine/server; $PATH. */
static void find_engine(char *out, size_t size)
{
    const char *env = getenv("SLUICE_ENGINE");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            const char *tries[] = {"/sluice-engine", "/../engine/server/sluice-engine"};
            for (size_t i = 0; i < 2; i++) {
                int w = snprintf(out, size, "%s%s", self, tries[i]);
                if (w > 0 && (size_t)w < size && access(out, X_OK) == 0)
                    return;
            }
        }
    }
    snprintf(out, size, "sluice-engine");
}

static void spawn(sl_pool *p, sl_engine_proc *e)
{
    const sl_upstream_conf *u = e->up;
    char listen[140];
    snprintf(listen, sizeof listen, "unix:%s", e->socket_path);
    unlink(e->socket_path);
    const char *argv[64 + 16];
    size_t a = 0;
    argv[a++] = p->engine_bin;
    argv[a++] = "--model";
    argv[a++] = u->model_dir;
    argv[a++] = "--listen";
    argv[a++] = listen;
    if (u->served_model_name) {
        argv[a++] = "--served-model-name";
        argv[a++] = u->served_model_name;
    }
    argv[a++] = "--backend";
    argv[a++] = u->backend ? u->backend : "auto";
    for (size_t i = 0; i < u->n_args && a < 64 + 14; i++)
        argv[a++] = u->args[i];
    argv[a] = NULL;
    char gpus[256] = "";
    if (u->gpus && e->index < u->workers && u->n_gpus[e->index] > 0) {
        size_t off = 0;
        for (int g = 0; g < u->n_gpus[e->index]; g++)
            off += (size_t)snprintf(gpus + off, sizeof gpus - off, "%s%d", g ? "," : "", u->gpus[e->index][g]);
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        sl_log_error("engine %s#%d: fork: %s", u->name, e->index, strerror(errno));
        e->next_start_ms = now_ms() + 1000;
        atomic_store(&e->state, SL_ENGINE_BACKOFF);
        return;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* the gateway gone: so is the engine */
        if (getppid() != parent)
            _exit(1);
        setpgid(0, 0); /* a terminal's ^C goes to the gateway, which drains first */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGXFSZ, SIG_DFL);
        int log = open(e->log_path, O_WRONLY | O_CREAT | O_APPEND, 0640);
        if (log >= 0) {
            dup2(log, STDOUT_FILENO);
            dup2(log, STDERR_FILENO);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        close_range(3, ~0U, 0);
        if (gpus[0])
            setenv("CUDA_VISIBLE_DEVICES", gpus, 1);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "sluice: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    e->pid = pid;
    e->started_ms = now_ms();
    atomic_store(&e->state, SL_ENGINE_STARTING);
    sl_log_info("engine %s#%d: started pid %d on %s%s%s (log %s)", u->name, e->index, (int)pid, e->socket_path,
                gpus[0] ? ", GPUs " : "", gpus, e->log_path);
}

static void retire_superseded(sl_pool *p, const sl_engine_proc *fresh);

/* ---- /health over the unix socket ---- */

static void probe_end(probe *pr, bool healthy)
{
    sl_pool *p = pr->pool;
    sl_engine_proc *e = pr->proc;
    p->probing[e - p->procs] = false;
    if (healthy && atomic_load(&e->state) == SL_ENGINE_STARTING) {
        atomic_store(&e->state, SL_ENGINE_READY);
        sl_log_info("engine %s#%d: ready after %lld ms", e->up->name, e->index, now_ms() - e->started_ms);
        retire_superseded(p, e);
    }
    bufferevent_free(pr->bev);
    event_free(pr->timeout);
    free(pr);
}

static void probe_read(struct bufferevent *bev, void *arg)
{
    probe *pr = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    if (n < 12)
        return;
    char head[13];
    evbuffer_copyout(in, head, 12);
    head[12] = 0;
    probe_end(pr, strncmp(head, "HTTP/1.", 7) == 0 && strncmp(head + 9, "200", 3) == 0);
}

static void probe_event(struct bufferevent *bev, short what, void *arg)
{
    probe *pr = arg;
    if (what & BEV_EVENT_CONNECTED) {
        static const char req[] = "GET /health HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n";
        bufferevent_write(bev, req, sizeof req - 1);
        return;
    }
    probe_end(pr, false);
}

static void probe_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    probe_end(arg, false);
}

static void probe_start(sl_pool *p, sl_engine_proc *e)
{
    size_t i = (size_t)(e - p->procs);
    if (p->probing[i])
        return;
    probe *pr = calloc(1, sizeof *pr);
    if (!pr)
        return;
    pr->pool = p;
    pr->proc = e;
    pr->bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
    pr->timeout = evtimer_new(p->base, probe_timeout, pr);
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    snprintf(su.sun_path, sizeof su.sun_path, "%s", e->socket_path);
    p->probing[i] = true;
    bufferevent_setcb(pr->bev, probe_read, NULL, probe_event, pr);
    bufferevent_enable(pr->bev, EV_READ | EV_WRITE);
    struct timeval tv = {2, 0};
    evtimer_add(pr->timeout, &tv);
    if (bufferevent_socket_connect(pr->bev, (struct sockaddr *)&su, sizeof su) < 0)
        probe_end(pr, false);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg);
static void sigchld_cb(evutil_socket_t fd, short what, void *arg);

/* ---- slots ---- */

static void slot_free(sl_pool *p, sl_engine_proc *e)
{
    (void)p;
    unlink(e->socket_path);
    unlink(e->log_path);
    if (e->cfg)
        sl_config_unref(e->cfg);
    e->cfg = NULL;
    e->up = NULL;
    e->pid = 0;
    atomic_store(&e->state, SL_ENGINE_FREE);
}

/* A retired engine gets SIGTERM once its last request is done (the engine finishes what it
 * has and exits); one that does not exit is killed. */
static void drain_step(sl_pool *p, sl_engine_proc *e, long long now)
{
    if (e->pid <= 0) {
        slot_free(p, e);
        return;
    }
    if (!e->term_sent && atomic_load(&e->outstanding) == 0) {
        kill(e->pid, SIGTERM);
        e->term_sent = true;
        e->drain_since_ms = now;
    } else if (e->term_sent && now - e->drain_since_ms > DRAIN_KILL_MS) {
        sl_log_warn("engine %s#%d: still running %d ms after SIGTERM: killed", e->upstream, e->index, DRAIN_KILL_MS);
        kill(e->pid, SIGKILL);
        e->drain_since_ms = now;
    }
}

static void retire(sl_pool *p, sl_engine_proc *e, const char *why)
{
    sl_log_info("engine %s#%d: %s: draining (%d requests in flight)", e->upstream, e->index, why,
                atomic_load(&e->outstanding));
    atomic_store(&e->state, SL_ENGINE_DRAINING);
    e->term_sent = false;
    drain_step(p, e, now_ms());
}

static void retire_superseded(sl_pool *p, const sl_engine_proc *fresh)
{
    for (size_t i = 0; i < atomic_load(&p->n); i++) {
        sl_engine_proc *e = &p->procs[i];
        if (e != fresh && e->superseded && e->index == fresh->index && strcmp(e->upstream, fresh->upstream) == 0 &&
            atomic_load(&e->state) != SL_ENGINE_DRAINING && atomic_load(&e->state) != SL_ENGINE_FREE)
            retire(p, e, "its replacement is ready");
    }
}

static bool same_str(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

/* Would worker `index` of a and of b be started the same way? */
static bool same_launch(const sl_upstream_conf *a, const sl_upstream_conf *b, int index)
{
    if (!same_str(a->model_dir, b->model_dir) || !same_str(a->served_model_name, b->served_model_name) ||
        !same_str(a->backend, b->backend) || a->n_args != b->n_args)
        return false;
    for (size_t i = 0; i < a->n_args; i++)
        if (strcmp(a->args[i], b->args[i]) != 0)
            return false;
    int na = a->gpus && index < a->workers ? a->n_gpus[index] : 0;
    int nb = b->gpus && index < b->workers ? b->n_gpus[index] : 0;
    if (na != nb)
        return false;
    for (int g = 0; g < na; g++)
        if (a->gpus[index][g] != b->gpus[index][g])
            return false;
    return true;
}

/* The runtime folder and the main-loop events, made when the first engine is. */
static int ensure_runtime(sl_pool *p, sl_err *err)
{
    if (p->dir[0])
        return 0;
    const char *rt = getenv("XDG_RUNTIME_DIR");
    snprintf(p->dir, sizeof p->dir, "%s/sluice-XXXXXX", rt && *rt && access(rt, W_OK) == 0 ? rt : "/tmp");
    if (!mkdtemp(p->dir)) {
        sl_err_set(err, "engine pool: cannot make a runtime folder %s: %s", p->dir, strerror(errno));
        p->dir[0] = 0;
        return -1;
    }
    find_engine(p->engine_bin, sizeof p->engine_bin);
    p->sigchld = evsignal_new(p->base, SIGCHLD, sigchld_cb, p);
    p->tick = event_new(p->base, -1, EV_PERSIST, tick_cb, p);
    if (!p->sigchld || !p->tick) {
        sl_err_set(err, "out of memory");
        return -1;
    }
    evsignal_add(p->sigchld, NULL);
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(p->tick, &tv);
    sl_log_info("engine pool: runtime folder %s, engine %s", p->dir, p->engine_bin);
    return 0;
}

/* Start worker `index` of upstream u (of cfg) in a free slot. */
static int start_worker(sl_pool *p, const sl_config *cfg, const sl_upstream_conf *u, int index, sl_err *err)
{
    if (ensure_runtime(p, err) < 0)
        return -1;
    sl_engine_proc *e = NULL;
    size_t n = atomic_load(&p->n);
    for (size_t i = 0; i < n && !e; i++)
        if (atomic_load(&p->procs[i].state) == SL_ENGINE_FREE && atomic_load(&p->procs[i].outstanding) == 0)
            e = &p->procs[i];
    if (!e && n < POOL_SLOTS)
        e = &p->procs[n];
    if (!e) {
        sl_err_set(err, "engine pool: more than %d engine processes", POOL_SLOTS);
        return -1;
    }
    unsigned gen = p->gen++;
    int n1 = snprintf(e->socket_path, sizeof e->socket_path, "%s/%.40s-%d.%u.sock", p->dir, u->name, index, gen);
    int n2 = snprintf(e->log_path, sizeof e->log_path, "%s/%.40s-%d.%u.log", p->dir, u->name, index, gen);
    if (n1 < 0 || (size_t)n1 >= sizeof e->socket_path || n2 < 0 || (size_t)n2 >= sizeof e->log_path) {
        sl_err_set(err, "engine pool: runtime folder path %s too long for a unix socket", p->dir);
        return -1;
    }
    snprintf(e->upstream, sizeof e->upstream, "%s", u->name);
    e->up = u;
    e->cfg = sl_config_ref((sl_config *)cfg);
    e->index = index;
    e->restarts = 0;
    e->term_sent = false;
    e->superseded = false;
    atomic_store(&e->state, SL_ENGINE_BACKOFF); /* taken: spawn sets STARTING */
    if (e == &p->procs[n])
        atomic_store(&p->n, n + 1);
    spawn(p, e);
    return 0;
}

static int workers_of(const sl_upstream_conf *u) { return u->workers > 0 ? u->workers : 1; }

/* ---- the main thread's loop: restarts and health ---- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_pool *p = arg;
    if (p->stopping)
        return;
    long long now = now_ms();
    for (size_t i = 0; i < atomic_load(&p->n); i++) {
        sl_engine_proc *e = &p->procs[i];
        int st = atomic_load(&e->state);
        if (st == SL_ENGINE_BACKOFF && now >= e->next_start_ms)
            spawn(p, e);
        else if (st == SL_ENGINE_STARTING)
            probe_start(p, e);
        else if (st == SL_ENGINE_DRAINING)
            drain_step(p, e, now);
    }
}

/* An engine's log, after it exited: its last lines, or, where it died on a sanitizer's
 * report, the report from its first line (the access, then where the memory was freed and
 * made), which the last lines alone would cut. */
static void log_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    static char buf[32768]; /* the main thread's alone */
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz > (long)sizeof buf - 1 ? sz - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    enum { LAST = 8, REPORT = 100 };
    char *report = strstr(buf, "==ERROR: ");
    if (!report)
        report = strstr(buf, ": runtime error: ");
    if (report) {
        while (report > buf && report[-1] != '\n')
            report--;
        int k = 0;
        for (char *line = strtok(report, "\n"); line && k < REPORT; line = strtok(NULL, "\n"), k++)
            sl_log_warn("  | %s", line);
        return;
    }
    char *line = strtok(buf, "\n");
    int shown = 0;
    char *lines[LAST] = {0};
    while (line) {
        lines[shown++ % LAST] = line;
        line = strtok(NULL, "\n");
    }
    for (int k = shown > LAST ? shown - LAST : 0; k < shown; k++)
        sl_log_warn("  | %s", lines[k % LAST]);
}

static void sigchld_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_pool *p = arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < atomic_load(&p->n); i++) {
            sl_engine_proc *e = &p->procs[i];
            if (e->pid != pid)
                continue;
            e->pid = 0;
            if (p->stopping) {
                atomic_store(&e->state, SL_ENGINE_STOPPING);
                break;
            }
            if (atomic_load(&e->state) == SL_ENGINE_DRAINING || e->superseded) {
                sl_log_info("engine %s#%d: drained and stopped (pid %d)", e->upstream, e->index, (int)pid);
                slot_free(p, e);
                break;
            }
            long long now = now_ms();
            if (now - e->started_ms > BACKOFF_MAX_MS)
                e->restarts = 0; /* it ran a good while: a fresh crash, restart at once */
            long long delay = 1000LL << (e->restarts < 6 ? e->restarts : 6);
            if (delay > BACKOFF_MAX_MS)
                delay = BACKOFF_MAX_MS;
            e->restarts++;
            e->next_start_ms = now + delay;
            atomic_store(&e->state, SL_ENGINE_BACKOFF);
            if (WIFEXITED(status))
                sl_log_warn("engine %s#%d: exited with status %d; restarting in %lld ms; its last lines:", e->up->name,
                            e->index, WEXITSTATUS(status), delay);
            else
                sl_log_warn("engine %s#%d: killed by signal %d; restarting in %lld ms; its last lines:", e->up->name,
                            e->index, WTERMSIG(status), delay);
            log_tail(e->log_path);
            break;
        }
    }
}

sl_pool *sl_pool_start(const sl_config *cfg, struct event_base *base, sl_err *err)
{
    sl_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->procs = calloc(POOL_SLOTS, sizeof *p->procs)) || !(p->probing = calloc(POOL_SLOTS, sizeof *p->probing))) {
        sl_err_set(err, "out of memory");
        sl_pool_free(p);
        return NULL;
    }
    p->base = base;
    for (size_t i = 0; i < POOL_SLOTS; i++)
        atomic_init(&p->procs[i].state, SL_ENGINE_FREE);
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const sl_upstream_conf *u = &cfg->upstreams[i];
        if (u->type != SL_UPSTREAM_ENGINE)
            continue;
        for (int w = 0; w < workers_of(u); w++)
            if (start_worker(p, cfg, u, w, err) < 0) {
                sl_pool_stop(p, 0);
                sl_pool_free(p);
                return NULL;
            }
    }
    if (atomic_load(&p->n))
        sl_log_info("engine pool: %zu engine processes", atomic_load(&p->n));
    return p;
}

void sl_pool_apply(sl_pool *p, const sl_config *cfg)
{
    if (!p || p->stopping)
        return;
    size_t n = atomic_load(&p->n);
    for (size_t i = 0; i < n; i++) {
        sl_engine_proc *e = &p->procs[i];
        int st = atomic_load(&e->state);
        if (st == SL_ENGINE_FREE || st == SL_ENGINE_DRAINING)
            continue;
        const sl_upstream_conf *u = sl_config_upstream(cfg, e->upstream);
        if (!u || u->type != SL_UPSTREAM_ENGINE)
            retire(p, e, "its upstream is gone from the config");
        else if (e->index >= workers_of(u))
            retire(p, e, "fewer workers in the config");
        else if (!same_launch(e->up, u, e->index)) {
            if (!e->superseded)
                sl_log_info("engine %s#%d: launch settings changed: serving until its replacement is ready",
                            e->upstream, e->index);
            e->superseded = true;
        } else if (e->superseded) {
            /* changed back before its replacement was ready: the replacement goes instead */
            e->superseded = false;
            for (size_t j = 0; j < n; j++) {
                sl_engine_proc *r = &p->procs[j];
                if (r != e && r->index == e->index && strcmp(r->upstream, e->upstream) == 0 &&
                    atomic_load(&r->state) != SL_ENGINE_FREE && atomic_load(&r->state) != SL_ENGINE_DRAINING)
                    retire(p, r, "the settings it was started for were changed back");
            }
        } else {
            sl_config *old = e->cfg;
            e->up = u;
            e->cfg = sl_config_ref((sl_config *)cfg);
            sl_config_unref(old);
        }
    }
    for (size_t k = 0; k < cfg->n_upstreams; k++) {
        const sl_upstream_conf *u = &cfg->upstreams[k];
        if (u->type != SL_UPSTREAM_ENGINE)
            continue;
        for (int w = 0; w < workers_of(u); w++) {
            bool have = false;
            for (size_t i = 0; i < atomic_load(&p->n) && !have; i++) {
                sl_engine_proc *e = &p->procs[i];
                int st = atomic_load(&e->state);
                have = st != SL_ENGINE_FREE && st != SL_ENGINE_DRAINING && !e->superseded && e->index == w &&
                       strcmp(e->upstream, u->name) == 0;
            }
            sl_err err = {0};
            if (!have && start_worker(p, cfg, u, w, &err) < 0)
                sl_log_error("engine %s#%d: not started: %s", u->name, w, err.msg);
        }
    }
}

/* A worker's rank for an affinity key (rendezvous hashing): the key's highest-ranked worker
 * stays its worker while workers come and go, and keys spread evenly. By the worker's
 * index, which its restarts and replacements keep. */
static uint64_t rank(uint64_t affinity, int index)
{
    uint64_t x = affinity ^ ((uint64_t)(index + 1) * 0x9E3779B97F4A7C15ULL);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Ready, of upstream up, and not the one to avoid. */
static bool pickable(sl_engine_proc *e, const sl_upstream_conf *up, const sl_engine_proc *avoid)
{
    return e != avoid && atomic_load(&e->state) == SL_ENGINE_READY && strcmp(e->upstream, up->name) == 0;
}

sl_engine_proc *sl_pool_pick(sl_pool *p, const sl_upstream_conf *up, const sl_engine_proc *avoid, uint64_t affinity)
{
    for (int tries = 0; p && tries < 4; tries++) {
        sl_engine_proc *best = NULL;
        int best_n = 0;
        size_t n = atomic_load(&p->n);
        for (size_t i = 0; i < n; i++) {
            sl_engine_proc *e = &p->procs[i];
            if (!pickable(e, up, avoid))
                continue;
            int k = atomic_load(&e->outstanding);
            if (!best || k < best_n) {
                best = e;
                best_n = k;
            }
        }
        if (!best)
            return NULL;
        if (affinity && up->prefix_affinity > 0) { /* the key's worker, unless it is too busy */
            uint64_t top = 0;
            sl_engine_proc *pref = NULL;
            for (size_t i = 0; i < n; i++) {
                sl_engine_proc *e = &p->procs[i];
                if (!pickable(e, up, avoid) || atomic_load(&e->outstanding) > best_n + up->prefix_affinity)
                    continue;
                uint64_t r = rank(affinity, e->index);
                if (!pref || r > top) {
                    pref = e;
                    top = r;
                }
            }
            if (pref)
                best = pref;
        }
        atomic_fetch_add(&best->outstanding, 1);
        /* the main thread may have retired or reused the slot meanwhile: it reuses one
         * only when nothing is outstanding, so after our count it stays what we see now */
        if (atomic_load(&best->state) == SL_ENGINE_READY && strcmp(best->upstream, up->name) == 0)
            return best;
        atomic_fetch_sub(&best->outstanding, 1);
    }
    return NULL;
}

void sl_pool_release(sl_engine_proc *e) { atomic_fetch_sub(&e->outstanding, 1); }

json_t *sl_pool_json(sl_pool *p, const char *upstream)
{
    json_t *a = json_array();
    size_t n = p ? atomic_load(&p->n) : 0;
    for (size_t i = 0; i < n; i++) {
        sl_engine_proc *e = &p->procs[i];
        int st = atomic_load(&e->state);
        if (st == SL_ENGINE_FREE || strcmp(e->upstream, upstream) != 0)
            continue;
        json_array_append_new(a, json_pack("{s:i, s:i, s:s, s:i, s:i, s:s}", "index", e->index, "pid", (int)e->pid,
                                           "state", sl_engine_state_name(st), "outstanding",
                                           atomic_load(&e->outstanding), "restarts", e->restarts, "socket",
                                           e->socket_path));
    }
    return a;
}

void sl_pool_stop(sl_pool *p, long long grace_ms)
{
    if (!p || p->stopping)
        return;
    p->stopping = true;
    size_t n = atomic_load(&p->n);
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&p->procs[i].state) == SL_ENGINE_FREE)
            continue;
        atomic_store(&p->procs[i].state, SL_ENGINE_STOPPING);
        if (p->procs[i].pid > 0)
            kill(p->procs[i].pid, SIGTERM);
    }
    long long deadline = now_ms() + grace_ms;
    for (;;) {
        size_t alive = 0;
        for (size_t i = 0; i < n; i++) {
            sl_engine_proc *e = &p->procs[i];
            if (e->pid > 0 && waitpid(e->pid, NULL, WNOHANG) == e->pid)
                e->pid = 0;
            alive += e->pid > 0;
        }
        if (!alive)
            break;
        if (now_ms() >= deadline) {
            for (size_t i = 0; i < n; i++)
                if (p->procs[i].pid > 0) {
                    sl_log_warn("engine %s#%d: still running after %lld ms: killed", p->procs[i].upstream,
                                p->procs[i].index, grace_ms);
                    kill(p->procs[i].pid, SIGKILL);
                    waitpid(p->procs[i].pid, NULL, 0);
                    p->procs[i].pid = 0;
                }
            break;
        }
        usleep(20 * 1000);
    }
    for (size_t i = 0; i < n; i++)
        if (atomic_load(&p->procs[i].state) != SL_ENGINE_FREE)
            slot_free(p, &p->procs[i]);
    if (p->dir[0])
        rmdir(p->dir);
}

void sl_pool_free(sl_pool *p)
{
    if (!p)
        return;
    if (p->sigchld)
        event_free(p->sigchld);
    if (p->tick)
        event_free(p->tick);
    if (p->procs)
        for (size_t i = 0; i < atomic_load(&p->n); i++)
            if (p->procs[i].cfg)
                sl_config_unref(p->procs[i].cfg);
    free(p->procs);
    free(p->probing);
    free(p);
}
