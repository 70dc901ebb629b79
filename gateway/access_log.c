#include "access_log.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "json_line.h"
#include "log.h"

#define FLUSH_BYTES (64 * 1024)

struct sl_access_log {
    int fd;
    bool owned;
    char *path;     /* the file, for SIGUSR1 */
};

struct sl_access_log_writer {
    sl_access_log *log;
    sl_strbuf buf;          /* whole lines waiting for the next write, then the one being written */
    size_t line_start;      /* where that one begins */
    struct event *timer;
};

sl_access_log *sl_access_log_open(const char *target, char *errbuf, size_t errlen)
{
    sl_access_log *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->fd = -1;
    if (!target || strcmp(target, "off") == 0)
        return l;
    if (strcmp(target, "-") == 0) {
        l->fd = STDOUT_FILENO;
        return l;
    }
    l->fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (l->fd < 0) {
        snprintf(errbuf, errlen, "access log %s: %s", target, strerror(errno));
        free(l);
        return NULL;
    }
    l->owned = true;
    if (!(l->path = strdup(target))) {
        sl_access_log_close(l);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    return l;
}

int sl_access_log_reopen(sl_access_log *l, sl_err *err)
{
    if (!l || !l->owned || !l->path)
        return 0;
    if (sl_log_reopen_fd(l->fd, l->path, err) < 0) {
        sl_err_prefix(err, "log.access_log");
        return -1;
    }
    return 0;
}

void sl_access_log_close(sl_access_log *l)
{
    if (!l)
        return;
    if (l->owned)
        close(l->fd);
    free(l->path);
    free(l);
}

void sl_access_log_flush(sl_access_log_writer *w)
{
    size_t n = w->buf.len;
    if (!n || w->log->fd < 0) {
        w->buf.len = 0;
        return;
    }
    /* whole lines in one O_APPEND write: threads' batches never interleave mid-line */
    size_t off = 0;
    while (off < n) {
        ssize_t k = write(w->log->fd, w->buf.s + off, n - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    w->buf.len = 0;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_access_log_flush(arg);
}

sl_access_log_writer *sl_access_log_writer_new(sl_access_log *log, struct event_base *base)
{
    sl_access_log_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->log = log;
    w->timer = event_new(base, -1, EV_PERSIST, timer_cb, w);
    if (!w->timer) {
        sl_access_log_writer_free(w);
        return NULL;
    }
    struct timeval tv = {0, 100 * 1000};
    event_add(w->timer, &tv);
    return w;
}

void sl_access_log_writer_free(sl_access_log_writer *w)
{
    if (!w)
        return;
    sl_access_log_flush(w);
    free(w->buf.s);
    if (w->timer)
        event_free(w->timer);
    free(w);
}

sl_strbuf *sl_access_log_begin(sl_access_log_writer *w)
{
    if (!w || w->log->fd < 0)
        return NULL;
    w->line_start = w->buf.len;
    return &w->buf;
}

void sl_access_log_end(sl_access_log_writer *w, bool ok)
{
    if (ok && w->buf.len == w->buf.cap) { /* room for the newline */
        char *s = realloc(w->buf.s, w->buf.cap + 4096);
        if (s) {
            w->buf.s = s;
            w->buf.cap += 4096;
        }
        ok = s != NULL;
    }
    if (!ok) {
        w->buf.len = w->line_start; /* never half a line */
        return;
    }
    w->buf.s[w->buf.len++] = '\n';
    if (w->buf.len >= FLUSH_BYTES)
        sl_access_log_flush(w);
}

void sl_access_log_head(sl_jline *j, const char *client, const char *method, const char *path, int status,
                        double ms, size_t bytes)
{
    char ts[SL_LOG_TS_SIZE];
    sl_log_timestamp(ts);
    sl_jline_str(j, "ts", ts);
    sl_jline_str(j, "client", client);
    sl_jline_str(j, "method", method);
    sl_jline_str(j, "path", path);
    sl_jline_int(j, "status", status);
    sl_jline_ms(j, "duration_ms", ms);
    sl_jline_int(j, "bytes", (long long)bytes);
}

void sl_access_log_static(sl_access_log_writer *w, const char *client, const char *method, const char *path,
                          int status, size_t bytes, double ms)
{
    sl_strbuf *b = sl_access_log_begin(w);
    if (!b)
        return;
    sl_jline j;
    sl_jline_open(&j, b, NULL);
    sl_access_log_head(&j, client, method, path, status, ms, bytes);
    sl_jline_bool(&j, "console", true);
    sl_jline_close(&j);
    sl_access_log_end(w, !j.failed);
}
