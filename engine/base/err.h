/* sl_err: the one error struct of sluice. A failing function returns -1 (or NULL)
 * and fills *err with a message a user can act on. err may be NULL. */
#ifndef SL_ERR_H
#define SL_ERR_H

#include <stdarg.h>

typedef struct sl_err {
    char msg[512];
} sl_err;

__attribute__((format(printf, 2, 3)))
void sl_err_set(sl_err *err, const char *fmt, ...);

/* Prefix the existing message: "context: old message". */
__attribute__((format(printf, 2, 3)))
void sl_err_prefix(sl_err *err, const char *fmt, ...);

#endif
