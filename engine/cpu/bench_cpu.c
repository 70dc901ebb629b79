/* sluice-bench-cpu: prefill and decode speed of the CPU backend on a model folder, with one
 * thread and with all of them, as a table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "sampling.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs one prefill of n_prompt tokens and n_decode greedy steps; fills the two rates. */
static int measure(const sl_model *m, int threads, int n_prompt, int n_decode, double *pre,
                   double *dec)
{
    sl_err err = { { 0 } };
    sl_backend_opts o = { .max_seqs = 1, .max_len = n_prompt + n_decode, .threads = threads };
    sl_backend *b = sl_backend_cpu_create(m, &o, &err);
    int V = m->cfg.vocab_size, rc = -1;
    float *logits = malloc((size_t)V * sizeof *logits);
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    if (!b || !logits || !prompt) {
        fprintf(stderr, "sluice-bench-cpu: %s\n", err.msg[0] ? err.msg : "out of memory");
        goto fail;
    }
    for (int i = 0; i < n_prompt; i++)
        prompt[i] = (int32_t)((i * 7919 + 13) % V);
    double t0 = now();
    sl_seq_step s = { 0, prompt, n_prompt, 0 };
    if (b->ops->forward(b, &s, 1, logits, &err) < 0)
        goto report;
    double t1 = now();
    sl_sampling_params sp = { .temperature = 0, .top_p = 1 };
    sl_rng rng;
    sl_rng_seed(&rng, 1);
    for (int i = 0; i < n_decode; i++) {
        int32_t tok = sl_sample(&sp, &rng, logits, V, NULL);
        s = (sl_seq_step){ 0, &tok, 1, n_prompt + i };
        if (b->ops->forward(b, &s, 1, logits, &err) < 0)
            goto report;
    }
    double t2 = now();
    *pre = n_prompt / (t1 - t0);
    *dec = n_decode / (t2 - t1);
    rc = 0;
report:
    if (rc < 0)
        fprintf(stderr, "sluice-bench-cpu: %s\n", err.msg);
fail:
    if (b)
        b->ops->destroy(b);
    free(prompt);
    free(logits);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int n_prompt = 128, n_decode = 32, threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
            n_prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc)
            n_decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            dir = NULL, i = argc;
    }
    if (!dir || n_prompt < 1 || n_decode < 1 || threads < 1) {
        fprintf(stderr, "usage: sluice-bench-cpu MODEL_DIR [--prompt N] [--decode N] "
                "[--threads N]\n");
        return 2;
    }
    sl_err err = { { 0 } };
    sl_model *m = sl_model_load(dir, &err);
    if (!m) {
        fprintf(stderr, "sluice-bench-cpu: %s\n", err.msg);
        return 1;
    }
    double p1, d1, pn, dn;
    /* the first run pages the mmap'd weights in; it is not reported */
    if (measure(m, threads, n_prompt, n_decode, &pn, &dn) < 0 || measure(m, 1, n_prompt, n_decode, &p1, &d1) < 0 ||
        measure(m, threads, n_prompt, n_decode, &pn, &dn) < 0) {
        sl_model_free(m);
        return 1;
    }
    printf("model %s: hidden %d, %d layers, vocab %d; prompt %d, decode %d tokens\n", dir,
           m->cfg.hidden_size, m->cfg.num_layers, m->cfg.vocab_size, n_prompt, n_decode);
    printf("%-10s %14s %14s\n", "threads", "prefill tok/s", "decode tok/s");
    printf("%-10d %14.1f %14.1f\n", 1, p1, d1);
    printf("%-10d %14.1f %14.1f\n", threads, pn, dn);
    printf("%-10s %14.2f %14.2f\n", "ratio", pn / p1, dn / d1);
    sl_model_free(m);
    return 0;
}
