/* The web console's built files (gateway/console/dist), read into memory when a config is
 * loaded and served from there: no disk I/O per request, and no request path can reach a
 * file that was not in the folder at load time. The set belongs to the config (immutable,
 * shared by every thread). */
#ifndef SL_STATIC_FILES_H
#define SL_STATIC_FILES_H

#include <stdbool.h>

#include "err.h"
#include "http.h"

typedef struct sl_static_files sl_static_files;

/* The listener a request came in on: the client listeners serve the chat page (index.html),
 * the admin listener the admin page (admin.html); both serve the shared assets. */
typedef enum sl_static_side { SL_STATIC_CLIENT, SL_STATIC_ADMIN } sl_static_side;

/* Read every regular file under dir (symbolic links and dot-files are skipped). NULL with
 * err when the folder is missing, has no index.html, or is too large; *missing is set when
 * the folder or its index.html does not exist (the console was not built). The caller frees
 * the set with sl_static_free. */
sl_static_files *sl_static_load(const char *dir, bool *missing, sl_err *err);
void sl_static_free(sl_static_files *f);
size_t sl_static_count(const sl_static_files *f);

struct sl_access_log_writer;

/* Answer req when its path is /console or under /console/ and return true, with a line in
 * the access log when log is not NULL ("console": true, status, bytes, duration); false
 * (nothing sent) for any other path. f may be NULL (no console): false. */
bool sl_static_serve(const sl_static_files *f, sl_static_side side, sl_http_conn *c, const sl_http_request *req,
                     struct sl_access_log_writer *log);

#endif
