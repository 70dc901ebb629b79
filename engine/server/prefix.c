#include "prefix.h"

#include <stdlib.h>
#include <string.h>

typedef struct kept {
    int32_t *ids;
    int n, cap;
    uint64_t stamp;      /* when it was kept: larger is more recent */
} kept;

struct sl_prefix {
    kept *slots;
    int n_slots;
    int min_tokens;
    uint64_t clock;
};

sl_prefix *sl_prefix_new(int n_slots, int min_tokens)
{
    sl_prefix *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->slots = calloc((size_t)n_slots, sizeof *p->slots);
    if (!p->slots) {
        free(p);
        return NULL;
    }
    p->n_slots = n_slots;
    p->min_tokens = min_tokens < 1 ? 1 : min_tokens;
    return p;
}

void sl_prefix_free(sl_prefix *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_slots; i++)
        free(p->slots[i].ids);
    free(p->slots);
    free(p);
}

int sl_prefix_keep(sl_prefix *p, int slot, const int32_t *a, int na, const int32_t *b, int nb)
{
    kept *k = &p->slots[slot];
    int n = na + nb;
    if (n > k->cap) {
        int32_t *ids = realloc(k->ids, (size_t)n * sizeof *ids);
        if (!ids) {
            k->n = 0;
            return -1;
        }
        k->ids = ids;
        k->cap = n;
    }
    if (na)
        memcpy(k->ids, a, (size_t)na * sizeof *a);
    if (nb)
        memcpy(k->ids + na, b, (size_t)nb * sizeof *b);
    k->n = n;
    k->stamp = ++p->clock;
    return 0;
}

void sl_prefix_drop(sl_prefix *p, int slot)
{
    p->slots[slot].n = 0;
}

int sl_prefix_kept(const sl_prefix *p, int slot)
{
    return p->slots[slot].n;
}

static int common_prefix(const int32_t *a, const int32_t *b, int n)
{
    int i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

int sl_prefix_best(const sl_prefix *p, const int *free, int n_free, const int32_t *ids, int n,
                   int *common)
{
    int best = -1, best_len = 0;
    for (int i = 0; i < n_free; i++) {
        const kept *k = &p->slots[free[i]];
        int lim = k->n < n - 1 ? k->n : n - 1;
        if (lim < p->min_tokens || lim < best_len)
            continue;
        int len = common_prefix(k->ids, ids, lim);
        if (len < p->min_tokens)
            continue;
        if (len > best_len || (len == best_len && k->stamp > p->slots[free[best]].stamp)) {
            best = i;
            best_len = len;
        }
    }
    *common = best_len;
    return best;
}

int sl_prefix_oldest(const sl_prefix *p, const int *free, int n_free)
{
    int old = -1;
    for (int i = 0; i < n_free; i++) {
        const kept *k = &p->slots[free[i]];
        if (k->n > 0 && (old < 0 || k->stamp < p->slots[free[old]].stamp))
            old = i;
    }
    return old;
}

int sl_prefix_victim(const sl_prefix *p, const int *free, int n_free)
{
    for (int i = n_free - 1; i >= 0; i--)
        if (p->slots[free[i]].n == 0)
            return i;
    return sl_prefix_oldest(p, free, n_free);
}
