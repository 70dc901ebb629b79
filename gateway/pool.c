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
    sl_engine_proc *procs;
    size_t n;
    bool *probing;
    struct event *sigchld;
    struct event *tick;
    bool stopping;
    sl_config *cfg;             /* the config the processes were started from (held) */
};

const char *sl_engine_state_name(sl_engine_state s)
{
    static const char *const n[] = {"starting", "ready", "backoff", "stopping"};
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

/* ---- /health over the unix socket ---- */

static void probe_end(probe *pr, bool healthy)
{
    sl_pool *p = pr->pool;
    sl_engine_proc *e = pr->proc;
    p->probing[e - p->procs] = false;
    if (healthy && atomic_load(&e->state) == SL_ENGINE_STARTING) {
        atomic_store(&e->state, SL_ENGINE_READY);
        sl_log_info("engine %s#%d: ready after %lld ms", e->up->name, e->index, now_ms() - e->started_ms);
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

/* ---- the main thread's loop: restarts and health ---- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_pool *p = arg;
    if (p->stopping)
        return;
    long long now = now_ms();
    for (size_t i = 0; i < p->n; i++) {
        sl_engine_proc *e = &p->procs[i];
        int st = atomic_load(&e->state);
        if (st == SL_ENGINE_BACKOFF && now >= e->next_start_ms)
            spawn(p, e);
        else if (st == SL_ENGINE_STARTING)
            probe_start(p, e);
    }
}

static void log_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[4096];
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz > (long)sizeof buf - 1 ? sz - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *line = strtok(buf, "\n");
    int shown = 0;
    char *lines[8] = {0};
    while (line) {
        lines[shown++ % 8] = line;
        line = strtok(NULL, "\n");
    }
    for (int k = shown > 8 ? shown - 8 : 0; k < shown; k++)
        sl_log_warn("  | %s", lines[k % 8]);
}

static void sigchld_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_pool *p = arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < p->n; i++) {
            sl_engine_proc *e = &p->procs[i];
            if (e->pid != pid)
                continue;
            e->pid = 0;
            if (p->stopping) {
                atomic_store(&e->state, SL_ENGINE_STOPPING);
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
    if (!p) {
        sl_err_set(err, "out of memory");
        return NULL;
    }
    p->base = base;
    p->cfg = sl_config_ref((sl_config *)cfg);
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        if (cfg->upstreams[i].type == SL_UPSTREAM_ENGINE)
            p->n += (size_t)(cfg->upstreams[i].workers > 0 ? cfg->upstreams[i].workers : 1);
    if (p->n == 0)
        return p;
    const char *rt = getenv("XDG_RUNTIME_DIR");
    snprintf(p->dir, sizeof p->dir, "%s/sluice-XXXXXX", rt && *rt && access(rt, W_OK) == 0 ? rt : "/tmp");
    if (!mkdtemp(p->dir)) {
        sl_err_set(err, "engine pool: cannot make a runtime folder %s: %s", p->dir, strerror(errno));
        free(p);
        return NULL;
    }
    find_engine(p->engine_bin, sizeof p->engine_bin);
    p->procs = calloc(p->n, sizeof *p->procs);
    p->probing = calloc(p->n, sizeof *p->probing);
    p->sigchld = evsignal_new(base, SIGCHLD, sigchld_cb, p);
    p->tick = event_new(base, -1, EV_PERSIST, tick_cb, p);
    if (!p->procs || !p->probing || !p->sigchld || !p->tick) {
        sl_err_set(err, "out of memory");
        sl_pool_free(p);
        return NULL;
    }
    evsignal_add(p->sigchld, NULL);
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(p->tick, &tv);
    size_t k = 0;
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const sl_upstream_conf *u = &cfg->upstreams[i];
        if (u->type != SL_UPSTREAM_ENGINE)
            continue;
        for (int w = 0; w < (u->workers > 0 ? u->workers : 1); w++, k++) {
            sl_engine_proc *e = &p->procs[k];
            e->up = u;
            e->index = w;
            int n1 = snprintf(e->socket_path, sizeof e->socket_path, "%s/%.40s-%d.sock", p->dir, u->name, w);
            int n2 = snprintf(e->log_path, sizeof e->log_path, "%s/%.40s-%d.log", p->dir, u->name, w);
            if (n1 < 0 || (size_t)n1 >= sizeof e->socket_path || n2 < 0 || (size_t)n2 >= sizeof e->log_path) {
                sl_err_set(err, "engine pool: runtime folder path %s too long for a unix socket", p->dir);
                sl_pool_stop(p, 0);
                sl_pool_free(p);
                return NULL;
            }
            spawn(p, e);
        }
    }
    sl_log_info("engine pool: %zu engine processes (%s), runtime folder %s", p->n, p->engine_bin, p->dir);
    return p;
}

sl_engine_proc *sl_pool_pick(sl_pool *p, const sl_upstream_conf *up)
{
    sl_engine_proc *best = NULL;
    int best_n = 0;
    for (size_t i = 0; p && i < p->n; i++) {
        sl_engine_proc *e = &p->procs[i];
        if (strcmp(e->up->name, up->name) != 0 || atomic_load(&e->state) != SL_ENGINE_READY)
            continue;
        int n = atomic_load(&e->outstanding);
        if (!best || n < best_n) {
            best = e;
            best_n = n;
        }
    }
    if (best)
        atomic_fetch_add(&best->outstanding, 1);
    return best;
}

void sl_pool_release(sl_engine_proc *e) { atomic_fetch_sub(&e->outstanding, 1); }

json_t *sl_pool_json(sl_pool *p, const char *upstream)
{
    json_t *a = json_array();
    for (size_t i = 0; p && i < p->n; i++) {
        sl_engine_proc *e = &p->procs[i];
        if (strcmp(e->up->name, upstream) != 0)
            continue;
        json_array_append_new(a, json_pack("{s:i, s:i, s:s, s:i, s:i, s:s}", "index", e->index, "pid", (int)e->pid,
                                           "state", sl_engine_state_name(atomic_load(&e->state)), "outstanding",
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
    for (size_t i = 0; i < p->n; i++) {
        atomic_store(&p->procs[i].state, SL_ENGINE_STOPPING);
        if (p->procs[i].pid > 0)
            kill(p->procs[i].pid, SIGTERM);
    }
    long long deadline = now_ms() + grace_ms;
    for (;;) {
        size_t alive = 0;
        for (size_t i = 0; i < p->n; i++) {
            sl_engine_proc *e = &p->procs[i];
            if (e->pid > 0 && waitpid(e->pid, NULL, WNOHANG) == e->pid)
                e->pid = 0;
            alive += e->pid > 0;
        }
        if (!alive)
            break;
        if (now_ms() >= deadline) {
            for (size_t i = 0; i < p->n; i++)
                if (p->procs[i].pid > 0) {
                    sl_log_warn("engine %s#%d: still running after %lld ms: killed", p->procs[i].up->name,
                                p->procs[i].index, grace_ms);
                    kill(p->procs[i].pid, SIGKILL);
                    waitpid(p->procs[i].pid, NULL, 0);
                    p->procs[i].pid = 0;
                }
            break;
        }
        usleep(20 * 1000);
    }
    for (size_t i = 0; i < p->n; i++) {
        unlink(p->procs[i].socket_path);
        unlink(p->procs[i].log_path);
    }
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
    free(p->procs);
    free(p->probing);
    if (p->cfg)
        sl_config_unref(p->cfg);
    free(p);
}
