#include "stop.h"

#include <stdlib.h>
#include <string.h>

int sl_stop_init(sl_stop *s, const char *const *stops, int n)
{
    memset(s, 0, sizeof *s);
    if (n <= 0)
        return 0;
    s->stops = calloc((size_t)n, sizeof *s->stops);
    s->lens = calloc((size_t)n, sizeof *s->lens);
    if (!s->stops || !s->lens)
        goto fail;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(stops[i]);
        if (len == 0)
            continue;
        if (!(s->stops[s->n] = strdup(stops[i])))
            goto fail;
        s->lens[s->n++] = len;
        if (len > s->max_len)
            s->max_len = len;
    }
    return 0;
fail:
    sl_stop_free(s);
    return -1;
}

void sl_stop_free(sl_stop *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->stops[i]);
    free(s->stops);
    free(s->lens);
    free(s->held);
    memset(s, 0, sizeof *s);
}

size_t sl_stop_max_held(const sl_stop *s)
{
    return s->max_len;
}

/* Longest suffix of buf[0..n) that is a proper prefix of some stop string. */
static size_t partial_suffix(const sl_stop *s, const char *buf, size_t n)
{
    size_t best = 0;
    for (int i = 0; i < s->n; i++) {
        size_t k = s->lens[i] - 1 < n ? s->lens[i] - 1 : n;
        for (; k > best; k--)
            if (memcmp(buf + n - k, s->stops[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

size_t sl_stop_push(sl_stop *s, const char *text, size_t len, char *out)
{
    if (s->hit)
        return 0;
    if (s->n == 0) {
        memcpy(out, text, len);
        return len;
    }
    size_t need = s->n_held + len;
    if (need > s->cap) {
        size_t cap = need * 2;
        char *p = realloc(s->held, cap);
        if (!p)
            return (size_t)-1;
        s->held = p;
        s->cap = cap;
    }
    memcpy(s->held + s->n_held, text, len);
    s->n_held = need;

    size_t first = s->n_held;
    for (int i = 0; i < s->n; i++) {
        char *at = memmem(s->held, s->n_held, s->stops[i], s->lens[i]);
        if (at && (size_t)(at - s->held) < first)
            first = (size_t)(at - s->held);
    }
    if (first < s->n_held) {
        memcpy(out, s->held, first);
        s->n_held = 0;
        s->hit = true;
        return first;
    }
    size_t keep = partial_suffix(s, s->held, s->n_held);
    size_t emit = s->n_held - keep;
    memcpy(out, s->held, emit);
    memmove(s->held, s->held + emit, keep);
    s->n_held = keep;
    return emit;
}

size_t sl_stop_flush(sl_stop *s, char *out)
{
    size_t n = s->hit ? 0 : s->n_held;
    if (n)
        memcpy(out, s->held, n);
    s->n_held = 0;
    return n;
}
