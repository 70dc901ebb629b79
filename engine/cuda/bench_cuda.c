/* sluice-bench-cuda MODEL_DIR [OUT.json]: decode tokens/s at batch 1, 8, 32, 128 (128-token
 * prompts, 128 greedy steps timed after 4 warm-up steps, argmax on the GPU), the time of a
 * prefill (time to first token) for 128/1024/4096-token prompts, and the batch-1 bandwidth
 * roofline (weight bytes per step over the measured device-to-device copy rate), and batch-1
 * decode after a 4096-token prompt (long-context attention). Prints a
 * table, and the same figures as JSON to OUT.json for tests/gpu/bench_hf.py.
 * With SL_CUDA_PROFILE=1: batch 1 and the 1024-token prompt only, and the backend prints
 * the GPU time of each stage of the forward pass at the end. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "backend.h"
#include "model.h"

#define PROMPT 128
#define GEN 128
#define WARM 4

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint32_t rng = 777;
static int32_t rand_tok(int V)
{
    rng = rng * 1664525u + 1013904223u;
    return (int32_t)((rng >> 8) % (uint32_t)V);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Device-to-device copy rate, bytes read plus written per second. */
static double copy_bandwidth(void)
{
    size_t n = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, n) != cudaSuccess || cudaMalloc(&b, n) != cudaSuccess)
        return 0;
    cudaMemset(a, 1, n);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
    float best = 1e30f;
    for (int i = 0; i < 10; i++) {
        float ms;
        cudaEventRecord(e0, 0);
        cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms, e0, e1);
        if (ms < best)
            best = ms;
    }
    cudaFree(a);
    cudaFree(b);
    return 2.0 * (double)n / (best * 1e-3);
}

static int fail(const sl_err *err)
{
    fprintf(stderr, "sluice-bench-cuda: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: sluice-bench-cuda MODEL_DIR [OUT.json]\n");
        return 2;
    }
    sl_err err = { { 0 } };
    sl_model *m = sl_model_load(argv[1], &err);
    if (!m)
        return fail(&err);
    const sl_model_config *c = &m->cfg;
    int V = c->vocab_size;
    static const int batches[] = { 1, 8, 32, 128 };
    static const int prefills[] = { 128, 1024, 4096 };
    int maxB = 128;
    sl_backend_opts o = { .max_seqs = maxB, .max_len = 4096 + 128, .max_step_tokens = 4096 };
    sl_backend *be = sl_backend_cuda_create(m, &o, &err);
    if (!be)
        return fail(&err);

    double params = (double)V * c->hidden_size * (c->tie_word_embeddings ? 1 : 2);
    double per_layer = (double)c->hidden_size * (c->num_heads + 2 * c->num_kv_heads) * c->head_dim +
                       (double)c->num_heads * c->head_dim * c->hidden_size +
                       3.0 * c->hidden_size * c->intermediate_size;
    params += per_layer * c->num_layers;
    /* A decode step reads every weight but the embedding table (one row each). */
    double step_bytes = 2.0 * (params - (c->tie_word_embeddings ? 0 : (double)V * c->hidden_size));
    double bw = copy_bandwidth();
    double roof = bw / step_bytes;

    int32_t *toks = malloc((size_t)maxB * 4096 * sizeof *toks);
    int32_t *ids = malloc((size_t)maxB * sizeof *ids), *last = malloc((size_t)maxB * sizeof *last);
    sl_seq_step *st = calloc((size_t)maxB, sizeof *st);
    for (int i = 0; i < maxB * 4096; i++)
        toks[i] = rand_tok(V);
    double dec[4] = { 0 }, ttft[3] = { 0 };
    const char *prof = getenv("SL_CUDA_PROFILE"), *quick = getenv("SL_BENCH_QUICK");
    /* SL_BENCH_QUICK=B: decode at batch B (1, 8, 32 or 128) only (under a profiler, A/B runs) */
    int only = quick ? atoi(quick) : 0;
    bool profile = (prof && !strcmp(prof, "1")) || only > 0;
    if (profile && only < 1)
        only = 1;

    for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
        int B = batches[bi];
        if (profile && B != only)
            continue;
        for (int i = 0; i < B; i++)
            st[i] = (sl_seq_step){ i, toks + (size_t)i * PROMPT, PROMPT, 0 };
        /* prefill in groups of 32 prompts (4096 tokens) */
        for (int g = 0; g < B; g += 32) {
            int k = B - g < 32 ? B - g : 32;
            if (be->ops->forward_argmax(be, st + g, k, V, ids + g, &err) < 0)
                return fail(&err);
        }
        double t0 = 0;
        for (int s = 0; s < WARM + GEN; s++) {
            if (s == WARM)
                t0 = now_s();
            for (int i = 0; i < B; i++) {
                last[i] = ids[i];
                st[i] = (sl_seq_step){ i, &last[i], 1, PROMPT + s };
            }
            if (be->ops->forward_argmax(be, st, B, V, ids, &err) < 0)
                return fail(&err);
        }
        double t = now_s() - t0;
        dec[bi] = (double)B * GEN / t;
        for (int i = 0; i < B; i++)
            be->ops->release(be, i);
    }
    double dec_long = 0;
    if (!profile) {
        sl_seq_step s1 = { 0, toks, 4096, 0 };
        if (be->ops->forward_argmax(be, &s1, 1, V, ids, &err) < 0)
            return fail(&err);
        double t0 = 0;
        for (int s = 0; s < WARM + GEN / 2; s++) {
            if (s == WARM)
                t0 = now_s();
            last[0] = ids[0];
            s1 = (sl_seq_step){ 0, &last[0], 1, 4096 + s };
            if (be->ops->forward_argmax(be, &s1, 1, V, ids, &err) < 0)
                return fail(&err);
        }
        dec_long = (GEN / 2) / (now_s() - t0);
        be->ops->release(be, 0);
    }
    for (size_t pi = 0; pi < sizeof prefills / sizeof *prefills; pi++) {
        int N = prefills[pi];
        double ts[5];
        if (profile && N != 1024)
            continue;
        for (int r = 0; r < 5 + 1; r++) {
            sl_seq_step s1 = { 0, toks, N, 0 };
            double t0 = now_s();
            if (be->ops->forward_argmax(be, &s1, 1, V, ids, &err) < 0)
                return fail(&err);
            if (r > 0)
                ts[r - 1] = now_s() - t0;
            be->ops->release(be, 0);
        }
        qsort(ts, 5, sizeof *ts, cmp_d);
        ttft[pi] = ts[2];
    }

    printf("sluice CUDA backend, %s: %.2fB parameters, %.2f GB read per decode step\n", argv[1],
           params / 1e9, step_bytes / 1e9);
    printf("device-to-device copy %.0f GB/s -> batch-1 roofline %.0f tokens/s\n", bw / 1e9, roof);
    printf("| decode batch | tokens/s | ms/step |\n");
    for (size_t bi = 0; bi < 4; bi++)
        printf("| %d | %.0f | %.2f |\n", batches[bi], dec[bi], 1e3 * batches[bi] / dec[bi]);
    printf("| 1 after a 4096-token prompt | %.0f | %.2f |\n", dec_long, 1e3 / dec_long);
    printf("| prompt tokens | time to first token ms | prefill tokens/s |\n");
    for (size_t pi = 0; pi < 3; pi++)
        printf("| %d | %.2f | %.0f |\n", prefills[pi], ttft[pi] * 1e3, prefills[pi] / ttft[pi]);
    if (argc > 2) {
        FILE *f = fopen(argv[2], "w");
        if (f) {
            fprintf(f, "{\"bandwidth_gbs\": %.1f, \"roofline_tps\": %.1f, \"step_gb\": %.4f, "
                    "\"decode\": {\"1\": %.1f, \"8\": %.1f, \"32\": %.1f, \"128\": %.1f}, "
                    "\"decode_after_4096\": %.1f, "
                    "\"ttft_ms\": {\"128\": %.3f, \"1024\": %.3f, \"4096\": %.3f}}\n",
                    bw / 1e9, roof, step_bytes / 1e9, dec[0], dec[1], dec[2], dec[3], dec_long,
                    ttft[0] * 1e3, ttft[1] * 1e3, ttft[2] * 1e3);
            fclose(f);
        }
    }
    be->ops->destroy(be);
    sl_model_free(m);
    free(toks);
    free(ids);
    free(last);
    free(st);
    return 0;
}
