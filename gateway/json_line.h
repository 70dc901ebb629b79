/* A JSON object written field by field straight into a growing string (the access log's
 * hot path: no json_t built, no number formatted twice). Strings are escaped and kept valid
 * UTF-8 (a broken sequence becomes U+FFFD). Keys found in `skip` are left out, so that
 * fields a plugin set (written after, from that object) take their place. */
#ifndef SL_JSON_LINE_H
#define SL_JSON_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "strbuf.h"


typedef struct sl_jline {
    sl_strbuf *b;
    const json_t *skip;
    const char *skip_keys[8];   /* skip's keys when it has few: compared, not hashed */
    int n_skip;                 /* -1: look them up in skip */
    bool any;           /* a field was written: the next one needs a comma */
    bool failed;        /* an allocation failed: the line must not be used */
} sl_jline;

void sl_jline_open(sl_jline *j, sl_strbuf *b, const json_t *skip);
void sl_jline_str(sl_jline *j, const char *key, const char *v);   /* NULL: left out */
void sl_jline_int(sl_jline *j, const char *key, long long v);
void sl_jline_ms(sl_jline *j, const char *key, double ms);        /* microsecond precision */
void sl_jline_bool(sl_jline *j, const char *key, bool v);
void sl_jline_value(sl_jline *j, const char *key, const json_t *v); /* NULL: left out */
/* Every field of obj, in its order (nothing skipped). */
void sl_jline_fields(sl_jline *j, const json_t *obj);
void sl_jline_close(sl_jline *j);

#endif
