/* The CPU backend's contract with the scheduler, on the tiny Qwen2 fixture: bad steps are
 * refused with a reason, slots are independent, release forgets a slot, and the thread
 * count does not change a single bit of the logits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend.h"

static const int32_t toks[8] = { 5, 17, 300, 42, 42, 7, 511, 0 };

typedef struct fx { sl_model *m; sl_backend *b; float *logits; int V; } fx;

static sl_backend *make_backend(sl_model *m, int threads)
{
    sl_err err = { { 0 } };
    sl_backend_opts o = { .max_seqs = 3, .max_len = 16, .threads = threads };
    sl_backend *b = sl_backend_cpu_create(m, &o, &err);
    if (!b)
        fail_msg("%s", err.msg);
    return b;
}

static int setup(void **state)
{
    char dir[1024];
    const char *root = getenv("SL_SOURCE_ROOT");
    snprintf(dir, sizeof dir, "%s/tests/fixtures/tiny-qwen2", root ? root : ".");
    fx *f = calloc(1, sizeof *f);
    sl_err err = { { 0 } };
    f->m = sl_model_load(dir, &err);
    if (!f->m) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    f->b = make_backend(f->m, 2);
    f->V = f->m->cfg.vocab_size;
    f->logits = malloc(4 * (size_t)f->V * sizeof(float));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    f->b->ops->destroy(f->b);
    sl_model_free(f->m);
    free(f->logits);
    free(f);
    return 0;
}

/* Runs steps; on failure returns the message (static), on success NULL. */
static const char *run(fx *f, const sl_seq_step *s, int n)
{
    static sl_err err;
    memset(&err, 0, sizeof err);
    return f->b->ops->forward(f->b, s, n, f->logits, &err) < 0 ? err.msg : NULL;
}

static void expect_refused(fx *f, const sl_seq_step *s, int n, const char *want)
{
    const char *msg = run(f, s, n);
    if (!msg)
        fail_msg("a bad step was accepted (wanted an error about \"%s\")", want);
    if (!strstr(msg, want))
        fail_msg("error \"%s\" does not mention \"%s\"", msg, want);
}

static void refuses_bad_steps(void **state)
{
    fx *f = *state;
    for (int s = 0; s < 3; s++)
        f->b->ops->release(f->b, s);
    sl_seq_step bad_slot = { 3, toks, 1, 0 };
    expect_refused(f, &bad_slot, 1, "slot 3");
    sl_seq_step gap = { 0, toks, 2, 1 };              /* nothing cached yet at 0 */
    expect_refused(f, &gap, 1, "cached");
    sl_seq_step too_long = { 0, toks, 8, 10 };
    expect_refused(f, &too_long, 1, "max_len 16");
    sl_seq_step empty = { 0, toks, 0, 0 };
    expect_refused(f, &empty, 1, "step 0");
    int32_t oov = 512;
    sl_seq_step bad_tok = { 0, &oov, 1, 0 };
    expect_refused(f, &bad_tok, 1, "token id 512");
    sl_seq_step twice[2] = { { 1, toks, 2, 0 }, { 1, toks + 2, 1, 2 } };
    expect_refused(f, twice, 2, "both use slot 1");
}

static void release_forgets_the_slot(void **state)
{
    fx *f = *state;
    f->b->ops->release(f->b, 0);
    sl_seq_step s = { 0, toks, 4, 0 };
    assert_null(run(f, &s, 1));
    sl_seq_step next = { 0, toks + 4, 1, 4 };
    assert_null(run(f, &next, 1));
    f->b->ops->release(f->b, 0);
    expect_refused(f, &next, 1, "0 cached");
}

static void rewinding_recomputes(void **state)
{
    fx *f = *state;
    f->b->ops->release(f->b, 0);
    sl_seq_step s = { 0, toks, 5, 0 };
    assert_null(run(f, &s, 1));
    float *first = malloc((size_t)f->V * sizeof *first);
    memcpy(first, f->logits, (size_t)f->V * sizeof *first);
    /* overwrite position 4 with another token, then put the first one back */
    sl_seq_step other = { 0, toks + 6, 1, 4 }, again = { 0, toks + 4, 1, 4 };
    assert_null(run(f, &other, 1));
    assert_memory_not_equal(first, f->logits, (size_t)f->V * sizeof *first);
    assert_null(run(f, &again, 1));
    for (int i = 0; i < f->V; i++)
        assert_float_equal(first[i], f->logits[i], 1e-5);
    free(first);
}

static void slots_are_independent(void **state)
{
    fx *f = *state;
    for (int s = 0; s < 3; s++)
        f->b->ops->release(f->b, s);
    sl_seq_step a = { 0, toks, 6, 0 };
    assert_null(run(f, &a, 1));
    float *alone = malloc((size_t)f->V * sizeof *alone);
    memcpy(alone, f->logits, (size_t)f->V * sizeof *alone);
    f->b->ops->release(f->b, 0);
    /* the same sequence again, while slot 2 runs different tokens beside it */
    sl_seq_step both[2] = { { 2, toks + 3, 5, 0 }, { 0, toks, 3, 0 } };
    assert_null(run(f, both, 2));
    sl_seq_step rest[2] = { { 0, toks + 3, 3, 3 }, { 2, toks, 1, 5 } };
    assert_null(run(f, rest, 2));
    for (int i = 0; i < f->V; i++)
        assert_float_equal(alone[i], f->logits[i], 1e-5);
    free(alone);
}

static void threads_do_not_change_logits(void **state)
{
    fx *f = *state;
    float *ref = NULL;
    int counts[3] = { 1, 3, 8 };
    for (int k = 0; k < 3; k++) {
        sl_backend *b = make_backend(f->m, counts[k]);
        sl_err err = { { 0 } };
        sl_seq_step s[2] = { { 0, toks, 8, 0 }, { 1, toks + 2, 3, 0 } };
        float *out = malloc(2 * (size_t)f->V * sizeof *out);
        if (b->ops->forward(b, s, 2, out, &err) < 0)
            fail_msg("%s", err.msg);
        if (ref) {
            assert_memory_equal(ref, out, 2 * (size_t)f->V * sizeof *out);
            free(out);
        } else {
            ref = out;
        }
        b->ops->destroy(b);
    }
    free(ref);
}

static void empty_batch_is_a_no_op(void **state)
{
    fx *f = *state;
    sl_err err = { { 0 } };
    assert_int_equal(f->b->ops->forward(f->b, NULL, 0, f->logits, &err), 0);
}

static void refuses_zero_sizes(void **state)
{
    fx *f = *state;
    sl_err err = { { 0 } };
    sl_backend_opts o = { .max_seqs = 0, .max_len = 16 };
    assert_null(sl_backend_cpu_create(f->m, &o, &err));
    assert_non_null(strstr(err.msg, "max_seqs"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refuses_bad_steps),
        cmocka_unit_test(release_forgets_the_slot),
        cmocka_unit_test(rewinding_recomputes),
        cmocka_unit_test(slots_are_independent),
        cmocka_unit_test(threads_do_not_change_logits),
        cmocka_unit_test(empty_batch_is_a_no_op),
        cmocka_unit_test(refuses_zero_sizes),
    };
    return cmocka_run_group_tests_name("model_backend", tests, setup, teardown);
}
