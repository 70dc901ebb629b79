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

/* xoshiro256**; one per sequence. Seed it with params.seed when has_seed (the same seed,
 * logits and params give the same tokens), otherwise from something unpredictable. */
typedef struct sl_rng { uint64_t s[4]; } sl_rng;
void sl_rng_seed(sl_rng *r, uint64_t seed);
double sl_rng_uniform(sl_rng *r);

/* Picks the next token. logits (vocab floats) are modified in place. counts: how often
 * each id was generated so far in this sequence (vocab ints) or NULL for no penalties.
 * Order as in OpenAI/vLLM: logit -= frequency_penalty * count + presence_penalty * (count > 0);
 * then greedy (argmax, lowest id on ties) when temperature <= 0 or top_k == 1; else
 * divide by temperature, keep the top_k best, keep the smallest set reaching top_p of
 * the probability (top_p <= 0 or >= 1: off), and draw from what is left. */
int32_t sl_sample(const sl_sampling_params *p, sl_rng *rng, float *logits, int vocab,
                  const int32_t *counts);

#endif
