/* A read-only view of one JSON text: its values as a flat array of tokens with their place
 * in the text, made in one pass without building a tree. For reading a few members of a small
 * document (a streamed event) and replacing a string in place; jansson trees stay the tool
 * for anything more. The view owns its token array and decoded strings, not the text. */
#ifndef SL_JSON_VIEW_H
#define SL_JSON_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "strbuf.h"

typedef enum sl_jv_type {
    SL_JV_OBJECT,
    SL_JV_ARRAY,
    SL_JV_STRING,
    SL_JV_INTEGER,
    SL_JV_REAL,
    SL_JV_TRUE,
    SL_JV_FALSE,
    SL_JV_NULL,
} sl_jv_type;

/* One value, in document order. An object's members are its key (a string token) then its
 * value; an array's items follow it. */
typedef struct sl_jv_tok {
    uint8_t type;           /* sl_jv_type */
    bool escaped;           /* a string with an escape: its bytes are decoded in the view */
    uint32_t start, end;    /* the value's bytes in the text (a string's quotes included) */
    uint32_t next;          /* the token after this value and everything in it */
    uint32_t size;          /* members or items of a container; bytes of a decoded string */
    uint32_t dec;           /* an escaped string: where its bytes are in the view's decoded ones */
} sl_jv_tok;

typedef struct sl_jview {
    const char *text;
    size_t len;
    sl_jv_tok *tok;
    uint32_t n, cap;
    sl_strbuf dec;          /* escaped strings, decoded */
    char *scratch;
    size_t cap_scratch;
    uint32_t moved;         /* the string sl_jview_read_again moved last: where the next text
                               most likely differs (a hint, checked before it is used) */
} sl_jview;

/* Read text into v (its storage reused from the last read). 0: v holds the text's values,
 * which are exactly what jansson's json_loadb(text, len, 0) would read (an object or an array
 * at the top, valid UTF-8, no \u0000). -1: not read, because the text is not JSON or holds
 * what the view leaves to jansson (integers past 18 digits, exponents, nesting past 64):
 * callers then parse it into a tree. */
int sl_jview_read(sl_jview *v, const char *text, size_t len);
/* Read text, which is mostly the view's text (still readable) with one string changed: a
 * stream's next event. Where the two differ inside one string value only, that string is read
 * and the tokens after it moved (1: the tokens are the same ones, as a summary of them is);
 * else as sl_jview_read (0 or -1). */
int sl_jview_read_again(sl_jview *v, const char *text, size_t len);
void sl_jview_free(sl_jview *v);

/* The value of object token obj's member key (kl bytes; its last, as jansson keeps), or -1. */
int sl_jview_getn(const sl_jview *v, int obj, const char *key, size_t kl);
#define sl_jview_get(v, obj, key) sl_jview_getn((v), (obj), (key), strlen(key))
/* A member name, its length known (for sl_jview_members). */
typedef struct sl_jkey {
    const char *s;
    size_t len;
} sl_jkey;
#define SL_JKEY(lit) {(lit), sizeof(lit) - 1}
/* out[k] = the value of object token obj's member keys[k] (its last), or -1, for k < n: several
 * members in one walk. All -1 when obj is not an object. A key of 64 bytes or more is never
 * found (none is looked up). */
void sl_jview_members(const sl_jview *v, int obj, const sl_jkey *keys, int n, int *out);
/* The same keys, looked up again and again (the members of every streamed event): what the
 * walk tests first (the keys' lengths, their first four bytes) worked out once. */
#define SL_JKEYS_MAX 8
typedef struct sl_jkeys {
    int n;
    uint64_t lens;                  /* bit k set: a key of k bytes */
    sl_jkey key[SL_JKEYS_MAX];
    uint32_t head[SL_JKEYS_MAX];    /* the first four bytes of a key of four or more */
} sl_jkeys;
/* -1 (and ks unusable) when n is over SL_JKEYS_MAX. A key of 64 bytes or more is never found. */
int sl_jkeys_init(sl_jkeys *ks, const sl_jkey *keys, int n);
void sl_jview_members_of(const sl_jview *v, int obj, const sl_jkeys *ks, int *out);
/* The item at index i of array token arr, or -1. */
int sl_jview_item(const sl_jview *v, int arr, size_t i);
/* The items of array token arr in order, without an index walk each:
 * for (int k = sl_jview_items(v, arr); k >= 0; k = sl_jview_next(v, arr, k)) */
static inline int sl_jview_items(const sl_jview *v, int arr)
{
    return arr >= 0 && v->tok[arr].type == SL_JV_ARRAY && v->tok[arr].size ? arr + 1 : -1;
}
static inline int sl_jview_next(const sl_jview *v, int arr, int k)
{
    uint32_t n = v->tok[k].next;
    return n < v->tok[arr].next ? (int)n : -1;
}
/* A string token's bytes (decoded; not NUL-ended), or NULL when i is not a string. */
const char *sl_jview_str(const sl_jview *v, int i, size_t *len);
/* An integer token's value; false when i is not an integer. */
bool sl_jview_int(const sl_jview *v, int i, long long *out);
/* A number token's value (an integer's or a real's, as jansson reads it); false when i is not a
 * number. */
bool sl_jview_number(const sl_jview *v, int i, double *out);
/* 1 when no object in the view has a key twice (as json_loadb's JSON_REJECT_DUPLICATES checks);
 * 0 when one has, or when an object is too large to check here (over 64 members): the caller
 * asks jansson then. */
int sl_jview_keys_unique(const sl_jview *v);
/* Whether token i, or any value in it, is a real. */
bool sl_jview_has_real(const sl_jview *v, int i);
/* Token i as a jansson value (a new reference), or NULL (out of memory, i < 0). */
struct json_t;
struct json_t *sl_jview_json(const sl_jview *v, int i);
static inline int sl_jview_type(const sl_jview *v, int i) { return i < 0 ? -1 : v->tok[i].type; }

/* After string token i's bytes in the text were replaced by new_len bytes (text now points at
 * the new text): the tokens' places follow, and the string's value is s (len bytes, escaped
 * in the new text when has_escape). -1 when out of memory (then the view is no longer good). */
int sl_jview_string_replaced(sl_jview *v, int i, const char *text, size_t text_len, size_t new_len,
                             const char *s, size_t len, bool has_escape);

/* Bytes [start, end) of the text. */
typedef struct sl_jv_span {
    size_t start, end;
} sl_jv_span;
/* After object token obj got a member last (its key kl bytes, written at k; its value the string
 * s of len bytes, written at val; a comma before it where obj had members): text now points at
 * the new text, and the tokens follow. -1 when out of memory (then the view is no longer good). */
int sl_jview_member_added(sl_jview *v, int obj, const char *text, size_t text_len, sl_jv_span k, const char *key,
                          size_t kl, sl_jv_span val, const char *s, size_t len);

#endif
