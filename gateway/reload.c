#include "reload.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <event2/event.h>

#include "audit.h"
#include "log.h"

struct sl_reloader {
    struct event_base *base;
    char path[PATH_MAX];
    char dir[PATH_MAX];
    char name[NAME_MAX + 1];
    sl_reload_apply apply;
    void *arg;
    struct event *sighup;
    int ino_fd;
    struct event *ino_ev;
    struct event *settle;       /* a burst of writes reloads once, when it is over */
};

int sl_reloader_reload(sl_reloader *r, const char *why, json_t **errors)
{
    sl_diag d;
    sl_diag_init(&d, r->path);
    d.quiet = true;
    sl_config *cfg = sl_config_load(r->path, &d);
    if (!cfg) {
        sl_log_error("reload (%s): %s refused, the running config keeps serving:", why, r->path);
        json_t *list = json_array();
        for (size_t i = 0; i < d.n; i++) {
            sl_log_error("  %s", d.lines[i]);
            json_array_append_new(list, json_string(d.lines[i]));
        }
        sl_audit("config_refused", json_pack("{s:s, s:s, s:O}", "trigger", why, "path", r->path, "errors", list));
        if (errors)
            *errors = list;
        else
            json_decref(list);
        sl_diag_free(&d);
        return -1;
    }
    for (size_t i = 0; i < d.n_warnings; i++)
        sl_log_warn("  %s", d.warnings[i]);
    sl_diag_free(&d);
    r->apply(r->arg, cfg);
    sl_config_unref(cfg);
    sl_log_info("reload (%s): %s is now in use", why, r->path);
    sl_audit("config_reloaded", json_pack("{s:s, s:s}", "trigger", why, "path", r->path));
    return 0;
}

static void sighup_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_reloader_reload(arg, "SIGHUP", NULL);
}

static void settle_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_reloader_reload(arg, "file changed", NULL);
}

static void inotify_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    sl_reloader *r = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool ours = false;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->len && (strcmp(ev->name, r->name) == 0 || strcmp(ev->name, "..data") == 0))
                ours = true;
            p += sizeof *ev + ev->len;
        }
    }
    if (ours) {
        struct timeval tv = {0, 200 * 1000};
        evtimer_add(r->settle, &tv);
    }
}

sl_reloader *sl_reloader_new(struct event_base *base, const char *path, sl_reload_apply apply, void *arg)
{
    sl_reloader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->base = base;
    r->apply = apply;
    r->arg = arg;
    r->ino_fd = -1;
    /* absolute, but symlinks kept: a Kubernetes ConfigMap mount is sluice.yaml -> ..data/
     * sluice.yaml, and an update swaps the ..data link, not the file */
    char cwd[PATH_MAX];
    if (path[0] != '/' && getcwd(cwd, sizeof cwd)) {
        if (snprintf(r->path, sizeof r->path, "%s/%s", cwd, path) < 0)
            r->path[0] = '\0';
    } else
        snprintf(r->path, sizeof r->path, "%s", path);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", r->path);
    snprintf(r->dir, sizeof r->dir, "%s", dirname(tmp));
    snprintf(tmp, sizeof tmp, "%s", r->path);
    snprintf(r->name, sizeof r->name, "%s", basename(tmp));
    r->sighup = evsignal_new(base, SIGHUP, sighup_cb, r);
    r->settle = evtimer_new(base, settle_cb, r);
    if (r->sighup)
        evsignal_add(r->sighup, NULL);
    r->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->ino_fd >= 0 &&
        inotify_add_watch(r->ino_fd, r->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) >= 0) {
        r->ino_ev = event_new(base, r->ino_fd, EV_READ | EV_PERSIST, inotify_cb, r);
        event_add(r->ino_ev, NULL);
    } else {
        sl_log_warn("reload: cannot watch %s (%s): reload with SIGHUP or POST /admin/v1/reload", r->dir, strerror(errno));
    }
    return r;
}

void sl_reloader_free(sl_reloader *r)
{
    if (!r)
        return;
    if (r->sighup)
        event_free(r->sighup);
    if (r->settle)
        event_free(r->settle);
    if (r->ino_ev)
        event_free(r->ino_ev);
    if (r->ino_fd >= 0)
        close(r->ino_fd);
    free(r);
}
