/* Deny rules over a text that streams in pieces. The last `holdback` normalised characters
 * stay unsent: a keyword no longer than that which begins in the text already sent would
 * have been complete, and seen, before that text went out. So a word split over chunks
 * is always seen whole. The held text is scanned again by the regexes with each piece (it is
 * short); a little of the sent text is kept in front of it as context for regex look-behind
 * (\b).
 * One buffer holds the context and the held text, normalised as it comes: only the new
 * piece and the unit before it (which a combining mark may extend) are normalised, and the
 * keyword scan goes on from where it stood (see scan_keywords). What goes out is handed out
 * where it lies in the buffer. */
#include "guard_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CTX_BYTES 64
#define NONE SIZE_MAX

int sl_guard_stream_init(sl_guard_stream *st, const sl_guard_rules *rules, size_t holdback)
{
    memset(st, 0, sizeof *st);
    st->rules = rules;
    st->holdback = holdback;
    st->ac_at = NONE;
    st->md = pcre2_match_data_create(1, NULL);
    return st->md ? 0 : -1;
}

/* The first normalised byte in [lo, n->len) that maps to buffer offset `at` or past it
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

/* Move what is live (from start) to the front of the window, and the normalised text with it. */
static void compact(sl_guard_stream *st)
{
    size_t d = st->start;
    if (!d)
        return;
    memmove(st->text.s, st->text.s + d, st->text.len - d);
    st->text.len -= d;
    st->held -= d;
    st->start = 0;
    st->raw_end = st->raw_end > d ? st->raw_end - d : 0;
    if (st->ac_at != NONE)
        st->ac_at -= d;
    sl_guard_norm *n = &st->norm;
    size_t keep = n->len - st->norm_from;
    memmove(n->s, n->s + st->norm_from, keep);
    memmove(n->map, n->map + st->norm_from, keep * sizeof *n->map);
    n->len = keep;
    st->held_norm = st->held_norm > st->norm_from ? st->held_norm - st->norm_from : 0;
    st->norm_from = 0;
    for (size_t i = 0; i < keep; i++)
        n->map[i] -= (uint32_t)d;
}

/* Add text to the window, and normalise it with the last unit before it. */
static int add_text(sl_guard_stream *st, const char *text, size_t len)
{
    if (st->text.len + len + 1 > st->text.cap)
        compact(st); /* room at the front first: the buffer stays the size of a window */
    if (sl_strbuf_add(&st->text, text, len) < 0)
        return -1;
    sl_guard_norm *n = &st->norm;
    size_t from = st->start;
    if (n->len > st->norm_from) { /* again from the last unit */
        uint32_t last = n->map[n->len - 1];
        while (n->len > st->norm_from && n->map[n->len - 1] == last)
            n->len--;
        from = last;
    }
    st->more_at = from;
    st->more_norm = n->len;
    n->raw = false;
    if (sl_guard_normalize_more(n, st->text.s, from, st->text.len) < 0)
        return -1;
    if (n->raw)
        st->raw_end = st->text.len;
    return 0;
}

/* The keywords over the held text (normalised from byte `from`), going on from where the
 * last feed stood. Units are normalised alone, so the held text's normal form is what it was
 * then up to its last unit, which a combining mark in the new text may extend: the scan
 * stopped there and goes on from there. Going on rather than starting again at `from` finds
 * the same: a keyword that began in text already sent is longer than the hold-back, as that
 * text went out with at least the hold-back after it. */
static bool scan_keywords(sl_guard_stream *st, size_t from, bool final, sl_guard_hit *hit)
{
    const sl_guard_ac *ac = st->rules->ac;
    const sl_guard_norm *n = &st->norm;
    if (!ac || from >= n->len)
        return false;
    size_t at = from;
    int32_t state = 0;
    if (st->ac_at != NONE) {
        /* where the last feed stopped is, as a rule, where this one's normalising began */
        size_t j = st->ac_at == st->more_at && st->more_norm >= from ? st->more_norm : norm_at(n, from, st->ac_at);
        if (j < n->len && n->map[j] == st->ac_at) {
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
    st->ac_at = n->map[last];
    /* The last unit is held back (when anything is) and scanned once the mark that may
     * follow it has had its chance: so "cafe" + U+0301 is "café", never "cafe". */
    return (final || st->holdback == 0) && sl_guard_ac_feed(ac, &state, n->s, last, n->len, hit);
}

/* held[0, cut) goes out (*out points at it); the sent text's tail stays as context: from
 * CTX_BYTES to twice that, cut back when it reaches the most. held_norm: where the new held
 * starts in norm. */
static void send_prefix(sl_guard_stream *st, size_t cut, size_t held_norm, const char **out, size_t *out_len)
{
    *out = cut ? st->text.s + st->held : NULL;
    *out_len = cut;
    st->held += cut;
    st->held_norm = held_norm;
    if (st->held - st->start > 2 * CTX_BYTES) {
        size_t start = st->held - CTX_BYTES;
        while (start < st->held && ((uint8_t)st->text.s[start] & 0xC0) == 0x80)
            start++;
        st->start = start;
        st->norm_from = norm_at(&st->norm, st->norm_from, start);
    }
    if (st->ac_at != NONE && st->ac_at < st->held)
        st->ac_at = NONE;
}

/* Where held starts in norm: the hint left by the last cut where it still holds. */
static size_t held_in_norm(const sl_guard_stream *st)
{
    const sl_guard_norm *n = &st->norm;
    size_t h = st->held_norm;
    if (h >= st->norm_from && h <= n->len && (h == n->len || n->map[h] >= st->held) &&
        (h == st->norm_from || n->map[h - 1] < st->held))
        return h;
    return norm_at(n, st->norm_from, st->held);
}

sl_guard_feed sl_guard_stream_feed(sl_guard_stream *st, const char *text, size_t len, bool final, const char **out,
                                   size_t *out_len, sl_guard_hit *hit)
{
    *out = NULL;
    *out_len = 0;
    if (add_text(st, text, len) < 0)
        return SL_GUARD_FEED_ERROR;
    const sl_guard_norm *n = &st->norm;
    size_t base = st->norm_from; /* the regexes see the window from here */
    size_t from = held_in_norm(st); /* the first normalised byte of the held text */
    bool found = scan_keywords(st, from, final, hit);
    if (found) { /* offsets from base, as the regexes give theirs */
        hit->start = hit->start > base ? hit->start - base : 0;
        hit->end -= base;
    }
    if (sl_guard_regex_scan(st->rules, n->s + base, n->len - base, from - base, !final, st->raw_end <= st->start,
                            st->md, found, hit)) {
        size_t os = n->map[base + hit->start];
        send_prefix(st, os > st->held ? os - st->held : 0, from, out, out_len);
        st->held = st->text.len; /* the rest is never sent */
        st->ac_at = NONE;
        return SL_GUARD_FEED_HIT;
    }
    if (final) {
        send_prefix(st, st->text.len - st->held, n->len, out, out_len);
        return SL_GUARD_FEED_OK;
    }
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
    send_prefix(st, n->map[q] - st->held, q, out, out_len);
    return SL_GUARD_FEED_OK;
}

void sl_guard_stream_free(sl_guard_stream *st)
{
    free(st->text.s);
    sl_guard_norm_free(&st->norm);
    pcre2_match_data_free(st->md);
    memset(st, 0, sizeof *st);
}
