/* Operational log lines on stderr: "2026-11-23T09:00:00Z sluice[pid] LEVEL message".
 * With log.file, stderr itself is pointed at that file (engine processes started later
 * inherit it), and SIGUSR1 opens the path again. */
#ifndef SL_LOG_H
#define SL_LOG_H

#include "err.h"

typedef enum sl_log_level { SL_LOG_ERROR, SL_LOG_WARN, SL_LOG_INFO, SL_LOG_DEBUG } sl_log_level;

void sl_log_set_level(sl_log_level level);
int sl_log_level_parse(const char *name, sl_log_level *out);   /* 0 or -1 */

/* path "-": leave stderr as it is. Otherwise stderr is appended to path from now on. */
int sl_log_open_file(const char *path, sl_err *err);
/* Open log.file's path again (0 when stderr is not a file we opened). */
int sl_log_reopen(sl_err *err);
/* Open path (append, create) and put it in place of fd: writers using fd move to the new
 * file without a gap or a lock. 0 or -1. */
int sl_log_reopen_fd(int fd, const char *path, sl_err *err);

__attribute__((format(printf, 2, 3)))
void sl_log(sl_log_level level, const char *fmt, ...);

/* Now in UTC with milliseconds, as every log line writes it: 2026-11-23T15:58:30.123Z. */
#define SL_LOG_TS_SIZE 32
void sl_log_timestamp(char out[SL_LOG_TS_SIZE]);

#define sl_log_error(...) sl_log(SL_LOG_ERROR, __VA_ARGS__)
#define sl_log_warn(...) sl_log(SL_LOG_WARN, __VA_ARGS__)
#define sl_log_info(...) sl_log(SL_LOG_INFO, __VA_ARGS__)
#define sl_log_debug(...) sl_log(SL_LOG_DEBUG, __VA_ARGS__)

#endif
