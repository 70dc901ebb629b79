/* The fields plugins add to a request's access-log line (sl_ex_log_field): a handful, each
 * set once or twice, read back by other plugins (sl_ex_log_get) and by the metrics, and
 * written after the core's own fields, which they replace. A short list in the order the
 * keys were first set, not a json object: keys are compared by length, then bytes (no
 * hashing), and the first few fields and their keys live inside the list itself (no
 * allocation for a usual request). The list owns its key copies and one reference to each
 * value. */
#ifndef SL_LOG_FIELDS_H
#define SL_LOG_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

typedef struct sl_log_field {
    const char *key;            /* NUL-ended; in keys[] or malloc'd (owned) */
    size_t len;
    json_t *value;
    bool key_owned;
} sl_log_field;

enum { SL_LOG_FIELDS_INLINE = 8, SL_LOG_FIELDS_KEY_BYTES = 160 };

typedef struct sl_log_fields {
    sl_log_field *f;            /* inline_f, or malloc'd once there are more */
    size_t n, cap;
    sl_log_field inline_f[SL_LOG_FIELDS_INLINE];
    char keys[SL_LOG_FIELDS_KEY_BYTES];
    size_t keys_used;
    uint64_t seen;              /* a bit for each key set (key_bit): a key whose bit is clear is not */
} sl_log_fields;

void sl_log_fields_init(sl_log_fields *lf);
/* Sets key to value, stealing the reference (as json_object_set_new): an existing key keeps
 * its place and drops its old value. A NULL value is ignored; so is a failed allocation
 * (the value is released). */
void sl_log_fields_set(sl_log_fields *lf, const char *key, json_t *value);
/* The value of key (len bytes), or NULL; borrowed. */
json_t *sl_log_fields_getn(const sl_log_fields *lf, const char *key, size_t len);
static inline json_t *sl_log_fields_get(const sl_log_fields *lf, const char *key)
{
    return lf ? sl_log_fields_getn(lf, key, __builtin_strlen(key)) : NULL;
}
void sl_log_fields_free(sl_log_fields *lf);

#endif
