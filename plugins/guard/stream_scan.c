/* Deny rules over a text that streams in pieces. The last `holdback` normalised characters
 * stay unsent: a keyword no longer than that which begins in the text already sent would
 * have been complete, and seen, before that text went out. So a word split over chunks
 * is always seen whole. The held text is scanned again with each piece (it is short); a
 * little of the sent text is kept in front of it as context for regex look-behind (\b).
 * The keywords are not scanned again: their scan goes on from the last unit of the text
 * before (see scan_keywords). */
#include "guard_int.h"

#include <stdlib.h>
#include <string.h>

#define CTX_BYTES 64

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *b = realloc(*buf, c);
    if (!b)
        return -1;
    *buf = b;
    *cap = c;
    return 0;
}

int sl_guard_stream_init(sl_guard_stream *st, const sl_guard_rules *rules, size_t holdback)
{
    memset(st, 0, sizeof *st);
    st->rules = rules;
    st->holdback = holdback;
    st->ctx = malloc(CTX_BYTES);
    st->md = pcre2_match_data_create(1, NULL);
    if (!st->ctx || !st->md) {
        sl_guard_stream_free(st);
        return -1;
    }
    return 0;
}

/* Send held[0, cut): *out gets a copy, the sent text's tail becomes the context. */
static int send_prefix(sl_guard_stream *st, size_t cut, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (cut == 0)
        return 0;
    char *o = malloc(cut + 1);
    if (!o)
        return -1;
    memcpy(o, st->held, cut);
    o[cut] = '\0';
    *out = o;
    *out_len = cut;
    /* context: the last CTX_BYTES of ctx + sent, from a character start */
    size_t total = st->ctx_len + cut, from = total > CTX_BYTES ? total - CTX_BYTES : 0;
    while (from < total && ((uint8_t)st->scratch[from] & 0xC0) == 0x80)
        from++;
    memmove(st->ctx, st->scratch + from, total - from);
    st->ctx_len = total - from;
    memmove(st->held, st->held + cut, st->held_len - cut);
    st->held_len -= cut;
    if (st->ac_at >= cut) {
        st->ac_at -= cut;
    } else {
        st->ac_at = 0;
        st->ac_state = 0;
    }
    return 0;
}

/* The first normalised byte in [lo, n->len) that maps to original offset `at` or past it
 * (halving without branches, which would follow no pattern). */
static size_t norm_at(const sl_guard_norm *n, size_t lo, size_t at)
{
    if (lo >= n->len)
        return lo;
    const uint32_t *b = n->map + lo;
    for (size_t k = n->len - lo; k > 1; k -= k / 2)
        b = b[k / 2] < at ? b + k / 2 : b;
    return (size_t)(b - n->map) + (*b < at);
}

/* The keywords over the held text (normalised from byte `from`), going on from where the
 * last feed stood. Units are normalised alone, so the held text's normal form is what it was
 * then up to its last unit, which a combining mark in the new text may extend: the scan
 * stopped there and goes on from there. Going on rather than starting again at `from` finds
 * the same: a keyword that began in text already sent is longer than the hold-back, as that
 * text went out with at least the hold-back after it. */
static bool scan_keywords(sl_guard_stream *st, const sl_guard_norm *n, size_t from, bool final, sl_guard_hit *hit)
{
    const sl_guard_ac *ac = st->rules->ac;
    if (!ac || from >= n->len)
        return false;
    size_t at = from;
    int32_t state = 0;
    if (st->ac_at > 0) {
        size_t j = norm_at(n, from, st->ctx_len + st->ac_at);
        if (j < n->len && n->map[j] == st->ctx_len + st->ac_at) {
            at = j;
            state = st->ac_state;
        }
    }
    size_t last = n->len - 1;
    while (last > at && n->map[last - 1] == n->map[n->len - 1])
        last--;
    if (sl_guard_ac_feed(ac, &state, n->s, at, last, hit))
        return true;
    st->ac_state = state;
    st->ac_at = n->map[last] - st->ctx_len;
    /* The last unit is held back (when anything is) and scanned once the mark that may
     * follow it has had its chance: so "cafe" + U+0301 is "café", never "cafe". */
    return (final || st->holdback == 0) && sl_guard_ac_feed(ac, &state, n->s, last, n->len, hit);
}

sl_guard_feed sl_guard_stream_feed(sl_guard_stream *st, const char *text, size_t len, bool final, char **out,
                                   size_t *out_len, sl_guard_hit *hit)
{
    *out = NULL;
    *out_len = 0;
    if (grow(&st->held, &st->held_cap, st->held_len + len + 1) < 0)
        return SL_GUARD_FEED_ERROR;
    memcpy(st->held + st->held_len, text, len);
    st->held_len += len;
    size_t total = st->ctx_len + st->held_len;
    if (grow(&st->scratch, &st->scratch_cap, total + 1) < 0)
        return SL_GUARD_FEED_ERROR;
    memcpy(st->scratch, st->ctx, st->ctx_len);
    memcpy(st->scratch + st->ctx_len, st->held, st->held_len);
    if (sl_guard_normalize(&st->norm, st->scratch, total) < 0)
        return SL_GUARD_FEED_ERROR;
    const sl_guard_norm *n = &st->norm;
    size_t from = norm_at(n, 0, st->ctx_len); /* the first normalised byte of the held text */
    bool found = scan_keywords(st, n, from, final, hit);
    if (sl_guard_regex_scan(st->rules, n->s, n->len, from, !final, !n->raw, st->md, found, hit)) {
        size_t os = n->map[hit->start];
        size_t cut = os > st->ctx_len ? os - st->ctx_len : 0;
        if (send_prefix(st, cut, out, out_len) < 0)
            return SL_GUARD_FEED_ERROR;
        st->held_len = 0;
        st->ac_at = 0;
        return SL_GUARD_FEED_HIT;
    }
    if (final)
        return send_prefix(st, st->held_len, out, out_len) < 0 ? SL_GUARD_FEED_ERROR : SL_GUARD_FEED_OK;
    /* keep the last `holdback` normalised characters */
    size_t q = n->len, kept = 0;
    while (q > from && kept < st->holdback) {
        q--;
        while (q > from && ((uint8_t)n->s[q] & 0xC0) == 0x80)
            q--;
        kept++;
    }
    if (kept < st->holdback || q <= from)
        return SL_GUARD_FEED_OK;
    size_t os = n->map[q];
    size_t cut = os > st->ctx_len ? os - st->ctx_len : 0;
    return send_prefix(st, cut, out, out_len) < 0 ? SL_GUARD_FEED_ERROR : SL_GUARD_FEED_OK;
}

void sl_guard_stream_free(sl_guard_stream *st)
{
    free(st->held);
    free(st->ctx);
    free(st->scratch);
    sl_guard_norm_free(&st->norm);
    pcre2_match_data_free(st->md);
    memset(st, 0, sizeof *st);
}
