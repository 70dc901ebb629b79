/* JSON text to jansson values, faster than json_loadb on the hot path (request bodies,
 * upstream answers, SSE events). */
#ifndef SL_JSON_PARSE_H
#define SL_JSON_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Same contract as json_loadb(buf, len, flags, error) for flags 0 and
 * JSON_REJECT_DUPLICATES: the same value, or NULL with jansson's own error. Plain input
 * (an object or array of ASCII or valid UTF-8 strings, \u escapes, integers of at most
 * 18 digits, reals) is read by a one-pass parser; anything it does not handle itself,
 * errors included, is read again by json_loadb, so the answer is always jansson's.
 * The caller owns the returned reference (json_decref). */
json_t *sl_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error);

/* The same, and *compact (may be NULL) true when buf is byte for byte what sl_json_dumps
 * writes of the value (no white space, no escape in a string, no real, no -0, no duplicate
 * key); false when not, or not known (the text went to json_loadb). */
json_t *sl_json_loadb_compact(const char *buf, size_t len, size_t flags, json_error_t *error, bool *compact);

/* Read buf into old in place, when buf has old's very shape: the same keys in the same order,
 * arrays of the same length, the same types (integer and real apart). Only the values that
 * differ are set, and only where neither the node nor a container above it has another
 * holder. True: old now says what buf says (and *compact as sl_json_loadb_compact's); no
 * allocation but for changed strings. False: old may be partly changed: drop it and parse
 * buf afresh (the caller's only reference is old's one; refcount must be 1). For streams,
 * whose events share a shape: each event read into the one before. */
bool sl_json_reload(json_t *old, const char *buf, size_t len, bool *compact);

/* text's tree: read into *spare (taken) when text has its shape, else parsed afresh
 * (sl_json_loadb_compact); NULL when text is not JSON. */
json_t *sl_json_from_spare(json_t **spare, const char *text, size_t len, bool *compact);
/* Done with tree t: kept as *spare when nobody else holds it and no spare is kept, else
 * dropped. */
void sl_json_to_spare(json_t **spare, json_t *t);

/* The JSON string whose text starts at from (just past its opening quote) and ends by to:
 * the address just past its closing quote, or NULL where jansson would refuse it (a control
 * byte, bad UTF-8 or escape, \u0000, a lone surrogate, no closing quote). *s and *n: its
 * bytes, in the text when it has no escape (so *s == from), else decoded into *scratch, grown
 * to fit (*cap its size; the caller frees it). */
const char *sl_json_string_at(const char *from, const char *to, const char **s, size_t *n, char **scratch,
                              size_t *cap);

/* Length of the valid UTF-8 sequence that starts at p (*p >= 0x80) and ends by end; 0
 * where jansson would refuse it (overlong, a surrogate, past U+10FFFF, cut short). */
size_t sl_utf8_seq_len(const unsigned char *p, const unsigned char *end);

#endif
