/* sluice-cuda-logits MODEL_DIR PROMPTS OUT [N_GREEDY]: for tests/gpu/compare_hf.py.
 * PROMPTS holds one prompt a line (token ids, space-separated). All prompts are prefilled
 * in one batched forward call (one slot each, in chunks of at most 256 tokens); the
 * last-position logits go to OUT.logits (float32, prompts x vocab), then N_GREEDY (default
 * 32) greedy tokens per prompt, decoded in one batch with argmax on the GPU, to
 * OUT.greedy (one line a prompt). --cpu uses the CPU backend instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "model.h"

#define MAX_PROMPTS 64

int main(int argc, char **argv)
{
    int use_cpu = argc > 1 && !strcmp(argv[1], "--cpu");
    if (use_cpu) {
        argv++;
        argc--;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: sluice-cuda-logits [--cpu] MODEL_DIR PROMPTS OUT [N_GREEDY]\n");
        return 2;
    }
    int n_greedy = argc > 4 ? atoi(argv[4]) : 32;
    int32_t *prompt[MAX_PROMPTS];
    int len[MAX_PROMPTS], n = 0, max_len = 0;
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char line[1 << 16];
    while (n < MAX_PROMPTS && fgets(line, sizeof line, f)) {
        int cap = 16, k = 0;
        int32_t *p = malloc((size_t)cap * sizeof *p);
        for (char *s = strtok(line, " \t\n"); s; s = strtok(NULL, " \t\n")) {
            if (k == cap)
                p = realloc(p, (size_t)(cap *= 2) * sizeof *p);
            p[k++] = (int32_t)atoi(s);
        }
        if (k == 0) {
            free(p);
            continue;
        }
        prompt[n] = p;
        len[n++] = k;
        if (k > max_len)
            max_len = k;
    }
    fclose(f);

    sl_err err = { { 0 } };
    sl_model *m = sl_model_load(argv[1], &err);
    if (!m) {
        fprintf(stderr, "sluice-cuda-logits: %s\n", err.msg);
        return 1;
    }
    int V = m->cfg.vocab_size;
    sl_backend_opts o = { .max_seqs = n, .max_len = max_len + n_greedy + 1 };
    sl_backend *be = use_cpu ? sl_backend_cpu_create(m, &o, &err) : sl_backend_cuda_create(m, &o, &err);
    float *logits = malloc((size_t)n * V * sizeof *logits);
    sl_seq_step *st = calloc((size_t)n, sizeof *st);
    int32_t *ids = calloc((size_t)n, sizeof *ids), *out = calloc((size_t)n * (n_greedy + 1), sizeof *out);
    if (!be || !logits || !st || !ids || !out) {
        fprintf(stderr, "sluice-cuda-logits: %s\n", err.msg);
        return 1;
    }
    /* Prefill in rounds of 256-token chunks, every unfinished prompt in each round. */
    for (int at = 0; at < max_len; at += 256) {
        int k = 0;
        int idx[MAX_PROMPTS];
        for (int i = 0; i < n; i++) {
            if (at >= len[i])
                continue;
            int c = len[i] - at < 256 ? len[i] - at : 256;
            st[k] = (sl_seq_step){ i, prompt[i] + at, c, at };
            idx[k++] = i;
        }
        float *tmp = malloc((size_t)k * V * sizeof *tmp);
        if (be->ops->forward(be, st, k, tmp, &err) < 0) {
            fprintf(stderr, "sluice-cuda-logits: %s\n", err.msg);
            return 1;
        }
        for (int j = 0; j < k; j++)
            if (at + st[j].n_tokens == len[idx[j]])
                memcpy(logits + (size_t)idx[j] * V, tmp + (size_t)j * V, (size_t)V * sizeof *tmp);
        free(tmp);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s.logits", argv[3]);
    f = fopen(path, "wb");
    if (!f || fwrite(logits, sizeof *logits, (size_t)n * V, f) != (size_t)n * V) {
        perror(path);
        return 1;
    }
    fclose(f);
    /* Greedy: first token from the prefill logits, then batched decode steps. */
    for (int i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * V;
        int b = 0;
        for (int v = 1; v < V; v++)
            if (l[v] > l[b])
                b = v;
        out[i * (n_greedy + 1)] = b;
    }
    for (int g = 1; g < n_greedy; g++) {
        for (int i = 0; i < n; i++)
            st[i] = (sl_seq_step){ i, &out[i * (n_greedy + 1) + g - 1], 1, len[i] + g - 1 };
        int rc;
        if (be->ops->forward_argmax) {
            rc = be->ops->forward_argmax(be, st, n, V, ids, &err);
        } else {
            rc = be->ops->forward(be, st, n, logits, &err);
            for (int i = 0; rc == 0 && i < n; i++) {
                const float *l = logits + (size_t)i * V;
                int b = 0;
                for (int v = 1; v < V; v++)
                    if (l[v] > l[b])
                        b = v;
                ids[i] = b;
            }
        }
        if (rc < 0) {
            fprintf(stderr, "sluice-cuda-logits: %s\n", err.msg);
            return 1;
        }
        for (int i = 0; i < n; i++)
            out[i * (n_greedy + 1) + g] = ids[i];
    }
    snprintf(path, sizeof path, "%s.greedy", argv[3]);
    f = fopen(path, "w");
    for (int i = 0; f && i < n; i++) {
        for (int g = 0; g < n_greedy; g++)
            fprintf(f, "%s%d", g ? " " : "", out[i * (n_greedy + 1) + g]);
        fputc('\n', f);
    }
    if (f)
        fclose(f);
    be->ops->destroy(be);
    sl_model_free(m);
    for (int i = 0; i < n; i++)
        free(prompt[i]);
    free(logits);
    free(st);
    free(ids);
    free(out);
    return 0;
}
