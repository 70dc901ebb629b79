/* The guard plugin's inside: text normalisation with a map back to the original bytes,
 * Aho-Corasick keywords, deny rules (keywords + regexes), masks, and the stream scanner.
 * Shared with tests/unit/guard and tests/bench/guard_bench.c. Every compiled object here
 * is read-only once built, so worker threads share it; per-scan scratch (sl_guard_norm,
 * pcre2_match_data) belongs to the caller, or to the calling thread (scratch.c). */
#ifndef SL_GUARD_INT_H
#define SL_GUARD_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "strbuf.h"
#include "yaml_tree.h"

/* ---- normalize.c: NFKC + case fold + default-ignorables removed ---- */

/* The normalised form of a text. s[i] came from the original unit (a base character and
 * its combining marks) starting at byte map[i]; map[len] is the original length. */
typedef struct sl_guard_norm {
    char *s;
    size_t len, cap;
    uint32_t *map;
    size_t map_cap;
    bool raw;               /* some bytes passed through as they came: s may not be UTF-8 */
} sl_guard_norm;

/* Normalise text (UTF-8; invalid bytes pass through as themselves) into n, reusing its
 * buffers. 0, or -1 when out of memory or the text is over 4 GiB. */
int sl_guard_normalize(sl_guard_norm *n, const char *text, size_t len);
/* Normalise text[from, len) (from: the start of a unit) onto the end of what n holds, its
 * map counting from text; n->raw is set (never cleared) where bytes pass through. */
int sl_guard_normalize_more(sl_guard_norm *n, const char *text, size_t from, size_t len);
/* Original byte range of normalised bytes [ns, ne): whole units, so a match inside a
 * composed character covers all of it. */
void sl_guard_norm_span(const sl_guard_norm *n, size_t ns, size_t ne, size_t *os, size_t *oe);
void sl_guard_norm_free(sl_guard_norm *n);
/* Code points in a UTF-8 string. */
size_t sl_guard_utf8_count(const char *s, size_t len);

/* ---- scratch.c: per-thread scratch for one scan ---- */

typedef struct sl_guard_scratch {
    pcre2_match_data *md;       /* one pair */
    sl_guard_norm norm;
    bool per_thread;            /* the thread's own (kept), else made for this take */
    bool busy;
} sl_guard_scratch;

/* Scratch for one scan: this thread's when free, else a new one. NULL when out of memory.
 * Give it back (sl_guard_scratch_give) before returning to the event loop. */
sl_guard_scratch *sl_guard_scratch_take(void);
void sl_guard_scratch_give(sl_guard_scratch *s);

/* ---- keywords.c: Aho-Corasick over the bytes of normalised UTF-8 ---- */

typedef struct sl_guard_ac sl_guard_ac;

typedef struct sl_guard_hit {
    size_t start, end;      /* normalised byte offsets, end exclusive */
    bool is_regex;
    uint32_t id;            /* keyword id or regex index */
} sl_guard_hit;

/* Caller frees with sl_guard_ac_free. */
sl_guard_ac *sl_guard_ac_new(void);
/* Add an (already normalised, non-empty) keyword. 0 or -1 (out of memory). */
int sl_guard_ac_add(sl_guard_ac *ac, const char *kw, size_t len, uint32_t id);
/* Compute failure links; no sl_guard_ac_add after this. 0 or -1. */
int sl_guard_ac_build(sl_guard_ac *ac);
/* The match that ends first in s (the longest of those ending there): true and *hit. */
bool sl_guard_ac_find(const sl_guard_ac *ac, const char *s, size_t len, sl_guard_hit *hit);
/* The same over s[from, len), going on from *state (0: the start) for text that comes in
 * pieces; *state is where the scan stands after len when it finds nothing. Offsets in *hit
 * count from s. */
bool sl_guard_ac_feed(const sl_guard_ac *ac, int32_t *state, const char *s, size_t from, size_t len,
                      sl_guard_hit *hit);
/* Whether the DFA was built; sl_guard_ac_drop_dfa scans with the edge arrays (tests). */
bool sl_guard_ac_has_dfa(const sl_guard_ac *ac);
void sl_guard_ac_drop_dfa(sl_guard_ac *ac);
size_t sl_guard_ac_count(const sl_guard_ac *ac);
size_t sl_guard_ac_states(const sl_guard_ac *ac);
void sl_guard_ac_free(sl_guard_ac *ac);

/* ---- rules.c: the deny rules ---- */

typedef struct sl_guard_rules {
    sl_guard_ac *ac;            /* NULL when there are no keywords */
    size_t n_words;             /* keyword ids 0..n_words-1: deny[] then deny_file lines */
    size_t n_inline;            /* how many came from deny: (the rest from deny_file) */
    uint32_t *file_line;        /* deny_file line of id n_inline + k */
    size_t longest_word;        /* in normalised code points */
    pcre2_code **re;
    size_t n_re;
    size_t longest_re;          /* bound of the longest regex match in code points, SIZE_MAX: none */
} sl_guard_rules;

/* Patterns are compiled UTF|UCP|CASELESS, JIT where available. Caller frees the code
 * with pcre2_code_free. NULL with PCRE2's message and offset in err. */
pcre2_code *sl_guard_regex_compile(const char *pattern, sl_err *err);
/* An upper bound of the code points a match of pattern can span, or SIZE_MAX. */
size_t sl_guard_regex_bound(const char *pattern);

/* Scan normalised text from byte `from` (regexes may look behind it): the rule hit
 * that starts first. more: text may follow, so a regex whose match depends on what comes
 * next (\b, $, a longer repeat) at the end is not a hit yet. md: the caller's match data
 * (pcre2_match_data_create(1+)). utf8: s is known to be UTF-8 (a normalised text with nothing
 * raw), which the regexes then need not check again. */
bool sl_guard_rules_scan(const sl_guard_rules *r, const char *s, size_t len, size_t from, bool more, bool utf8,
                         pcre2_match_data *md, sl_guard_hit *hit);
/* Its regexes alone: *hit (already found when `found`) is replaced by a match that starts
 * before it. True when either is a hit. */
bool sl_guard_regex_scan(const sl_guard_rules *r, const char *s, size_t len, size_t from, bool more, bool utf8,
                         pcre2_match_data *md, bool found, sl_guard_hit *hit);
/* "deny[3]", "deny_file:120", "deny_regex[0]" (never the text) into buf. */
const char *sl_guard_rule_name(const sl_guard_rules *r, const sl_guard_hit *hit, char *buf, size_t size);
bool sl_guard_rules_empty(const sl_guard_rules *r);
void sl_guard_rules_free(sl_guard_rules *r);

/* ---- masks.c: e-mail, phone, cn_mobile, cn_id, card, custom regex ---- */

typedef enum sl_guard_mask_kind {
    SL_GUARD_MASK_EMAIL,
    SL_GUARD_MASK_PHONE,
    SL_GUARD_MASK_CN_MOBILE,
    SL_GUARD_MASK_CN_ID,
    SL_GUARD_MASK_CARD,
    SL_GUARD_MASK_REGEX,
} sl_guard_mask_kind;

typedef struct sl_guard_mask {
    sl_guard_mask_kind kind;
    pcre2_code *re;
    char *replace;              /* literal replacement */
} sl_guard_mask;

/* "email" -> kind; -1 when not a built-in name. */
int sl_guard_mask_kind_parse(const char *name);
/* Fill m for a built-in kind (or a custom pattern and replacement). 0 or -1 with err. */
int sl_guard_mask_init(sl_guard_mask *m, sl_guard_mask_kind kind, const char *pattern, const char *replace,
                       sl_err *err);
void sl_guard_mask_free(sl_guard_mask *m);
/* Apply masks to text, whose normal form the caller has in norm. Returns the number of
 * replacements; when > 0, *out is the new text, *out_len bytes (caller frees). -1 when out
 * of memory.
 * Overlaps: checksummed masks (cn_id, card) win, then the order of the list. */
int sl_guard_masks_apply(const sl_guard_mask *masks, size_t n, const char *text, size_t len,
                         const sl_guard_norm *norm, pcre2_match_data *md, char **out, size_t *out_len);
bool sl_guard_luhn_ok(const char *digits, size_t n);
bool sl_guard_cn_id_ok(const char *id18);

/* ---- stream_scan.c: deny rules over a text that arrives in pieces ---- */

typedef struct sl_guard_stream {
    const sl_guard_rules *rules;
    size_t holdback;            /* normalised code points kept unsent */
    sl_strbuf text;             /* [start, held): the tail of what was sent, for regex */
    size_t start, held;         /* look-behind; [held, text.len): the text not yet sent */
    sl_guard_norm norm;         /* text normalised from the unit at map[norm_from]; the map */
    size_t norm_from;           /* gives offsets in text */
    size_t raw_end;             /* text[0, raw_end) may hold bytes that are not UTF-8 */
    pcre2_match_data *md;
    int32_t ac_state;           /* the keyword scan's state at text[ac_at], the start of the */
    size_t ac_at;               /* last unit (which a combining mark may yet extend); SIZE_MAX: none */
    size_t held_norm;           /* where held is in norm (a hint, checked) */
    size_t more_at, more_norm;  /* where the last feed's normalising began: in text, in norm */
} sl_guard_stream;

typedef enum sl_guard_feed {
    SL_GUARD_FEED_ERROR = -1,
    SL_GUARD_FEED_OK = 0,       /* send *out (possibly empty) */
    SL_GUARD_FEED_HIT = 1,      /* send *out (what precedes the match), then stop */
} sl_guard_feed;

/* 0 or -1 (out of memory). */
int sl_guard_stream_init(sl_guard_stream *st, const sl_guard_rules *rules, size_t holdback);
/* Add text; final flushes what is held. *out (NULL when nothing) is the text that may go out
 * now, in the stream's buffer: good until the next feed. On a hit, *hit says which rule. */
sl_guard_feed sl_guard_stream_feed(sl_guard_stream *st, const char *text, size_t len, bool final, const char **out,
                                   size_t *out_len, sl_guard_hit *hit);
void sl_guard_stream_free(sl_guard_stream *st);

/* ---- guard_config.c: the plugin's options ---- */

#define SL_GUARD_HOLDBACK_DEFAULT_CAP 256   /* default hold-back is the longest rule, at most this */
#define SL_GUARD_HOLDBACK_MAX 4096

typedef struct sl_guard_conf {
    sl_guard_rules rules;
    sl_guard_mask *masks;
    size_t n_masks;
    bool on_request, on_response;   /* apply_to */
    bool refuse;                    /* on_request_hit: refuse (else error) */
    char *refusal;
    size_t holdback;
} sl_guard_conf;

/* The plugin's config_parse and config_free (sl_plugin_ctx from plugin.h). */
struct sl_plugin_ctx;
int sl_guard_config_parse(const sl_ynode *node, struct sl_plugin_ctx *ctx, void **conf);
void sl_guard_config_free(void *conf);

#endif
