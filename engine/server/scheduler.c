#include "scheduler.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "prefix.h"

struct sl_sched {
    sl_backend *be;
    const sl_tokenizer *tok;
    sl_sched_opts o;
    int32_t *eos;
    int vocab;        /* logits per step (the model's rows) */
    int tok_vocab;    /* ids the tokenizer knows; rows past it are padding, never sampled */

    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;                 /* under mu */
    sl_seq *qhead, *qtail;         /* under mu */
    int n_queued;                  /* under mu */
    int *free_slots, n_free;       /* under mu */
    sl_seq **ready;                /* under mu */
    int n_ready, cap_ready;
    int efd;

    /* scheduler thread only */
    sl_seq **run;
    int n_run;
    float *logits;
    sl_seq_step *steps;
    sl_seq **step_seq;
    bool *step_sample;
    int32_t *ids;
    bool hold_admission;           /* after a preemption, until a sequence retires */
    sl_prefix *prefix;             /* what free slots' caches hold; NULL: reuse is off */
    double window_start;
    uint64_t window_tokens;

    /* statistics, under mu */
    int n_running;
    uint64_t prompt_tokens, generated_tokens, requests_done, preemptions;
    uint64_t prompt_tokens_cached;
    double tps, tps_at;
    long long kv_tokens;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

sl_seq *sl_seq_new(int32_t *prompt, int n_prompt, int max_tokens, const sl_sampling_params *sp,
                   const char *const *stops, int n_stops, void *user)
{
    sl_seq *seq = calloc(1, sizeof *seq);
    if (!seq)
        return NULL;
    if (sl_stop_init(&seq->stop, stops, n_stops) < 0) {
        free(seq);
        return NULL;
    }
    seq->prompt = prompt;
    seq->n_prompt = n_prompt;
    seq->max_tokens = max_tokens;
    seq->sampling = *sp;
    seq->user = user;
    seq->slot = -1;
    atomic_init(&seq->cancelled, false);
    return seq;
}

void sl_seq_free(sl_seq *seq)
{
    if (!seq)
        return;
    free(seq->prompt);
    free(seq->refill);
    free(seq->gen);
    free(seq->counts);
    free(seq->out);
    sl_stop_free(&seq->stop);
    free(seq);
}

/* Caller holds mu. Appends text and marks the sequence ready for the HTTP thread. */
static int post_locked(sl_sched *s, sl_seq *seq, const char *text, size_t len, const char *finish)
{
    if (len) {
        if (seq->n_out + len > seq->cap_out) {
            size_t cap = (seq->n_out + len) * 2 + 64;
            char *p = realloc(seq->out, cap);
            if (!p)
                return -1;
            seq->out = p;
            seq->cap_out = cap;
        }
        memcpy(seq->out + seq->n_out, text, len);
        seq->n_out += len;
    }
    if (seq->n_gen > seq->posted_gen)
        s->generated_tokens += (uint64_t)(seq->n_gen - seq->posted_gen);
    seq->posted_gen = seq->n_gen;
    if (finish) {
        seq->done = true;
        seq->finish = finish;
        s->requests_done++;
    }
    if (!seq->in_ready) {
        if (s->n_ready == s->cap_ready) {
            int cap = s->cap_ready ? s->cap_ready * 2 : 16;
            sl_seq **p = realloc(s->ready, (size_t)cap * sizeof *p);
            if (!p)
                return -1;
            s->ready = p;
            s->cap_ready = cap;
        }
        s->ready[s->n_ready++] = seq;
        seq->in_ready = true;
    }
    return 0;
}

static void wake_http(sl_sched *s)
{
    uint64_t one = 1;
    if (write(s->efd, &one, sizeof one) < 0) {
        /* the counter is saturated: the HTTP thread is awake anyway */
    }
}

static void post(sl_sched *s, sl_seq *seq, const char *text, size_t len, const char *finish)
{
    pthread_mutex_lock(&s->mu);
    if (post_locked(s, seq, text, len, finish) < 0)
        fprintf(stderr, "sluice-engine: out of memory posting output\n");
    pthread_mutex_unlock(&s->mu);
    wake_http(s);
}

/* Scheduler thread, for a sequence that leaves its slot: with prefix reuse the slot keeps
 * the tokens its cache holds (a prefill cut short holds what was prefilled; a decoding one
 * the prompt and every generated token but the last, never fed back); else, or after an
 * error (the cache is then unknown), the backend forgets it. */
static void let_go(sl_sched *s, const sl_seq *seq, const char *finish)
{
    int rc = -1;
    if (s->prefix && strcmp(finish, "error") != 0) {
        if (seq->n_prefilled < seq->n_fill)
            rc = sl_prefix_keep(s->prefix, seq->slot, seq->refill ? seq->refill : seq->prompt,
                                seq->n_prefilled, NULL, 0);
        else
            rc = sl_prefix_keep(s->prefix, seq->slot, seq->prompt, seq->n_prompt, seq->gen,
                                seq->n_gen - 1);
    }
    if (rc < 0 || sl_prefix_kept(s->prefix, seq->slot) == 0) {
        if (s->prefix)
            sl_prefix_drop(s->prefix, seq->slot);
        s->be->ops->release(s->be, seq->slot);
    }
}

/* Under mu, scheduler thread: the free slot for a sequence being admitted. With prefix
 * reuse, the one whose kept tokens start its prompt (then only the rest is prefilled),
 * else an unused one, else the least recently kept one, released first. */
static int take_slot(sl_sched *s, sl_seq *seq)
{
    int i = s->n_free - 1, common = 0;
    if (s->prefix) {
        const int32_t *fill = seq->refill ? seq->refill : seq->prompt;
        i = sl_prefix_best(s->prefix, s->free_slots, s->n_free, fill, seq->n_fill, &common);
        if (i < 0)
            i = sl_prefix_victim(s->prefix, s->free_slots, s->n_free);
    }
    int slot = s->free_slots[i];
    s->free_slots[i] = s->free_slots[--s->n_free];
    if (s->prefix) {
        if (common == 0 && sl_prefix_kept(s->prefix, slot) > 0)
            s->be->ops->release(s->be, slot);
        sl_prefix_drop(s->prefix, slot);
    }
    seq->n_prefilled = common;
    if (!seq->refill) {   /* a first admission, not a recompute after preemption */
        seq->n_cached = common;
        s->prompt_tokens_cached += (uint64_t)common;
    }
    return slot;
}

/* Scheduler thread, when the backend is out of blocks: the least recently kept cache of a
 * free slot is released. -1 when no free slot keeps one. */
static int release_oldest_kept(sl_sched *s)
{
    if (!s->prefix)
        return -1;
    pthread_mutex_lock(&s->mu);
    int i = sl_prefix_oldest(s->prefix, s->free_slots, s->n_free);
    int slot = i < 0 ? -1 : s->free_slots[i];
    pthread_mutex_unlock(&s->mu);
    if (slot < 0)
        return -1;
    sl_prefix_drop(s->prefix, slot);
    s->be->ops->release(s->be, slot);
    return 0;
}

/* Scheduler thread: the sequence leaves the batch and its slot is free again. */
static void retire(sl_sched *s, int i, const char *text, size_t len, const char *finish)
{
    sl_seq *seq = s->run[i];
    let_go(s, seq, finish);
    memmove(s->run + i, s->run + i + 1, (size_t)(s->n_run - i - 1) * sizeof *s->run);
    s->n_run--;
    pthread_mutex_lock(&s->mu);
    s->free_slots[s->n_free++] = seq->slot;
    seq->slot = -1;
    s->hold_admission = false;
    if (post_locked(s, seq, text, len, finish) < 0)
        fprintf(stderr, "sluice-engine: out of memory posting output\n");
    s->n_running = s->n_run;
    pthread_mutex_unlock(&s->mu);
    wake_http(s);
}

static int start_seq(sl_sched *s, sl_seq *seq)
{
    const sl_sampling_params *sp = &seq->sampling;
    uint64_t seed = sp->seed;
    if (!sp->has_seed && getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)(now_s() * 1e9) ^ (uintptr_t)seq;
    sl_rng_seed(&seq->rng, seed);
    if (sp->presence_penalty != 0 || sp->frequency_penalty != 0) {
        seq->counts = calloc((size_t)s->vocab, sizeof *seq->counts);
        if (!seq->counts)
            return -1;
    }
    seq->gen = malloc(((size_t)s->o.max_len + 1) * sizeof *seq->gen);
    if (!seq->gen)
        return -1;
    sl_detok_init(&seq->detok, s->tok, true);
    seq->n_prefilled = 0;
    seq->n_fill = seq->n_prompt;
    seq->n_gen = 0;
    seq->started = true;
    return 0;
}

/* Under mu: drop cancelled waiting sequences, then admit waiting ones into free slots. */
static void admit_locked(sl_sched *s)
{
    for (sl_seq **pp = &s->qhead, *seq; (seq = *pp);) {
        if (!atomic_load(&seq->cancelled)) {
            pp = &seq->next;
            continue;
        }
        *pp = seq->next;
        s->n_queued--;
        post_locked(s, seq, NULL, 0, "cancelled");
        wake_http(s);
    }
    s->qtail = NULL;
    for (sl_seq *q = s->qhead; q; q = q->next)
        s->qtail = q;

    if (s->n_run == 0)
        s->hold_admission = false;
    while (s->qhead && s->n_free > 0 && !s->hold_admission) {
        sl_seq *seq = s->qhead;
        s->qhead = seq->next;
        if (!s->qhead)
            s->qtail = NULL;
        s->n_queued--;
        seq->next = NULL;
        if (!seq->started) {
            if (start_seq(s, seq) < 0) {
                post_locked(s, seq, NULL, 0, "error");
                wake_http(s);
                continue;
            }
            s->prompt_tokens += (uint64_t)seq->n_prompt;
        }
        seq->slot = take_slot(s, seq);
        s->run[s->n_run++] = seq;
    }
    s->n_running = s->n_run;
}

static bool is_eos(const sl_sched *s, int32_t id)
{
    for (int i = 0; i < s->o.n_eos; i++)
        if (s->eos[i] == id)
            return true;
    return false;
}

/* Turns the sampled token into text; returns the finish reason or NULL to go on.
 * out receives the text to post. */
static const char *take_token(sl_sched *s, sl_seq *seq, int32_t id, char *out, size_t *n_out)
{
    char piece[2 * SL_TOKEN_MAX_BYTES];
    size_t n = 0;
    const char *finish = NULL;
    seq->gen[seq->n_gen++] = id;
    seq->last = id;
    if (seq->counts && id >= 0 && id < s->vocab)
        seq->counts[id]++;
    if (is_eos(s, id))
        finish = "stop";
    else
        n = sl_detok_push(&seq->detok, id, piece, sizeof piece);
    if (!finish && (seq->n_gen >= seq->max_tokens || seq->n_prompt + seq->n_gen >= s->o.max_len))
        finish = "length";
    if (finish)
        n += sl_detok_finish(&seq->detok, piece + n, sizeof piece - n);
    size_t o = sl_stop_push(&seq->stop, piece, n, out);
    if (o == (size_t)-1)
        return "error";
    if (seq->stop.hit)
        finish = "stop";
    else if (finish)
        o += sl_stop_flush(&seq->stop, out + o);
    *n_out = o;
    return finish;
}

static void fail_all(sl_sched *s, const char *why)
{
    fprintf(stderr, "sluice-engine: forward pass failed: %s\n", why);
    while (s->n_run > 0)
        retire(s, s->n_run - 1, NULL, 0, "error");
}

/* Scheduler thread: the youngest running sequence gives its KV cache back and waits at the
 * head of the queue; it recomputes its prompt and generated tokens when admitted again. */
static int preempt_youngest(sl_sched *s)
{
    sl_seq *seq = s->run[s->n_run - 1];
    int n = seq->n_prompt + seq->n_gen;
    int32_t *refill = malloc((size_t)n * sizeof *refill);
    if (!refill)
        return -1;
    memcpy(refill, seq->prompt, (size_t)seq->n_prompt * sizeof *refill);
    memcpy(refill + seq->n_prompt, seq->gen, (size_t)seq->n_gen * sizeof *refill);
    free(seq->refill);
    seq->refill = refill;
    seq->n_fill = n;
    seq->n_prefilled = 0;
    s->be->ops->release(s->be, seq->slot);
    s->n_run--;
    pthread_mutex_lock(&s->mu);
    s->free_slots[s->n_free++] = seq->slot;
    seq->slot = -1;
    seq->next = s->qhead;
    s->qhead = seq;
    if (!s->qtail)
        s->qtail = seq;
    s->n_queued++;
    s->n_running = s->n_run;
    s->hold_admission = true;
    uint64_t n_pre = ++s->preemptions;
    pthread_mutex_unlock(&s->mu);
    fprintf(stderr, "sluice-engine: the KV cache is full: a sequence of %d tokens waits to be "
            "recomputed (%llu preemptions so far; more GPU memory, a higher "
            "--kv-cache-fraction or a lower --max-batch avoid them)\n", n,
            (unsigned long long)n_pre);
    return 0;
}

static bool greedy_only(const sl_seq *seq)
{
    const sl_sampling_params *p = &seq->sampling;
    return (p->temperature <= 0 || p->top_k == 1) && p->presence_penalty == 0 &&
           p->frequency_penalty == 0;
}

static void step(sl_sched *s)
{
    for (int i = s->n_run - 1; i >= 0; i--)
        if (atomic_load(&s->run[i]->cancelled))
            retire(s, i, NULL, 0, "cancelled");
    if (s->n_run == 0)
        return;

    int n, rc;
    bool greedy;
    sl_err err = {0};
again:
    n = 0;
    greedy = s->be->ops->forward_argmax != NULL;
    int budget = s->o.step_tokens;
    for (int i = 0; i < s->n_run; i++) {
        sl_seq *seq = s->run[i];
        if (seq->n_prefilled < seq->n_fill)
            continue;
        s->steps[n] = (sl_seq_step){ .slot = seq->slot, .tokens = &seq->last, .n_tokens = 1,
                                     .pos = seq->n_prompt + seq->n_gen - 1 };
        s->step_seq[n] = seq;
        s->step_sample[n++] = true;
        greedy = greedy && greedy_only(seq);
        budget--;
    }
    if (budget < 16)
        budget = 16;   /* prompts keep moving even when decodes fill the budget */
    for (int i = 0; i < s->n_run && budget > 0; i++) {
        sl_seq *seq = s->run[i];
        int left = seq->n_fill - seq->n_prefilled;
        if (left <= 0)
            continue;
        int chunk = left < budget ? left : budget;
        const int32_t *src = seq->refill ? seq->refill : seq->prompt;
        s->steps[n] = (sl_seq_step){ .slot = seq->slot, .tokens = src + seq->n_prefilled,
                                     .n_tokens = chunk, .pos = seq->n_prefilled };
        s->step_seq[n] = seq;
        s->step_sample[n++] = chunk == left;
        if (chunk == left)
            greedy = greedy && greedy_only(seq);
        budget -= chunk;
    }

    /* sampling on the backend where it can (ids only come back) */
    bool on_backend = greedy || s->be->ops->forward_sample;
    if (greedy) {
        rc = s->be->ops->forward_argmax(s->be, s->steps, n, s->tok_vocab, s->ids, &err);
    } else if (s->be->ops->forward_sample) {
        sl_sample_req *req = calloc((size_t)n, sizeof *req);
        for (int k = 0; req && k < n; k++)
            if (s->step_sample[k])
                req[k] = (sl_sample_req){ &s->step_seq[k]->sampling, &s->step_seq[k]->rng,
                                          s->step_seq[k]->gen, s->step_seq[k]->n_gen };
        rc = req ? s->be->ops->forward_sample(s->be, s->steps, n, s->tok_vocab, req, s->ids, &err) : -1;
        if (!req)
            sl_err_set(&err, "out of memory");
        free(req);
    } else {
        rc = s->be->ops->forward(s->be, s->steps, n, s->logits, &err);
    }
    if (rc == SL_BACKEND_NO_BLOCKS) {
        if (release_oldest_kept(s) == 0 || (s->n_run > 1 && preempt_youngest(s) == 0))
            goto again;
        fprintf(stderr, "sluice-engine: %s\n", err.msg);
        retire(s, 0, NULL, 0, "error");
        return;
    }
    if (rc < 0) {
        fail_all(s, err.msg);
        return;
    }

    uint64_t made = 0;
    for (int k = 0; k < n; k++) {
        sl_seq *seq = s->step_seq[k];
        if (!s->step_sample[k]) {
            seq->n_prefilled += s->steps[k].n_tokens;
            continue;
        }
        if (seq->n_prefilled < seq->n_fill) {
            seq->n_prefilled = seq->n_fill;
            free(seq->refill);
            seq->refill = NULL;
        }
        int32_t id;
        if (on_backend) {
            id = s->ids[k];
        } else {
            float *logits = s->logits + (size_t)k * (size_t)s->vocab;
            for (int i = s->tok_vocab; i < s->vocab; i++)
                logits[i] = -INFINITY;
            id = sl_sample(&seq->sampling, &seq->rng, logits, s->vocab, seq->counts);
        }
        made++;
        char *out = malloc(2 * SL_TOKEN_MAX_BYTES + 32 + sl_stop_max_held(&seq->stop));
        size_t n_out = 0;
        const char *finish = out ? take_token(s, seq, id, out, &n_out) : "error";
        if (finish) {
            for (int i = 0; i < s->n_run; i++)
                if (s->run[i] == seq) {
                    retire(s, i, out, n_out, finish);
                    break;
                }
        } else {
            post(s, seq, out, n_out, NULL);
        }
        free(out);
    }

    long long kv = 0;
    for (int i = 0; i < s->n_run; i++)
        kv += s->run[i]->n_prefilled < s->run[i]->n_fill ? s->run[i]->n_prefilled
                                                          : s->run[i]->n_prompt + s->run[i]->n_gen;
    double t = now_s();
    s->window_tokens += made;
    pthread_mutex_lock(&s->mu);
    s->kv_tokens = kv;
    if (t - s->window_start >= 1.0) {
        s->tps = (double)s->window_tokens / (t - s->window_start);
        s->tps_at = t;
        s->window_start = t;
        s->window_tokens = 0;
    }
    pthread_mutex_unlock(&s->mu);
}

static void *sched_main(void *arg)
{
    sl_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        admit_locked(s);
        if (s->n_run == 0) {
            s->kv_tokens = 0;
            pthread_cond_wait(&s->cv, &s->mu);
            s->window_start = now_s();
            s->window_tokens = 0;
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        step(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

sl_sched *sl_sched_create(sl_backend *backend, const sl_tokenizer *tok,
                          const sl_sched_opts *opts, sl_err *err)
{
    sl_sched *s = calloc(1, sizeof *s);
    if (!s) {
        sl_err_set(err, "out of memory");
        return NULL;
    }
    s->efd = -1;
    s->be = backend;
    s->tok = tok;
    s->o = *opts;
    s->vocab = backend->model->cfg.vocab_size;
    size_t tv = sl_tokenizer_vocab_size(tok);
    s->tok_vocab = tv > 0 && tv < (size_t)s->vocab ? (int)tv : s->vocab;
    int mb = opts->max_batch;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->eos = calloc((size_t)opts->n_eos + 1, sizeof *s->eos);
    s->free_slots = calloc((size_t)mb, sizeof *s->free_slots);
    s->run = calloc((size_t)mb, sizeof *s->run);
    s->steps = calloc((size_t)mb, sizeof *s->steps);
    s->step_seq = calloc((size_t)mb, sizeof *s->step_seq);
    s->step_sample = calloc((size_t)mb, sizeof *s->step_sample);
    s->ids = calloc((size_t)mb, sizeof *s->ids);
    s->logits = malloc((size_t)mb * (size_t)s->vocab * sizeof *s->logits);
    if (!s->eos || !s->free_slots || !s->run || !s->steps || !s->step_seq || !s->step_sample ||
        !s->ids || !s->logits) {
        sl_err_set(err, "out of memory allocating the scheduler for %d sequences", mb);
        goto fail;
    }
    if (opts->n_eos)
        memcpy(s->eos, opts->eos, (size_t)opts->n_eos * sizeof *s->eos);
    s->o.eos = s->eos;
    if (opts->prefix_reuse &&
        !(s->prefix = sl_prefix_new(mb, opts->prefix_min > 0 ? opts->prefix_min : 16))) {
        sl_err_set(err, "out of memory allocating the prefix cache for %d sequences", mb);
        goto fail;
    }
    for (int i = 0; i < mb; i++)
        s->free_slots[s->n_free++] = mb - 1 - i;
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd < 0) {
        sl_err_set(err, "eventfd: %m");
        goto fail;
    }
    s->window_start = now_s();
    int rc = pthread_create(&s->thread, NULL, sched_main, s);
    if (rc != 0) {
        sl_err_set(err, "cannot start the scheduler thread: %s", strerror(rc));
        goto fail;
    }
    s->started = true;
    return s;
fail:
    sl_sched_free(s);
    return NULL;
}

void sl_sched_free(sl_sched *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; i < s->n_run; i++)
        if (!s->run[i]->in_ready)
            sl_seq_free(s->run[i]);
    for (sl_seq *q = s->qhead, *next; q; q = next) {
        next = q->next;
        sl_seq_free(q);
    }
    if (s->efd >= 0)
        close(s->efd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->eos);
    free(s->free_slots);
    free(s->run);
    free(s->steps);
    free(s->step_seq);
    free(s->step_sample);
    free(s->ids);
    free(s->logits);
    free(s->ready);
    sl_prefix_free(s->prefix);
    free(s);
}

void sl_sched_submit(sl_sched *s, sl_seq *seq)
{
    seq->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->qtail)
        s->qtail->next = seq;
    else
        s->qhead = seq;
    s->qtail = seq;
    s->n_queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sl_sched_cancel(sl_sched *s, sl_seq *seq)
{
    atomic_store(&seq->cancelled, true);
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int sl_sched_fd(const sl_sched *s)
{
    return s->efd;
}

void sl_sched_drain(sl_sched *s, sl_news_cb cb, void *arg)
{
    uint64_t v;
    while (read(s->efd, &v, sizeof v) > 0) {
    }
    pthread_mutex_lock(&s->mu);
    int n = s->n_ready;
    sl_seq **seqs = s->ready;
    sl_news *news = n ? malloc((size_t)n * sizeof *news) : NULL;
    char **bufs = n ? malloc((size_t)n * sizeof *bufs) : NULL;
    if (n && (!news || !bufs)) {
        free(news);
        free(bufs);
        pthread_mutex_unlock(&s->mu);
        wake_http(s);   /* try again on the next loop turn */
        return;
    }
    s->ready = NULL;
    s->n_ready = s->cap_ready = 0;
    for (int i = 0; i < n; i++) {
        sl_seq *seq = seqs[i];
        bufs[i] = seq->out;
        news[i] = (sl_news){ .text = seq->out, .len = seq->n_out, .n_gen = seq->posted_gen,
                             .n_cached = seq->n_cached, .done = seq->done, .finish = seq->finish };
        seq->out = NULL;
        seq->n_out = seq->cap_out = 0;
        seq->in_ready = false;
    }
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n; i++) {
        cb(seqs[i], &news[i], arg);
        free(bufs[i]);
    }
    free(seqs);
    free(news);
    free(bufs);
}

void sl_sched_stats_get(sl_sched *s, sl_sched_stats *st)
{
    pthread_mutex_lock(&s->mu);
    *st = (sl_sched_stats){
        .queued = s->n_queued,
        .running = s->n_running,
        .max_batch = s->o.max_batch,
        .prompt_tokens = s->prompt_tokens,
        .generated_tokens = s->generated_tokens,
        .requests_done = s->requests_done,
        .preemptions = s->preemptions,
        .prompt_tokens_cached = s->prompt_tokens_cached,
        .tokens_per_s = now_s() - s->tps_at > 2.0 ? 0.0 : s->tps,
        .kv_tokens = s->kv_tokens,
        .kv_capacity = (long long)s->o.max_batch * s->o.max_len,
    };
    pthread_mutex_unlock(&s->mu);
}
