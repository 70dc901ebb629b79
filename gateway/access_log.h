/* The JSON access log: one line per request, never the key or the text. Each worker
 * thread buffers its lines and writes them in batches (no lock shared by threads). */
#ifndef SL_ACCESS_LOG_H
#define SL_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>


#include "err.h"

struct event_base;
struct sl_strbuf;

typedef struct sl_access_log sl_access_log;

/* target: "-" for stdout, a file path (appended), or "off"/NULL for none. Returns NULL
 * with a message in errbuf when the file cannot be opened. */
sl_access_log *sl_access_log_open(const char *target, char *errbuf, size_t errlen);
void sl_access_log_close(sl_access_log *log);
/* SIGUSR1, main thread: the file's path opened again in place (writers on worker threads
 * carry on into the new file). 0 for stdout and "off". */
int sl_access_log_reopen(sl_access_log *log, sl_err *err);

typedef struct sl_access_log_writer sl_access_log_writer;
/* Per-thread writer, flushed every 100 ms by a timer on base and when its buffer is large. */
sl_access_log_writer *sl_access_log_writer_new(sl_access_log *log, struct event_base *base);
void sl_access_log_writer_free(sl_access_log_writer *w);   /* flushes */
/* One line: the buffer to append it to (without its newline; see json_line.h), or NULL
 * when the log is off; then sl_access_log_end keeps it (ok) or drops it whole. */
struct sl_strbuf *sl_access_log_begin(sl_access_log_writer *w);
void sl_access_log_end(sl_access_log_writer *w, bool ok);
struct sl_jline;
/* The fields every line starts with: ts, client, method, path, status, duration_ms, bytes. */
void sl_access_log_head(struct sl_jline *j, const char *client, const char *method, const char *path, int status,
                        double ms, size_t bytes);
/* The line of a request answered outside an exchange (console files), "console": true. */
void sl_access_log_static(sl_access_log_writer *w, const char *client, const char *method, const char *path,
                          int status, size_t bytes, double ms);
void sl_access_log_flush(sl_access_log_writer *w);

#endif
