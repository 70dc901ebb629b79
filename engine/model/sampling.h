/* Sampling from logits: greedy, temperature, top-k, top-p, presence/frequency penalties,
 * seeded reproducible RNG. */
#ifndef SL_SAMPLING_H
#define SL_SAMPLING_H

#include <stdint.h>

typedef struct sl_sampling_params {
    float temperature;        /* 0 = greedy */
    float top_p;              /* 1 = off */
    int top_k;                /* 0 = off */
    float presence_penalty;
    float frequency_penalty;
    uint64_t seed;
    int has_seed;
} sl_sampling_params;

typedef struct sl_rng { uint64_t s[4]; } sl_rng;
void sl_rng_seed(sl_rng *r, uint64_t seed);
double sl_rng_uniform(sl_rng *r);

/* Picks the next token. logits (vocab floats) are modified in place. counts: how often
 * each id was generated so far in this sequence (vocab ints) or NULL for no penalties. */
int32_t sl_sample(const sl_sampling_params *p, sl_rng *rng, float *logits, int vocab,
                  const int32_t *counts);

#endif
