#include "access_log.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"

#define FLUSH_BYTES (64 * 1024)

struct sl_access_log {
    int fd;
    bool owned;
    char *path;     /* the file, for SIGUSR1 */
};

struct sl_access_log_writer {
    sl_access_log *log;
    struct evbuffer *buf;   /* whole lines waiting for the next write */
    struct evbuffer *line;  /* the line being serialised */
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
    size_t n = evbuffer_get_length(w->buf);
    if (!n || w->log->fd < 0) {
        evbuffer_drain(w->buf, n);
        return;
    }
    /* whole lines in one O_APPEND write: threads' batches never interleave mid-line */
    const char *p = (const char *)evbuffer_pullup(w->buf, -1);
    size_t off = 0;
    while (off < n) {
        ssize_t k = write(w->log->fd, p + off, n - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    evbuffer_drain(w->buf, n);
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
    w->buf = evbuffer_new();
    w->line = evbuffer_new();
    w->timer = event_new(base, -1, EV_PERSIST, timer_cb, w);
    if (!w->buf || !w->line || !w->timer) {
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
    if (w->buf) {
        sl_access_log_flush(w);
        evbuffer_free(w->buf);
    }
    if (w->line)
        evbuffer_free(w->line);
    if (w->timer)
        event_free(w->timer);
    free(w);
}

struct evbuffer *sl_access_log_begin(sl_access_log_writer *w)
{
    return w && w->log->fd >= 0 ? w->line : NULL;
}

void sl_access_log_end(sl_access_log_writer *w, bool ok)
{
    /* built in its own buffer, then moved over whole: never half a line */
    if (ok && evbuffer_add(w->line, "\n", 1) == 0)
        evbuffer_add_buffer(w->buf, w->line);
    evbuffer_drain(w->line, evbuffer_get_length(w->line));
    if (evbuffer_get_length(w->buf) >= FLUSH_BYTES)
        sl_access_log_flush(w);
}
