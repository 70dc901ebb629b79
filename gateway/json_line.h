/* A JSON object written field by field straight into a growing string (the access log's
 * hot path: no json_t built, no number formatted twice). Strings are escaped and kept valid
 * UTF-8 (a broken sequence becomes U+FFFD). Keys found in `skip` (the plugins' fields) are
 * left out, so that those fields, written after with sl_jline_fields, take their place.
 * The keys of the fixed fields are usually literals: the inline wrappers pass their length
 * (folded by the compiler) so that neither the skip test nor the writer measures them. */
#ifndef SL_JSON_LINE_H
#define SL_JSON_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "log_fields.h"
#include "strbuf.h"

typedef struct sl_jline {
    sl_strbuf *b;
    const sl_log_fields *skip;  /* borrowed; NULL: nothing skipped */
    bool any;           /* a field was written: the next one needs a comma */
    bool failed;        /* an allocation failed: the line must not be used */
} sl_jline;

void sl_jline_open(sl_jline *j, sl_strbuf *b, const sl_log_fields *skip);
void sl_jline_strk(sl_jline *j, const char *key, size_t klen, const char *v);   /* NULL v: left out */
void sl_jline_intk(sl_jline *j, const char *key, size_t klen, long long v);
void sl_jline_msk(sl_jline *j, const char *key, size_t klen, double ms);        /* microsecond precision */
void sl_jline_boolk(sl_jline *j, const char *key, size_t klen, bool v);
void sl_jline_valuek(sl_jline *j, const char *key, size_t klen, const json_t *v); /* NULL v: left out */
#define SL_JLINE_KEYED(name, type)                                                                      \
    static inline void sl_jline_##name(sl_jline *j, const char *key, type v)                            \
    {                                                                                                   \
        sl_jline_##name##k(j, key, __builtin_strlen(key), v);                                           \
    }
SL_JLINE_KEYED(str, const char *)
SL_JLINE_KEYED(int, long long)
SL_JLINE_KEYED(ms, double)
SL_JLINE_KEYED(bool, bool)
SL_JLINE_KEYED(value, const json_t *)
#undef SL_JLINE_KEYED
/* Every field of fields, in its order (nothing skipped). */
void sl_jline_fields(sl_jline *j, const sl_log_fields *fields);
void sl_jline_close(sl_jline *j);

#endif
