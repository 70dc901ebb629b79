#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "plugin.h"

static atomic_int audit_fd = -1;
static char *audit_path;       /* NULL for stdout or off */

int sl_audit_open(const char *target, sl_err *err)
{
    sl_audit_close();
    if (!target || strcmp(target, "off") == 0)
        return 0;
    if (strcmp(target, "-") == 0) {
        atomic_store(&audit_fd, STDOUT_FILENO);
        return 0;
    }
    int fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        sl_err_set(err, "log.audit_log %s: %s", target, strerror(errno));
        return -1;
    }
    if (!(audit_path = strdup(target))) {
        close(fd);
        sl_err_set(err, "out of memory");
        return -1;
    }
    atomic_store(&audit_fd, fd);
    return 0;
}

int sl_audit_reopen(sl_err *err)
{
    int fd = atomic_load(&audit_fd);
    if (!audit_path || fd < 0)
        return 0;
    return sl_log_reopen_fd(fd, audit_path, err);
}

void sl_audit_close(void)
{
    int fd = atomic_exchange(&audit_fd, -1);
    if (audit_path && fd >= 0)
        close(fd);
    free(audit_path);
    audit_path = NULL;
}

void sl_audit(const char *event, json_t *fields)
{
    int fd = atomic_load(&audit_fd);
    if (fd < 0) {
        json_decref(fields);
        return;
    }
    char ts[SL_LOG_TS_SIZE];
    sl_log_timestamp(ts);
    json_t *o = json_pack("{s:s, s:s}", "ts", ts, "audit", event);
    if (o && fields)
        json_object_update(o, fields);
    json_decref(fields);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(o);
    if (!s) {
        sl_log_error("audit %s: out of memory, event lost", event);
        return;
    }
    size_t len = strlen(s);
    char *line = realloc(s, len + 2);
    if (!line) {
        free(s);
        return;
    }
    line[len++] = '\n';
    /* one O_APPEND write per line: lines from worker threads never interleave */
    ssize_t w = write(fd, line, len);
    if (w < 0 || (size_t)w != len)
        sl_log_warn("audit %s: the event could not be written whole (%s)", event, w < 0 ? strerror(errno) : "short write");
    free(line);
}

void sl_ex_audit(sl_exchange *ex, const char *event, json_t *fields)
{
    if (!fields)
        fields = json_object();
    const char *who = sl_ex_consumer(ex);
    json_object_set_new(fields, "request_id", json_string(sl_ex_request_id(ex)));
    json_object_set_new(fields, "consumer", who ? json_string(who) : json_null());
    sl_audit(event, fields);
}
