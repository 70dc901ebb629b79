/* sluice-cuda-sample MODEL_DIR [BENCH_MODEL_DIR]: the CUDA backend's forward_sample against
 * sl_sample (engine/model/sampling.c). On MODEL_DIR (small vocab): top_k = 1 and temperature
 * 0 give the greedy ids; the same seed gives the same ids, another seed others; penalties
 * give sl_sample's choice on the same logits; and for several temperature/top-k/top-p
 * settings, 20000 draws at one fixed position have the distribution of 20000 sl_sample draws
 * over the same logits (two-sample chi-square, total variation printed). With
 * BENCH_MODEL_DIR: decode tokens/s at batch 1 and 32 with temperature 0.8, top_p 0.95 beside
 * greedy. Prints TAP; exits 1 on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "model.h"
#include "sampling.h"

static int n_test, n_fail;

static void tap(int ok, const char *name, const char *detail)
{
    n_test++;
    n_fail += !ok;
    printf("%s %d - %s%s%s\n", ok ? "ok" : "not ok", n_test, name, detail[0] ? ": " : "", detail);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int argmax(const float *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

/* 64 sampled tokens from a 16-token prompt in slot 0, feeding each back. */
static int run_seq(sl_backend *be, const sl_sampling_params *p, uint64_t seed, int32_t *out, sl_err *err)
{
    int32_t toks[80];
    for (int i = 0; i < 16; i++)
        toks[i] = (i * 37 + 11) % 256;
    sl_rng rng;
    sl_rng_seed(&rng, seed);
    be->ops->release(be, 0);
    sl_seq_step st = { 0, toks, 16, 0 };
    for (int k = 0; k < 64; k++) {
        sl_sample_req r = { p, &rng, out, k };
        if (be->ops->forward_sample(be, &st, 1, be->model->cfg.vocab_size, &r, &out[k], err) < 0)
            return -1;
        toks[16 + k] = out[k];
        st = (sl_seq_step){ 0, &toks[16 + k], 1, 16 + k };
    }
    be->ops->release(be, 0);
    return 0;
}

static void check_small(const char *dir)
{
    sl_err err = { { 0 } };
    sl_model *m = sl_model_load(dir, &err);
    if (!m) {
        tap(0, "load", err.msg);
        return;
    }
    int V = m->cfg.vocab_size;
    sl_backend_opts o = { .max_seqs = 4, .max_len = 128 };
    sl_backend *be = sl_backend_cuda_create(m, &o, &err);
    float *lg = malloc((size_t)V * sizeof *lg), *tmp = malloc((size_t)V * sizeof *tmp);
    int32_t a[64], b[64], c[64], *cnt_gpu = calloc((size_t)V, sizeof *cnt_gpu),
            *cnt_cpu = calloc((size_t)V, sizeof *cnt_cpu), *counts = calloc((size_t)V, sizeof *counts);
    char buf[200];
    if (!be || !lg || !tmp || !cnt_gpu || !cnt_cpu || !counts) {
        tap(0, "create the CUDA backend", err.msg);
        goto out;
    }
    /* top_k = 1 and temperature 0 are greedy */
    {
        sl_sampling_params g1 = { .temperature = 1.0f, .top_p = 1.0f, .top_k = 1 },
                           g0 = { .temperature = 0.0f, .top_p = 1.0f };
        int ok = run_seq(be, &g1, 1, a, &err) == 0 && run_seq(be, &g0, 2, b, &err) == 0;
        int32_t toks[80];
        for (int i = 0; ok && i < 16; i++)
            toks[i] = (i * 37 + 11) % 256;
        sl_seq_step st = { 0, toks, 16, 0 };
        int same = ok;
        for (int k = 0; ok && k < 64; k++) {
            int32_t id;
            if (be->ops->forward_argmax(be, &st, 1, V, &id, &err) < 0) {
                ok = same = 0;
                break;
            }
            same &= id == a[k] && id == b[k];
            toks[16 + k] = id;
            st = (sl_seq_step){ 0, &toks[16 + k], 1, 16 + k };
        }
        be->ops->release(be, 0);
        tap(ok && same, "top_k = 1 and temperature 0 give forward_argmax's 64 ids", ok ? "" : err.msg);
    }
    /* seeds */
    {
        sl_sampling_params p = { .temperature = 1.0f, .top_p = 0.9f, .top_k = 40 };
        int ok = run_seq(be, &p, 42, a, &err) == 0 && run_seq(be, &p, 42, b, &err) == 0 &&
                 run_seq(be, &p, 43, c, &err) == 0;
        int same = ok && !memcmp(a, b, sizeof a), differ = ok && memcmp(a, c, sizeof a) != 0;
        tap(same, "the same seed gives the same 64 ids", ok ? "" : err.msg);
        tap(differ, "another seed gives other ids", "");
    }
    /* one fixed position: its logits, then draws at it again and again (a rewind each time) */
    int32_t prompt[16];
    for (int i = 0; i < 16; i++)
        prompt[i] = (i * 53 + 7) % V;
    sl_seq_step st = { 0, prompt, 16, 0 };
    /* the logits come from the same one-token step the draws take (the prefill's last
     * position differs from it by bf16 noise, enough to move a top-k boundary) */
    sl_seq_step re = { 0, &prompt[15], 1, 15 };
    if (be->ops->forward(be, &st, 1, lg, &err) < 0 || be->ops->forward(be, &re, 1, lg, &err) < 0) {
        tap(0, "logits at the fixed position", err.msg);
        goto out;
    }
    st = re;
    /* penalties: greedy with penalties == sl_sample's greedy with the same counts */
    {
        int top = argmax(lg, V);
        memcpy(tmp, lg, (size_t)V * sizeof *tmp);
        tmp[top] = -INFINITY;
        int second = argmax(tmp, V);
        float gap = lg[top] - lg[second];
        int32_t gen[5] = { top, top, second, top, 3 };
        sl_sampling_params pp = { .temperature = 0, .top_p = 1, .presence_penalty = gap + 1.0f };
        sl_sampling_params fp = { .temperature = 0, .top_p = 1, .frequency_penalty = gap / 1.5f,
                                  .presence_penalty = 0.01f };
        int ok = 1;
        for (int t = 0; t < 2; t++) {
            const sl_sampling_params *p = t ? &fp : &pp;
            sl_sample_req r = { p, NULL, gen, 5 };
            int32_t id;
            if (be->ops->forward_sample(be, &st, 1, V, &r, &id, &err) < 0) {
                ok = 0;
                break;
            }
            memset(counts, 0, (size_t)V * sizeof *counts);
            for (int i = 0; i < 5; i++)
                counts[gen[i]]++;
            memcpy(tmp, lg, (size_t)V * sizeof *tmp);
            sl_rng rng;
            sl_rng_seed(&rng, 1);
            int32_t want = sl_sample(p, &rng, tmp, V, counts);
            snprintf(buf, sizeof buf, "%s: greedy %d, with penalties %d, sl_sample %d",
                     t ? "frequency" : "presence", top, id, want);
            tap(id == want && id != top, "penalties move greedy off the repeated token as sl_sample does", buf);
        }
        if (!ok)
            tap(0, "penalties", err.msg);
    }
    /* distributions */
    static const sl_sampling_params cfgs[] = {
        { .temperature = 1.0f, .top_p = 1.0f },
        { .temperature = 0.5f, .top_p = 1.0f, .top_k = 20 },
        { .temperature = 0.7f, .top_p = 0.8f },
        { .temperature = 1.3f, .top_p = 0.9f, .top_k = 50 },
        { .temperature = 0.6f, .top_p = 0.5f, .top_k = 8, .frequency_penalty = 0.5f },
    };
    /* SL_SAMPLE_DRAWS: fewer draws (under compute-sanitizer) */
    const char *nd = getenv("SL_SAMPLE_DRAWS");
    int N = nd && atoi(nd) > 0 ? atoi(nd) : 20000;
    int32_t gen3[3] = { argmax(lg, V), argmax(lg, V), 5 };
    for (size_t ci = 0; ci < sizeof cfgs / sizeof *cfgs; ci++) {
        const sl_sampling_params *p = &cfgs[ci];
        memset(cnt_gpu, 0, (size_t)V * sizeof *cnt_gpu);
        memset(cnt_cpu, 0, (size_t)V * sizeof *cnt_cpu);
        memset(counts, 0, (size_t)V * sizeof *counts);
        int npen = p->frequency_penalty != 0 ? 3 : 0;
        for (int i = 0; i < npen; i++)
            counts[gen3[i]]++;
        sl_rng rg, rc;
        sl_rng_seed(&rg, 1000 + ci);
        sl_rng_seed(&rc, 2000 + ci);
        double t0 = now_s();
        int ok = 1;
        for (int k = 0; k < N; k++) {
            sl_sample_req r = { p, &rg, gen3, npen };
            int32_t id;
            if (be->ops->forward_sample(be, &st, 1, V, &r, &id, &err) < 0 || id < 0 || id >= V) {
                ok = 0;
                break;
            }
            cnt_gpu[id]++;
        }
        double t_gpu = now_s() - t0;
        for (int k = 0; k < N; k++) {
            memcpy(tmp, lg, (size_t)V * sizeof *tmp);
            cnt_cpu[sl_sample(p, &rc, tmp, V, npen ? counts : NULL)]++;
        }
        /* two-sample chi-square over the ids either side drew; total variation */
        double chi = 0, tv = 0;
        int df = -1, only_gpu = 0;
        for (int i = 0; i < V; i++) {
            double x = cnt_gpu[i], y = cnt_cpu[i];
            tv += fabs(x - y) / (2.0 * N);
            if (x + y > 0) {
                chi += (x - y) * (x - y) / (x + y);
                df++;
            }
            only_gpu += x > 0 && y == 0;
        }
        double z = df > 0 ? (chi - df) / sqrt(2.0 * df) : 0;
        snprintf(buf, sizeof buf, "T %.1f top_k %d top_p %.2f freq %.1f: chi-square %.1f on %d df "
                 "(z %.2f), total variation %.4f, %d ids only the GPU drew, %.1f us a draw",
                 p->temperature, p->top_k, p->top_p, p->frequency_penalty, chi, df, z, tv, only_gpu,
                 1e6 * t_gpu / N);
        tap(ok && (z < 4.0 || N < 20000), "GPU draws have sl_sample's distribution", ok ? buf : err.msg);
    }
out:
    if (be)
        be->ops->destroy(be);
    free(lg);
    free(tmp);
    free(cnt_gpu);
    free(cnt_cpu);
    free(counts);
    sl_model_free(m);
}

/* Decode tokens/s at batch B from 128-token prompts, sampled on the GPU or greedy. */
static double decode_tps(sl_backend *be, int B, const sl_sampling_params *p, sl_err *err)
{
    int V = be->model->cfg.vocab_size, steps = 64;
    int32_t *toks = malloc((size_t)B * 128 * sizeof *toks), *ids = malloc((size_t)B * sizeof *ids),
            *last = malloc((size_t)B * sizeof *last), *gen = malloc((size_t)B * (steps + 4) * sizeof *gen);
    sl_seq_step *st = malloc((size_t)B * sizeof *st);
    sl_sample_req *req = malloc((size_t)B * sizeof *req);
    sl_rng *rng = malloc((size_t)B * sizeof *rng);
    double tps = -1;
    if (!toks || !ids || !last || !gen || !st || !req || !rng)
        goto out;
    for (int i = 0; i < B * 128; i++)
        toks[i] = (int32_t)((i * 2654435761u) % (unsigned)V);
    for (int i = 0; i < B; i++) {
        st[i] = (sl_seq_step){ i, toks + (size_t)i * 128, 128, 0 };
        sl_rng_seed(&rng[i], 7 + i);
    }
    if (be->ops->forward_argmax(be, st, B, V, ids, err) < 0)
        goto out;
    double t0 = 0;
    for (int s = 0; s < 4 + steps; s++) {
        if (s == 4)
            t0 = now_s();
        for (int i = 0; i < B; i++) {
            last[i] = ids[i];
            gen[(size_t)i * (steps + 4) + s] = ids[i];
            st[i] = (sl_seq_step){ i, &last[i], 1, 128 + s };
            req[i] = (sl_sample_req){ p, &rng[i], gen + (size_t)i * (steps + 4), s + 1 };
        }
        int rc = p ? be->ops->forward_sample(be, st, B, V, req, ids, err)
                   : be->ops->forward_argmax(be, st, B, V, ids, err);
        if (rc < 0)
            goto out;
    }
    tps = (double)B * steps / (now_s() - t0);
    for (int i = 0; i < B; i++)
        be->ops->release(be, i);
out:
    free(toks);
    free(ids);
    free(last);
    free(gen);
    free(st);
    free(req);
    free(rng);
    return tps;
}

static void bench(const char *dir)
{
    sl_err err = { { 0 } };
    sl_model *m = sl_model_load(dir, &err);
    sl_backend_opts o = { .max_seqs = 32, .max_len = 512 };
    sl_backend *be = m ? sl_backend_cuda_create(m, &o, &err) : NULL;
    if (!be) {
        tap(0, "bench model", err.msg);
        sl_model_free(m);
        return;
    }
    sl_sampling_params p = { .temperature = 0.8f, .top_p = 0.95f, .presence_penalty = 0.5f };
    printf("| batch | greedy tokens/s | sampled on the GPU (T 0.8, top_p 0.95, presence 0.5) tokens/s |\n");
    for (int B = 1; B <= 32; B *= 32) {
        double g = decode_tps(be, B, NULL, &err), s = decode_tps(be, B, &p, &err);
        printf("| %d | %.0f | %.0f |\n", B, g, s);
        tap(g > 0 && s > 0, "sampled decode runs at the real shape", s > 0 ? "" : err.msg);
    }
    be->ops->destroy(be);
    sl_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: sluice-cuda-sample MODEL_DIR [BENCH_MODEL_DIR]\n");
        return 2;
    }
    check_small(argv[1]);
    if (argc > 2)
        bench(argv[2]);
    printf("1..%d\n", n_test);
    return n_fail ? 1 : 0;
}
