/* jansson values to compact JSON text, as json_dumps(v, JSON_COMPACT) writes them, in one
 * pass into a growing buffer (jansson's dumper goes through a callback per piece and a
 * printf per number). */
#ifndef SL_JSON_DUMP_H
#define SL_JSON_DUMP_H

#include <stddef.h>

#include <jansson.h>

#include "strbuf.h"

/* Appends v's compact text to b: 0, or -1 (out of memory, or a string that is not valid
 * UTF-8, which jansson refuses to write too; b may hold part of it then). */
int sl_json_dump(sl_strbuf *b, const json_t *v);

/* The string s (len bytes) as a JSON string: 0, or -1 (out of memory, not UTF-8). */
int sl_json_dump_string(sl_strbuf *b, const char *s, size_t len);

/* v's compact text, NUL-ended; *len (may be NULL) its length. NULL where json_dumps
 * would give NULL. The caller frees it. */
char *sl_json_dumps(const json_t *v, size_t *len);

#endif
