#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int current_level = SL_LOG_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};

static char *log_path; /* NULL: stderr as the process got it */

int sl_log_reopen_fd(int fd, const char *path, sl_err *err)
{
    int nfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (nfd < 0) {
        sl_err_set(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* dup3 swaps the file under fd at once; stdio stays inherited by engine processes,
     * the log files of our own do not */
    int rc = dup3(nfd, fd, fd > STDERR_FILENO ? O_CLOEXEC : 0) < 0 ? -1 : 0;
    if (rc < 0)
        sl_err_set(err, "%s: %s", path, strerror(errno));
    close(nfd);
    return rc;
}

int sl_log_open_file(const char *path, sl_err *err)
{
    if (!path || strcmp(path, "-") == 0)
        return 0;
    if (sl_log_reopen_fd(STDERR_FILENO, path, err) < 0) {
        sl_err_prefix(err, "log.file");
        return -1;
    }
    free(log_path);
    if (!(log_path = strdup(path))) {
        sl_err_set(err, "out of memory");
        return -1;
    }
    return 0;
}

int sl_log_reopen(sl_err *err) { return log_path ? sl_log_reopen_fd(STDERR_FILENO, log_path, err) : 0; }

void sl_log_set_level(sl_log_level level) { atomic_store(&current_level, level); }

int sl_log_level_parse(const char *name, sl_log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (sl_log_level)i;
            return 0;
        }
    return -1;
}

void sl_log(sl_log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&current_level))
        return;
    char line[2048];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, " sluice[%d] %s ", (int)getpid(), names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : (n + m > (int)sizeof line - 2 ? (int)sizeof line - 2 : n + m);
    line[n++] = '\n';
    /* one write(2) per line keeps lines from different threads whole */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void sl_log_timestamp(char out[SL_LOG_TS_SIZE])
{
    /* one a request (access log): the date and time are formatted once a second per thread */
    static _Thread_local time_t sec = -1;
    static _Thread_local char head[SL_LOG_TS_SIZE];
    static _Thread_local size_t head_len;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != sec) {
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        head_len = strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
        sec = now.tv_sec;
    }
    long ms = now.tv_nsec / 1000000;
    memcpy(out, head, head_len);
    char *p = out + head_len;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = 'Z';
    *p = '\0';
}
