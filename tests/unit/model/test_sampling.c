/* Sampling as a user of the API sees it: greedy, temperature, top-k, top-p, penalties and
 * seeds. Every draw uses a fixed seed, so the frequency checks are deterministic. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sampling.h"

#define DRAWS 20000

static sl_sampling_params params(float temperature)
{
    return (sl_sampling_params){ .temperature = temperature, .top_p = 1.0f };
}

/* Draws DRAWS tokens from logits (copied afresh each time); counts into hist. */
static void histogram(const sl_sampling_params *p, const float *logits, int vocab, int *hist)
{
    sl_rng rng;
    sl_rng_seed(&rng, 12345);
    float *l = malloc((size_t)vocab * sizeof *l);
    memset(hist, 0, (size_t)vocab * sizeof *hist);
    for (int i = 0; i < DRAWS; i++) {
        memcpy(l, logits, (size_t)vocab * sizeof *l);
        int32_t t = sl_sample(p, &rng, l, vocab, NULL);
        assert_true(t >= 0 && t < vocab);
        hist[t]++;
    }
    free(l);
}

static void greedy_is_argmax(void **state)
{
    float logits[5] = { 0.1f, 2.0f, -1.0f, 1.99f, 0.0f };
    sl_sampling_params p = params(0);
    sl_rng rng;
    sl_rng_seed(&rng, 1);
    for (int i = 0; i < 10; i++)
        assert_int_equal(sl_sample(&p, &rng, logits, 5, NULL), 1);
}

static void top_k_1_is_greedy(void **state)
{
    float logits[5] = { 0.1f, 2.0f, -1.0f, 1.99f, 0.0f };
    sl_sampling_params p = params(1.5f);
    p.top_k = 1;
    sl_rng rng;
    sl_rng_seed(&rng, 2);
    for (int i = 0; i < 100; i++)
        assert_int_equal(sl_sample(&p, &rng, logits, 5, NULL), 1);
}

static void same_seed_same_tokens(void **state)
{
    float logits[50];
    for (int i = 0; i < 50; i++)
        logits[i] = (float)(i % 7) * 0.3f;
    sl_sampling_params p = params(1.0f);
    p.top_p = 0.9f;
    p.top_k = 20;
    int32_t a[64], b[64], c[64];
    uint64_t seeds[3] = { 42, 42, 43 };
    int32_t *out[3] = { a, b, c };
    for (int s = 0; s < 3; s++) {
        sl_rng rng;
        sl_rng_seed(&rng, seeds[s]);
        for (int i = 0; i < 64; i++) {
            float l[50];
            memcpy(l, logits, sizeof l);
            out[s][i] = sl_sample(&p, &rng, l, 50, NULL);
        }
    }
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
}

static void rng_is_uniform(void **state)
{
    sl_rng rng;
    sl_rng_seed(&rng, 7);
    double sum = 0;
    int below_tenth = 0;
    for (int i = 0; i < DRAWS; i++) {
        double u = sl_rng_uniform(&rng);
        assert_true(u >= 0 && u < 1);
        sum += u;
        below_tenth += u < 0.1;
    }
    assert_true(fabs(sum / DRAWS - 0.5) < 0.01);
    assert_true(abs(below_tenth - DRAWS / 10) < DRAWS / 100);
}

static void temperature_1_follows_softmax(void **state)
{
    float logits[3] = { logf(0.5f), logf(0.3f), logf(0.2f) };
    int hist[3];
    sl_sampling_params p = params(1.0f);
    histogram(&p, logits, 3, hist);
    assert_true(fabs(hist[0] / (double)DRAWS - 0.5) < 0.02);
    assert_true(fabs(hist[1] / (double)DRAWS - 0.3) < 0.02);
    assert_true(fabs(hist[2] / (double)DRAWS - 0.2) < 0.02);
}

static void temperature_sharpens_and_flattens(void **state)
{
    float logits[3] = { 1.0f, 0.5f, 0.0f };
    int cold[3], hot[3];
    sl_sampling_params p = params(0.05f);
    histogram(&p, logits, 3, cold);
    assert_true(cold[0] > DRAWS * 99 / 100);
    p.temperature = 100.0f;
    histogram(&p, logits, 3, hot);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(hot[i] / (double)DRAWS - 1.0 / 3) < 0.02);
}

static void top_k_keeps_the_k_best(void **state)
{
    float logits[10] = { 0.0f, 3.0f, 0.5f, 2.9f, 0.1f, 2.8f, 0.2f, 0.3f, 0.4f, 0.45f };
    int hist[10];
    sl_sampling_params p = params(1.0f);
    p.top_k = 3;
    histogram(&p, logits, 10, hist);
    for (int i = 0; i < 10; i++)
        if (i == 1 || i == 3 || i == 5)
            assert_true(hist[i] > DRAWS / 5);
        else
            assert_int_equal(hist[i], 0);
}

static void top_p_keeps_the_nucleus(void **state)
{
    float logits[4] = { logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f) };
    int hist[4];
    sl_sampling_params p = params(1.0f);
    p.top_p = 0.75f;      /* 0.5 + 0.3 covers it */
    histogram(&p, logits, 4, hist);
    assert_true(hist[2] == 0 && hist[3] == 0);
    assert_true(fabs(hist[0] / (double)DRAWS - 0.625) < 0.02);   /* renormalised 0.5/0.8 */
    p.top_p = 0.9f;       /* needs the third token too */
    histogram(&p, logits, 4, hist);
    assert_true(hist[2] > 0 && hist[3] == 0);
}

/* A large, nearly flat vocabulary: every draw falls in the nucleus found by a full sort. */
static void top_p_large_vocab_matches_full_sort(void **state)
{
    enum { N = 5000 };
    float *logits = malloc(N * sizeof *logits), *l = malloc(N * sizeof *l);
    double *prob = malloc(N * sizeof *prob);
    for (int i = 0; i < N; i++)
        logits[i] = (float)((i * 7919) % N) * 0.002f;
    double z = 0;
    for (int i = 0; i < N; i++)
        z += (prob[i] = exp(logits[i]));
    /* the nucleus for top_p 0.5: tokens whose logit is above a cut found by sorting */
    float *sorted = malloc(N * sizeof *sorted);
    memcpy(sorted, logits, N * sizeof *sorted);
    for (int i = 1; i < N; i++)
        for (int j = i; j > 0 && sorted[j] > sorted[j - 1]; j--) {
            float t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    double acc = 0;
    float cut = sorted[0];
    for (int i = 0; i < N && acc < 0.5 * z; i++) {
        acc += exp(sorted[i]);
        cut = sorted[i];
    }
    sl_sampling_params p = params(1.0f);
    p.top_p = 0.5f;
    sl_rng rng;
    sl_rng_seed(&rng, 99);
    for (int i = 0; i < 2000; i++) {
        memcpy(l, logits, N * sizeof *l);
        int32_t t = sl_sample(&p, &rng, l, N, NULL);
        assert_true(logits[t] >= cut);
    }
    free(sorted);
    free(prob);
    free(l);
    free(logits);
}

static void presence_penalty_subtracts_once(void **state)
{
    float logits[2] = { 2.0f, 1.9f };
    int32_t counts[2] = { 3, 0 };
    sl_sampling_params p = params(0);
    p.presence_penalty = 0.5f;
    sl_rng rng;
    sl_rng_seed(&rng, 1);
    assert_int_equal(sl_sample(&p, &rng, logits, 2, counts), 1);
    assert_true(logits[0] == 1.5f && logits[1] == 1.9f);
}

static void frequency_penalty_scales_with_count(void **state)
{
    sl_sampling_params p = params(0);
    p.frequency_penalty = 0.05f;
    sl_rng rng;
    sl_rng_seed(&rng, 1);
    float once[2] = { 2.0f, 1.9f }, thrice[2] = { 2.0f, 1.9f };
    int32_t c1[2] = { 1, 0 }, c3[2] = { 3, 0 };
    assert_int_equal(sl_sample(&p, &rng, once, 2, c1), 0);     /* 1.95 > 1.9 */
    assert_int_equal(sl_sample(&p, &rng, thrice, 2, c3), 1);   /* 1.85 < 1.9 */
}

static void negative_penalty_encourages_repeats(void **state)
{
    float logits[2] = { 1.0f, 2.0f };
    int32_t counts[2] = { 1, 0 };
    sl_sampling_params p = params(0);
    p.presence_penalty = -1.5f;
    sl_rng rng;
    sl_rng_seed(&rng, 1);
    assert_int_equal(sl_sample(&p, &rng, logits, 2, counts), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(greedy_is_argmax),
        cmocka_unit_test(top_k_1_is_greedy),
        cmocka_unit_test(same_seed_same_tokens),
        cmocka_unit_test(rng_is_uniform),
        cmocka_unit_test(temperature_1_follows_softmax),
        cmocka_unit_test(temperature_sharpens_and_flattens),
        cmocka_unit_test(top_k_keeps_the_k_best),
        cmocka_unit_test(top_p_keeps_the_nucleus),
        cmocka_unit_test(top_p_large_vocab_matches_full_sort),
        cmocka_unit_test(presence_penalty_subtracts_once),
        cmocka_unit_test(frequency_penalty_scales_with_count),
        cmocka_unit_test(negative_penalty_encourages_repeats),
    };
    return cmocka_run_group_tests_name("model_sampling", tests, NULL, NULL);
}
