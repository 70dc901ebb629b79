/* The CPU backend against Hugging Face transformers: logits of tiny random-weight Qwen2 and
 * Llama models made by tests/fixtures/gen_fixtures.py, at every position, through a whole
 * prefill, through token-by-token decode, and in mixed batches; and greedy continuations. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend.h"
#include "sampling.h"

#define MAX_ABS_ERR 1e-3   /* f32 math vs transformers' f32; seen about 1e-6 */

typedef struct golden {
    sl_model *model;
    sl_backend *be;
    int vocab, n_seqs, n_greedy;
    int32_t *tokens[8];
    int len[8];
    const float *logits[8];      /* [len][vocab] per sequence */
    float *blob;
    int32_t *prompt[8], *greedy[8];
    int prompt_len[8], greedy_len[8];
    json_t *meta;
    const char *name;
} golden;

static int32_t *ints(json_t *arr, int *n)
{
    *n = (int)json_array_size(arr);
    int32_t *v = malloc((size_t)*n * sizeof *v);
    for (int i = 0; i < *n; i++)
        v[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return v;
}

static golden *load(const char *name)
{
    char dir[1024], path[1100];
    const char *root = getenv("SL_SOURCE_ROOT");
    snprintf(dir, sizeof dir, "%s/tests/fixtures/%s", root ? root : ".", name);
    golden *g = calloc(1, sizeof *g);
    g->name = name;
    sl_err err = { { 0 } };
    g->model = sl_model_load(dir, &err);
    if (!g->model)
        fail_msg("%s", err.msg);
    sl_backend_opts o = { .max_seqs = 4, .max_len = 64, .threads = 2 };
    g->be = sl_backend_cpu_create(g->model, &o, &err);
    if (!g->be)
        fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/golden.json", dir);
    json_error_t jerr;
    g->meta = json_load_file(path, 0, &jerr);
    assert_non_null(g->meta);
    g->vocab = (int)json_integer_value(json_object_get(g->meta, "vocab_size"));
    assert_int_equal(g->vocab, g->model->cfg.vocab_size);
    snprintf(path, sizeof path, "%s/golden.bin", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    g->blob = malloc((size_t)size);
    assert_int_equal(fread(g->blob, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    json_t *seqs = json_object_get(g->meta, "sequences"), *s;
    size_t i;
    json_array_foreach(seqs, i, s) {
        g->tokens[i] = ints(json_object_get(s, "tokens"), &g->len[i]);
        g->logits[i] = g->blob + json_integer_value(json_object_get(s, "offset"));
        assert_true((long)((g->logits[i] - g->blob) + (long)g->len[i] * g->vocab) * 4 <= size);
        g->n_seqs++;
    }
    json_array_foreach(json_object_get(g->meta, "greedy"), i, s) {
        g->prompt[i] = ints(json_object_get(s, "prompt"), &g->prompt_len[i]);
        g->greedy[i] = ints(json_object_get(s, "output"), &g->greedy_len[i]);
        g->n_greedy++;
    }
    assert_true(g->n_seqs >= 3 && g->n_greedy >= 1);
    return g;
}

static void unload(golden *g)
{
    for (int i = 0; i < g->n_seqs; i++)
        free(g->tokens[i]);
    for (int i = 0; i < g->n_greedy; i++) {
        free(g->prompt[i]);
        free(g->greedy[i]);
    }
    free(g->blob);
    json_decref(g->meta);
    g->be->ops->destroy(g->be);
    sl_model_free(g->model);
    free(g);
}

static int argmax(const float *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

/* Compares our logits with transformers' at one position; returns the max abs error. */
static double compare(const golden *g, int seq, int p, const float *ours)
{
    const float *ref = g->logits[seq] + (size_t)p * (size_t)g->vocab;
    double e = 0;
    for (int i = 0; i < g->vocab; i++)
        e = fmax(e, fabs((double)ours[i] - ref[i]));
    if (argmax(ours, g->vocab) != argmax(ref, g->vocab))
        fail_msg("%s seq %d pos %d: top-1 %d, transformers %d", g->name, seq, p,
                 argmax(ours, g->vocab), argmax(ref, g->vocab));
    return e;
}

static void step(golden *g, int slot, const int32_t *toks, int n, int pos, float *logits)
{
    sl_seq_step s = { slot, toks, n, pos };
    sl_err err = { { 0 } };
    if (g->be->ops->forward(g->be, &s, 1, logits, &err) < 0)
        fail_msg("forward: %s", err.msg);
}

/* Every prefix of every sequence as one prefill, from an empty cache. */
static void check_prefill(const char *name)
{
    golden *g = load(name);
    float *logits = malloc((size_t)g->vocab * sizeof *logits);
    double worst = 0;
    for (int s = 0; s < g->n_seqs; s++)
        for (int p = 1; p <= g->len[s]; p++) {
            g->be->ops->release(g->be, 0);
            step(g, 0, g->tokens[s], p, 0, logits);
            worst = fmax(worst, compare(g, s, p - 1, logits));
        }
    printf("# %s prefill: max abs error vs transformers %.3g\n", name, worst);
    assert_true(worst < MAX_ABS_ERR);
    free(logits);
    unload(g);
}

/* One token per step through the KV cache. */
static void check_decode(const char *name)
{
    golden *g = load(name);
    float *logits = malloc((size_t)g->vocab * sizeof *logits);
    double worst = 0;
    for (int s = 0; s < g->n_seqs; s++) {
        g->be->ops->release(g->be, 1);
        for (int p = 0; p < g->len[s]; p++) {
            step(g, 1, g->tokens[s] + p, 1, p, logits);
            worst = fmax(worst, compare(g, s, p, logits));
        }
    }
    printf("# %s decode: max abs error vs transformers %.3g\n", name, worst);
    assert_true(worst < MAX_ABS_ERR);
    free(logits);
    unload(g);
}

/* All sequences at once in one call per round: chunked prefills of 5 tokens beside decodes. */
static void check_batched(const char *name)
{
    golden *g = load(name);
    float *logits = malloc((size_t)g->n_seqs * (size_t)g->vocab * sizeof *logits);
    int done[8] = { 0 }, chunk[8];
    double worst = 0;
    for (int s = 0; s < g->n_seqs; s++)
        chunk[s] = s == 0 ? 1 : s == 1 ? 5 : 7;
    for (;;) {
        sl_seq_step st[8];
        int which[8], n = 0;
        for (int s = 0; s < g->n_seqs; s++) {
            if (done[s] == g->len[s])
                continue;
            int k = g->len[s] - done[s] < chunk[s] ? g->len[s] - done[s] : chunk[s];
            st[n] = (sl_seq_step){ s, g->tokens[s] + done[s], k, done[s] };
            which[n++] = s;
        }
        if (n == 0)
            break;
        sl_err err = { { 0 } };
        if (g->be->ops->forward(g->be, st, n, logits, &err) < 0)
            fail_msg("forward: %s", err.msg);
        for (int i = 0; i < n; i++) {
            int s = which[i];
            done[s] += st[i].n_tokens;
            worst = fmax(worst, compare(g, s, done[s] - 1, logits + (size_t)i * g->vocab));
        }
    }
    printf("# %s batched: max abs error vs transformers %.3g\n", name, worst);
    assert_true(worst < MAX_ABS_ERR);
    free(logits);
    unload(g);
}

/* Prompt as one prefill, then greedy decode through sl_sample. */
static void check_greedy(const char *name)
{
    golden *g = load(name);
    float *logits = malloc((size_t)g->vocab * sizeof *logits);
    sl_sampling_params sp = { .temperature = 0, .top_p = 1 };
    sl_rng rng;
    sl_rng_seed(&rng, 1);
    for (int i = 0; i < g->n_greedy; i++) {
        g->be->ops->release(g->be, 2);
        step(g, 2, g->prompt[i], g->prompt_len[i], 0, logits);
        int pos = g->prompt_len[i];
        for (int k = 0; k < g->greedy_len[i]; k++) {
            int32_t tok = sl_sample(&sp, &rng, logits, g->vocab, NULL);
            if (tok != g->greedy[i][k])
                fail_msg("%s greedy %d: token %d is %d, transformers %d", name, i, k, tok,
                         g->greedy[i][k]);
            step(g, 2, &tok, 1, pos++, logits);
        }
    }
    free(logits);
    unload(g);
}

static void qwen2_prefill(void **s) { (void)s; check_prefill("tiny-qwen2"); }
static void qwen2_decode(void **s) { (void)s; check_decode("tiny-qwen2"); }
static void qwen2_batched(void **s) { (void)s; check_batched("tiny-qwen2"); }
static void qwen2_greedy(void **s) { (void)s; check_greedy("tiny-qwen2"); }
static void llama_prefill(void **s) { (void)s; check_prefill("tiny-llama"); }
static void llama_decode(void **s) { (void)s; check_decode("tiny-llama"); }
static void llama_batched(void **s) { (void)s; check_batched("tiny-llama"); }
static void llama_greedy(void **s) { (void)s; check_greedy("tiny-llama"); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(qwen2_prefill), cmocka_unit_test(qwen2_decode),
        cmocka_unit_test(qwen2_batched), cmocka_unit_test(qwen2_greedy),
        cmocka_unit_test(llama_prefill), cmocka_unit_test(llama_decode),
        cmocka_unit_test(llama_batched), cmocka_unit_test(llama_greedy),
    };
    return cmocka_run_group_tests_name("model_golden", tests, NULL, NULL);
}
