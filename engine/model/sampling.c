/* Penalties, then temperature, then top-k, then top-p, then one draw (OpenAI / vLLM order). */
#include "sampling.h"

#include <math.h>
#include <stdlib.h>

static uint64_t rotl(uint64_t x, int k)
{
    return x << k | x >> (64 - k);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sl_rng_seed(sl_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t next(sl_rng *r)   /* xoshiro256** */
{
    uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sl_rng_uniform(sl_rng *r)
{
    return (double)(next(r) >> 11) * 0x1.0p-53;
}

typedef struct cand { float v; int32_t id; } cand;

static int by_value_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int32_t argmax(const float *v, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* Moves the k largest of c[0..n) to the front (unordered); expected O(n). */
static void select_top(cand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = c[lo + (hi - lo) / 2].v;
        int i = lo, j = hi;
        while (i <= j) {
            while (c[i].v > pivot)
                i++;
            while (c[j].v < pivot)
                j--;
            if (i <= j) {
                cand t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
}

static int32_t draw(const cand *c, int n, double total, sl_rng *rng)
{
    double u = sl_rng_uniform(rng) * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += c[i].v;
        if (u < acc)
            return c[i].id;
    }
    return c[n - 1].id;
}

/* c holds probabilities (unnormalised, summing to total); keeps the nucleus. Sorting only
 * the candidates above a threshold is exact once they already cover top_p. */
static int nucleus(cand *c, int n, double total, float top_p)
{
    double need = top_p * total;
    float t = (float)(total / n);
    for (;;) {
        int m = 0;
        double mass = 0;
        for (int i = 0; i < n; i++)
            if (c[i].v >= t) {
                mass += c[i].v;
                cand x = c[m];
                c[m++] = c[i];
                c[i] = x;
            }
        if (mass >= need || t == 0) {
            qsort(c, (size_t)m, sizeof *c, by_value_desc);
            double acc = 0;
            for (int i = 0; i < m; i++) {
                acc += c[i].v;
                if (acc >= need)
                    return i + 1;
            }
            return m;
        }
        t = t < 1e-30f ? 0 : t / 16;
    }
}

int32_t sl_sample(const sl_sampling_params *p, sl_rng *rng, float *logits, int vocab,
                  const int32_t *counts)
{
    if (counts && (p->presence_penalty != 0 || p->frequency_penalty != 0))
        for (int i = 0; i < vocab; i++)
            if (counts[i] > 0)
                logits[i] -= p->frequency_penalty * (float)counts[i] + p->presence_penalty;
    if (p->temperature <= 0 || p->top_k == 1)
        return argmax(logits, vocab);
    cand *c = malloc((size_t)vocab * sizeof *c);
    if (!c)
        return argmax(logits, vocab);
    for (int i = 0; i < vocab; i++)
        c[i] = (cand){ logits[i], i };
    int n = vocab;
    if (p->top_k > 0 && p->top_k < vocab) {
        select_top(c, n, p->top_k);
        n = p->top_k;
    }
    float maxv = c[0].v;
    for (int i = 1; i < n; i++)
        if (c[i].v > maxv)
            maxv = c[i].v;
    double total = 0;
    for (int i = 0; i < n; i++) {
        c[i].v = expf((c[i].v - maxv) / p->temperature);
        total += c[i].v;
    }
    if (p->top_p > 0 && p->top_p < 1) {
        n = nucleus(c, n, total, p->top_p);
        total = 0;
        for (int i = 0; i < n; i++)
            total += c[i].v;
    }
    int32_t id = draw(c, n, total, rng);
    free(c);
    return id;
}
